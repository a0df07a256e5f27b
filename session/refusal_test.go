package session

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink the hub may write from any goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// Refusals are logged at most once per second per reason, the next line
// carrying how many were not logged; reasons past maxRefusalReasons share
// the "other" line. The clock is stepped, so no test sleeps a second.
func TestRefusalLogRateLimited(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	refusalNow = func() time.Time { return clock }
	t.Cleanup(func() { refusalNow = time.Now })
	var out syncBuffer
	h, _ := testHub(t, Config{Logger: slog.New(slog.NewTextHandler(&out, nil))})
	c := &Conn{hub: h, member: -1}

	for i := 0; i < 20; i++ {
		h.refused(c, 403, "origin not allowed", []byte("https://evil.example"))
		clock = clock.Add(10 * time.Millisecond) // 20 refusals within 200 ms
	}
	h.refused(c, 400, "missing specialKey", nil) // another reason has its own second
	clock = clock.Add(refusalLogEvery)
	h.refused(c, 403, "origin not allowed", []byte("https://evil.example"))
	for i := 0; i < maxRefusalReasons+5; i++ {
		h.refused(c, 400, fmt.Sprintf("reason %d", i), nil)
	}

	lines := out.lines()
	tests := []struct {
		line int
		want []string
	}{
		{0, []string{"level=INFO", `msg="handshake refused"`, "status=403", `reason="origin not allowed"`, "origin=https://evil.example", "suppressed=0"}},
		{1, []string{"status=400", `reason="missing specialKey"`, "suppressed=0"}},
		{2, []string{`reason="origin not allowed"`, "suppressed=19"}},
		{len(lines) - 1, []string{"reason=other", "suppressed=0"}},
	}
	for _, tt := range tests {
		if tt.line < 0 || tt.line >= len(lines) {
			t.Fatalf("no line %d in %q", tt.line, lines)
		}
		for _, w := range tt.want {
			if !strings.Contains(lines[tt.line], w) {
				t.Errorf("line %d %q lacks %s", tt.line, lines[tt.line], w)
			}
		}
	}
	// 3 lines above, then one per reason until the table is full (it
	// already holds 2), then one "other" line for the rest.
	if want := 3 + (maxRefusalReasons - 2) + 1; len(lines) != want {
		t.Errorf("%d lines, want %d:\n%s", len(lines), want, strings.Join(lines, "\n"))
	}
}
