package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// Issue 4 end to end: the real binary on loopback, its client port and its
// admin listener.

var httpClient = &http.Client{Timeout: 5 * time.Second}

func expect(t *testing.T, c *wstest.Client, want string) {
	t.Helper()
	got, _, err := c.ReadMessage(5 * time.Second)
	if err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestRoomIsolation(t *testing.T) {
	p := wstest.StartBinary(t)
	a1 := wstest.Dial(t, p.Addr, "specialKey=a1&room=a")
	a2 := wstest.Dial(t, p.Addr, "specialKey=a2&room=a&support_gzip=1")
	b1 := wstest.Dial(t, p.Addr, "specialKey=b1&room=b")
	g1 := wstest.Dial(t, p.Addr, "specialKey=g1")
	g2 := wstest.Dial(t, p.Addr, "specialKey=g2&support_gzip=1")

	a1.WriteText("in a")
	b1.WriteText("in b")
	g1.WriteText("in global")
	// Each member's next messages are its own room's, in order: nothing
	// from another room comes before or between them.
	expect(t, a1, "in a")
	expect(t, a2, "in a")
	expect(t, b1, "in b")
	expect(t, g1, "in global")
	expect(t, g2, "in global")
	a2.WriteText("a again")
	g2.WriteText("global again")
	b1.WriteText("b again")
	expect(t, a1, "a again")
	expect(t, a2, "a again")
	expect(t, g1, "global again")
	expect(t, g2, "global again")
	expect(t, b1, "b again")

	for _, q := range []string{"specialKey=x&room=has+space", "specialKey=x&room=" + strings.Repeat("r", 65), "specialKey=x&room=a%2Fb"} {
		if _, status, _ := wstest.TryDial(p.Addr, q); status != 400 {
			t.Errorf("%s: status %d, want 400", q, status)
		}
	}
}

func adminURL(p *wstest.Process, path string) string { return "http://" + p.AdminAddr + path }

// post sends a JSON body to /publish and returns the status and the decoded answer.
func post(t *testing.T, p *wstest.Process, bearer, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", adminURL(p, "/publish"), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("publish answered %s %q", ct, raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("publish answered %q: %v", raw, err)
	}
	return resp.StatusCode, out
}

