package web

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestWsdJS runs wsd.js's own unit tests (wsd_test.mjs: gap detection,
// dedup of seq, send retry bookkeeping, back-off, rejoin with since after a
// reconnect, gzip order) with Node's built-in test runner. Where node is
// not on PATH it skips, except under CI (CI set), where .ci/run installs
// Node and a skip would hide the tests: there it fails.
func TestWsdJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not on PATH under CI: .ci/run should have installed it")
		}
		t.Skip("node is not on PATH (Debian: apt-get install nodejs; .ci/run installs it): wsd.js's unit tests skipped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", "wsd_test.mjs")
	cmd.Env = append(os.Environ(), "NODE_OPTIONS=", "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	v, _ := exec.Command(node, "--version").Output()
	t.Logf("node %s", strings.TrimSpace(string(v)))
	if err != nil {
		t.Fatalf("node --test wsd_test.mjs: %v\n%s", err, out)
	}
	// The runner's summary: at least the tests written, none failed.
	s := string(out)
	if !strings.Contains(s, "# fail 0") || strings.Contains(s, "# pass 0\n") {
		t.Fatalf("node --test did not pass cleanly:\n%s", out)
	}
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "# tests ") || strings.HasPrefix(l, "# pass ") {
			t.Log(l)
		}
	}
}