func TestPublishAPI(t *testing.T) {
	const token = "admin-secret"
	p := wstest.StartBinary(t, "-admin-token", token, "-max-message", "1024")
	a1 := wstest.Dial(t, p.Addr, "specialKey=a1&room=a")
	a2 := wstest.Dial(t, p.Addr, "specialKey=a2&room=a&support_gzip=1")
	b1 := wstest.Dial(t, p.Addr, "specialKey=b1&room=b")
	g1 := wstest.Dial(t, p.Addr, "specialKey=g1&support_gzip=1")
	g2 := wstest.Dial(t, p.Addr, "specialKey=g2")

	delivered := func(body string, want int) {
		t.Helper()
		status, out := post(t, p, token, body)
		if status != 200 || out["delivered"] != float64(want) {
			t.Fatalf("publish %s: %d %v, want {\"delivered\":%d}", body, status, out, want)
		}
	}
	delivered(`{"room":"a","text":"to room a"}`, 2)
	delivered(`{"key":"b1","text":"to b1 only"}`, 1)
	delivered(`{"key":"g2","room":"ignored","text":"to g2 only"}`, 1)
	delivered(`{"text":"to the global room"}`, 2)
	delivered(`{"room":"*","text":"to everyone"}`, 5)
	delivered(`{"key":"nobody","text":"x"}`, 0)
	delivered(`{"room":"nobody-here","text":"x"}`, 0)
	expect(t, a1, "to room a")
	expect(t, a2, "to room a")
	expect(t, b1, "to b1 only")
	expect(t, g2, "to g2 only")
	expect(t, g1, "to the global room")
	expect(t, g2, "to the global room")
	for _, c := range []*wstest.Client{a1, a2, b1, g1, g2} {
		expect(t, c, "to everyone")
	}

	for _, tc := range []struct {
		name, bearer, body string
		status             int
	}{
		{"no token", "", `{"text":"x"}`, 401},
		{"wrong token", "admin-secreT", `{"text":"x"}`, 401},
		{"malformed JSON", token, `{"text": "x"`, 400},
		{"unknown field", token, `{"txt":"x"}`, 400},
		{"two objects", token, `{"text":"x"}{}`, 400},
		{"bad room", token, `{"room":"../etc","text":"x"}`, 400},
		{"text too long", token, fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", 1025)), 413},
		{"body too large", token, fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", 64<<10)), 413},
	} {
		status, out := post(t, p, tc.bearer, tc.body)
		if status != tc.status || out["error"] == nil || out["error"] == "" {
			t.Errorf("%s: %d %v, want %d with a JSON error", tc.name, status, out, tc.status)
		}
	}
	// Nothing from the refused calls reached anyone.
	a1.WriteText("still alive")
	expect(t, a1, "still alive")
}

// mint signs claims for sub with method and key, expiring after ttl.
func mint(t *testing.T, method jwt.SigningMethod, key any, sub string, ttl time.Duration, rooms []string) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}
	if rooms != nil {
		c["rooms"] = rooms
	}
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWTSecret(t *testing.T) {
	secret := []byte("a-long-random-secret-for-the-tests")
	p := wstest.StartBinary(t, "-jwt-secret", string(secret))
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	hs := func(sub string, ttl time.Duration, rooms ...string) string {
		return mint(t, jwt.SigningMethodHS256, secret, sub, ttl, rooms)
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, tc := range []struct {
		name   string
		query  string
		header string
		status int
	}{
		{"token in query", "specialKey=alice&token=" + hs("alice", time.Hour), "", 101},
		{"bearer header", "specialKey=bob", "Bearer " + hs("bob", time.Hour), 101},
		{"room allowed", "specialKey=carol&room=ops&token=" + hs("carol", time.Hour, "ops", "dev"), "", 101},
		{"global room listed", "specialKey=dan&token=" + hs("dan", time.Hour, "", "ops"), "", 101},
		{"star", "specialKey=erin&room=any&token=" + hs("erin", time.Hour, "*"), "", 101},
		{"no token", "specialKey=alice", "", 401},
		{"garbage", "specialKey=alice&token=garbage", "", 401},
		{"expired", "specialKey=alice&token=" + hs("alice", -time.Minute), "", 401},
		{"other secret", "specialKey=alice&token=" + mint(t, jwt.SigningMethodHS256, []byte("another secret, just as long....."), "alice", time.Hour, nil), "", 401},
		{"wrong algorithm RS256", "specialKey=alice&token=" + mint(t, jwt.SigningMethodRS256, rk, "alice", time.Hour, nil), "", 401},
		{"wrong algorithm HS512", "specialKey=alice&token=" + mint(t, jwt.SigningMethodHS512, secret, "alice", time.Hour, nil), "", 401},
		{"alg none", "specialKey=alice&token=" + none, "", 401},
		{"wrong sub", "specialKey=mallory&token=" + hs("alice", time.Hour), "", 403},
		{"room not allowed", "specialKey=carol&room=admin&token=" + hs("carol", time.Hour, "ops"), "", 403},
		{"global room not listed", "specialKey=carol&token=" + hs("carol", time.Hour, "ops"), "", 403},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Authorization", tc.header)
		}
		c, status, err := wstest.TryDialHeaders(p.Addr, "/?"+tc.query, h)
		if status != tc.status {
			t.Errorf("%s: status %d (%v), want %d", tc.name, status, err, tc.status)
		}
		if c != nil {
			c.Conn.Close()
		}
	}
	// The refusals are counted by reason, and by status as before.
	m := wstest.Scrape(t, p.AdminAddr)
	for reason, want := range map[string]float64{
		"missing_token": 1, "invalid_token": 2, "expired_token": 1, "wrong_algorithm": 3,
		"wrong_subject": 1, "room_not_allowed": 2, "origin_not_allowed": 0,
	} {
		if got := m.Get("wsd_auth_failures_total", "reason", reason); got != want {
			t.Errorf("wsd_auth_failures_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := m.Get("wsd_handshake_failures_total", "status", "401"); got != 7 {
		t.Errorf("401s counted %v, want 7", got)
	}
	if got := m.Get("wsd_handshake_failures_total", "status", "403"); got != 3 {
		t.Errorf("403s counted %v, want 3", got)
	}
}

func TestJWTPublicKey(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name   string
		pub    any
		method jwt.SigningMethod
		key    any
		wrong  jwt.SigningMethod
		wkey   any
	}{
		{"RS256", &rk.PublicKey, jwt.SigningMethodRS256, rk, jwt.SigningMethodES256, ek},
		{"ES256", &ek.PublicKey, jwt.SigningMethodES256, ek, jwt.SigningMethodRS256, rk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, _ := x509.MarshalPKIXPublicKey(tc.pub)
			pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			file := filepath.Join(t.TempDir(), "jwt.pub")
			if err := os.WriteFile(file, pemBytes, 0o600); err != nil {
				t.Fatal(err)
			}
			p := wstest.StartBinary(t, "-jwt-public-key", file)
			if !strings.Contains(p.Log(), "jwt="+tc.name) {
				t.Errorf("log does not say jwt=%s:\n%s", tc.name, p.Log())
			}
			for _, c := range []struct {
				name, key, token string
				status           int
			}{
				{"valid", "u1", mint(t, tc.method, tc.key, "u1", time.Hour, nil), 101},
				{"expired", "u1", mint(t, tc.method, tc.key, "u1", -time.Hour, nil), 401},
				{"wrong sub", "u2", mint(t, tc.method, tc.key, "u1", time.Hour, nil), 403},
				{"other algorithm", "u1", mint(t, tc.wrong, tc.wkey, "u1", time.Hour, nil), 401},
				// Algorithm confusion: HS256 keyed with the public key file.
				{"HS256 keyed with the PEM", "u1", mint(t, jwt.SigningMethodHS256, pemBytes, "u1", time.Hour, nil), 401},
			} {
				cl, status, err := wstest.TryDial(p.Addr, "specialKey="+c.key+"&token="+url.QueryEscape(c.token))
				if status != c.status {
					t.Errorf("%s: status %d (%v), want %d", c.name, status, err, c.status)
				}
				if cl != nil {
					cl.Conn.Close()
				}
			}
			if got := wstest.Scrape(t, p.AdminAddr).Get("wsd_auth_failures_total", "reason", "wrong_algorithm"); got != 2 {
				t.Errorf("wrong_algorithm failures %v, want 2", got)
			}
		})
	}
}

func TestBadAuthFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-jwt-secret", "x", "-jwt-public-key", "/dev/null"},
		{"-jwt-public-key", filepath.Join(t.TempDir(), "missing.pem")},
		{"-jwt-public-key", "/dev/null"},
		{"-jwt-public-key", "edge_test.go"},
		{"-allowed-origins", "example.com"},
		{"-allowed-origins", "https://a.*.example.com"},
		{"-jwt-audience", "chat"},
		{"-jwt-issuer", "https://id.example"},
		{"-nats-bus-key-file", "edge_test.go"},
		{"-nats-url", "nats://127.0.0.1:4222", "-nats-bus-key-file", "edge_test.go"},
		{"-nats-url", "nats://127.0.0.1:4222", "-nats-bus-key-file", filepath.Join(t.TempDir(), "missing.key")},
	} {
		o, err := parseFlags(args, io.Discard)
		if err == nil {
			_, err = newAuthorizer(o)
		}
		if err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	// The binary refuses them too, before listening.
	var stderr bytes.Buffer
	if code := run([]string{"-allowed-origins", "example.com", "-addr", "127.0.0.1:0", "-admin-addr", ""}, &stderr); code != 2 {
		t.Errorf("bad -allowed-origins: exit code %d, want 2 (%s)", code, stderr.String())
	}
}

func TestAllowedOrigins(t *testing.T) {
	p := wstest.StartBinary(t, "-allowed-origins", "https://app.example.com, https://*.example.org,http://localhost:*")
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"", 101}, // native client: no Origin
		{"https://app.example.com", 101},
		{"https://APP.example.com:443", 101},
		{"https://x.y.example.org", 101},
		{"http://localhost:5173", 101},
		{"https://evil.example.com", 403},
		{"http://app.example.com", 403},
		{"https://example.org", 403},
		{"https://app.example.com.evil.net", 403},
		{"null", 403},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, status, err := wstest.TryDialHeaders(p.Addr, "/?specialKey=k", h)
		if status != tc.status {
			t.Errorf("Origin %q: status %d (%v), want %d", tc.origin, status, err, tc.status)
		}
		if c != nil {
			c.Conn.Close()
		}
	}
	if got := wstest.Scrape(t, p.AdminAddr).Get("wsd_auth_failures_total", "reason", "origin_not_allowed"); got != 5 {
		t.Errorf("origin_not_allowed %v, want 5", got)
	}
}

func TestRateLimitCloses1008(t *testing.T) {
	p := wstest.StartBinary(t, "-max-msg-rate", "5", "-msg-burst", "3")
	c := wstest.Dial(t, p.Addr, "specialKey=chatty")
	var burst []byte
	for i := 0; i < 20; i++ {
		burst = append(burst, wstest.RawFrame(0x81, true, []byte(fmt.Sprintf("m%d", i)))...)
	}
	if err := c.WriteRaw(burst); err != nil {
		t.Fatal(err)
	}
	echoes := 0
	for {
		f, err := c.ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d echoes: %v", echoes, err)
		}
		if f.Op == ws.OpClose {
			if code := f.CloseCode(); code != 1008 {
				t.Fatalf("close code %d, want 1008", code)
			}
			break
		}
		echoes++
	}
	if echoes < 3 || echoes >= 20 {
		t.Errorf("%d echoes before the close, want the burst (3) or a little more", echoes)
	}
	wstest.Eventually(t, 5*time.Second, "close 1008 counted", func() bool {
		return wstest.Scrape(t, p.AdminAddr).Get("wsd_close_frames_sent_total", "code", "1008") == 1
	})
}

func TestMetricsMoveExactly(t *testing.T) {
	p := wstest.StartBinary(t)
	plain := wstest.Dial(t, p.Addr, "specialKey=plain")
	zipped := wstest.Dial(t, p.Addr, "specialKey=zipped&support_gzip=1")
	// Settle: both connections are counted.
	wstest.Eventually(t, 5*time.Second, "2 connections", func() bool {
		return wstest.Scrape(t, p.AdminAddr).Get("wsd_connections") == 2
	})
	before := wstest.Scrape(t, p.AdminAddr)
	texts := []string{"one", "two", "three!"}
	for _, s := range texts {
		if err := plain.WriteText(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range texts {
		expect(t, plain, s)
		expect(t, zipped, s)
	}
	want := map[string]float64{
		"wsd_broadcasts_total":             3,
		"wsd_gzip_encodings_total":         3,
		"wsd_received_messages_total":      3,
		"wsd_received_message_bytes_total": float64(len("one") + len("two") + len("three!")),
		"wsd_sent_frames_total":            6,
		"wsd_handshakes_total":             0,
		"wsd_direct_messages_total":        0,
		"wsd_slow_consumer_closes_total":   0,
	}
	var after wstest.Metrics
	deadline := time.Now().Add(5 * time.Second)
	for {
		after = wstest.Scrape(t, p.AdminAddr)
		done := true
		for name, d := range want {
			if after.Get(name)-before.Get(name) != d {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for name, d := range want {
		if got := after.Get(name) - before.Get(name); got != d {
			t.Errorf("%s moved by %v, want %v", name, got, d)
		}
	}
	if got := after.Get("wsd_connections"); got != 2 {
		t.Errorf("wsd_connections %v", got)
	}
	if n := after.Get("wsd_fanout_seconds") - before.Get("wsd_fanout_seconds"); n < 1 || n > 6 {
		t.Errorf("wsd_fanout_seconds observed %v times for 3 broadcasts to two members, want 1..6", n)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "wsd_queued_bytes", "wsd_auth_failures_total"} {
		if after[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	if after.Get("wsd_sent_bytes_total") <= before.Get("wsd_sent_bytes_total") {
		t.Error("wsd_sent_bytes_total did not move")
	}
}

func TestPprofOnlyOnAdmin(t *testing.T) {
	p := wstest.StartBinary(t)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		resp, err := httpClient.Get(adminURL(p, path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("admin %s: %d", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/metrics", "/publish"} {
		resp, err := httpClient.Get("http://" + p.Addr + path)
		if err != nil {
			t.Fatalf("client port %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("client port %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestReadyzFlipsDuringDrain(t *testing.T) {
	p := wstest.StartBinary(t, "-shutdown-timeout", "20s", "-close-timeout", "5s")
	readyz := func() int {
		resp, err := httpClient.Get(adminURL(p, "/readyz"))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := readyz(); s != 200 {
		t.Fatalf("/readyz before the signal: %d", s)
	}
	// This client will not answer the server's close, so the drain lasts
	// until -close-timeout.
	c := wstest.Dial(t, p.Addr, "specialKey=stubborn")
	expectOpen := func() {
		c.WriteText("ping")
		expect(t, c, "ping")
	}
	expectOpen()
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, 3*time.Second, "/readyz 503 while draining", func() bool { return readyz() == 503 })
	if time.Since(start) > 4*time.Second {
		t.Fatal("drain ended before /readyz was seen flipping")
	}
	if resp, err := httpClient.Get(adminURL(p, "/healthz")); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz while draining: %v %v", resp, err)
	}
	if code := c.ExpectClose(t, 5*time.Second); code != 1001 {
		t.Errorf("close code %d, want 1001", code)
	}
	if s := readyz(); s != 503 {
		t.Errorf("/readyz after the close frame, still draining: %d", s)
	}
	c.Conn.Close()
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
