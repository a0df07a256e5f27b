package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/auth"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

const token = "s3cret-admin-token"

type fixture struct {
	srv   *server.Server
	http  *httptest.Server
	authz *auth.Authorizer
}

func start(t *testing.T) *fixture {
	t.Helper()
	authz, err := auth.New(auth.Config{AllowedOrigins: []string{"https://ok.test"}})
	if err != nil {
		t.Fatal(err)
	}
	fan := admin.NewFanoutHistogram()
	srv := testserver.Start(t, server.Config{Workers: 2, Session: session.Config{
		MaxMessage: 1024,
		Authorize:  authz.Hook(),
		OnFanout:   admin.FanoutObserver(fan),
	}})
	h := httptest.NewServer(admin.NewHandler(srv, admin.Options{Token: token, Fanout: fan, AuthFailures: authz.Failures}))
	t.Cleanup(h.Close)
	return &fixture{srv: srv, http: h, authz: authz}
}

func (f *fixture) do(t *testing.T, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, out
}

func TestPublishValidation(t *testing.T) {
	f := start(t)
	bearer := "Bearer " + token
	for _, tc := range []struct {
		name, auth, body string
		status           int
	}{
		{"no token", "", `{"text":"x"}`, 401},
		{"wrong token", "Bearer nope", `{"text":"x"}`, 401},
		{"token prefix", "Bearer " + token[:5], `{"text":"x"}`, 401},
		{"basic", "Basic " + token, `{"text":"x"}`, 401},
		{"ok", bearer, `{"text":"x"}`, 200},
		{"lower-case scheme", "bearer " + token, `{"text":"x"}`, 200},
		{"malformed", bearer, `{"text":`, 400},
		{"not an object", bearer, `["x"]`, 400},
		{"empty body", bearer, ``, 400},
		{"unknown field", bearer, `{"text":"x","rom":"a"}`, 400},
		{"wrong type", bearer, `{"text":5}`, 400},
		{"trailing data", bearer, `{"text":"x"} {"text":"y"}`, 400},
		{"bad room", bearer, `{"room":"no spaces","text":"x"}`, 400},
		{"lone surrogate", bearer, `{"text":"\udc00"}`, 200}, // JSON decodes it to U+FFFD
		{"text over -max-message", bearer, `{"text":"` + strings.Repeat("a", 1025) + `"}`, 413},
		{"body over the cap", bearer, `{"text":"` + strings.Repeat("a", 8<<10) + `"}`, 413},
	} {
		status, body := f.do(t, "POST", "/publish", tc.auth, tc.body)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (%v)", tc.name, status, tc.status, body)
			continue
		}
		if status != 200 {
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("%s: no JSON error in %v", tc.name, body)
			}
		} else if _, ok := body["delivered"]; !ok {
			t.Errorf("%s: no delivered in %v", tc.name, body)
		}
	}
	if status, _ := f.do(t, "GET", "/publish", "Bearer "+token, ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /publish: %d", status)
	}
}

func TestPublishTargets(t *testing.T) {
	f := start(t)
	addr := f.srv.Addr().String()
	g := wstest.Dial(t, addr, "specialKey=g")
	a1 := wstest.Dial(t, addr, "specialKey=a1&room=a")
	a2 := wstest.Dial(t, addr, "specialKey=a2&room=a&support_gzip=1")
	b := wstest.Dial(t, addr, "specialKey=b&room=b")
	wstest.Eventually(t, 5*time.Second, "4 connections", func() bool { return f.srv.Hub().Stats().Open.Load() == 4 })

	publish := func(body string, want int) {
		t.Helper()
		status, out := f.do(t, "POST", "/publish", "Bearer "+token, body)
		if status != 200 || out["delivered"] != float64(want) {
			t.Fatalf("publish %s: %d %v, want delivered %d", body, status, out, want)
		}
	}
	expect := func(c *wstest.Client, want string) {
		t.Helper()
		got, _, err := c.ReadMessage(5 * time.Second)
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	publish(`{"room":"a","text":"to a"}`, 2)
	publish(`{"text":"to global"}`, 1)
	publish(`{"key":"b","text":"to b"}`, 1)
	publish(`{"key":"nobody","text":"lost"}`, 0)
	publish(`{"room":"empty","text":"lost"}`, 0)
	publish(`{"room":"*","text":"to all"}`, 4)
	expect(a1, "to a")
	expect(a2, "to a")
	expect(g, "to global")
	expect(b, "to b")
	for _, c := range []*wstest.Client{g, a1, a2, b} {
		expect(c, "to all")
	}
}

func TestEndpoints(t *testing.T) {
	f := start(t)
	addr := f.srv.Addr().String()
	c := wstest.Dial(t, addr, "specialKey=k&room=lobby")
	if _, status, _ := wstest.TryDialHeaders(addr, "/?specialKey=x", http.Header{"Origin": {"https://evil.test"}}); status != 403 {
		t.Fatalf("refused origin: %d", status)
	}
	c.WriteText("hi")
	if got, _, err := c.ReadMessage(5 * time.Second); err != nil || got != "hi" {
		t.Fatalf("echo %q %v", got, err)
	}
	if status, body := f.do(t, "GET", "/healthz", "", ""); status != 200 || body["status"] != "ok" {
		t.Errorf("/healthz %d %v", status, body)
	}
	if status, body := f.do(t, "GET", "/readyz", "", ""); status != 200 || body["status"] != "ready" {
		t.Errorf("/readyz %d %v", status, body)
	}
	status, body := f.do(t, "GET", "/stats", "", "")
	if status != 200 || body["connections"] != float64(1) || body["rooms"] != float64(1) || body["ready"] != true {
		t.Errorf("/stats %d %v", status, body)
	}
	if top, _ := body["top_rooms"].([]any); len(top) != 1 || top[0].(map[string]any)["room"] != "lobby" {
		t.Errorf("/stats top_rooms %v", body["top_rooms"])
	}
	if status, _ := f.do(t, "GET", "/debug/pprof/", "", ""); status != 401 {
		t.Errorf("pprof without the token: %d, want 401", status)
	}
	if status, _ := f.do(t, "GET", "/debug/pprof/", "Bearer "+token, ""); status != 200 {
		t.Errorf("pprof %d", status)
	}

	fams := wstest.Scrape(t, strings.TrimPrefix(f.http.URL, "http://"))
	for _, name := range []string{"wsd_connections", "wsd_broadcasts_total", "wsd_fanout_seconds",
		"wsd_auth_failures_total", "go_goroutines", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	reasons := map[string]float64{}
	for _, m := range fams["wsd_auth_failures_total"].GetMetric() {
		reasons[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	if len(reasons) != len(auth.Reasons()) || reasons["origin_not_allowed"] != 1 || reasons["missing_token"] != 0 {
		t.Errorf("wsd_auth_failures_total %v", reasons)
	}
	// The fan-out is observed when its writes finish, on a worker, after
	// the publish has returned.
	fanout := func() *dto.Histogram {
		return wstest.Scrape(t, strings.TrimPrefix(f.http.URL, "http://"))["wsd_fanout_seconds"].GetMetric()[0].GetHistogram()
	}
	wstest.Eventually(t, 5*time.Second, "the broadcast's fan-out observed", func() bool { return fanout().GetSampleCount() >= 1 })
	if h := fanout(); h.GetSampleSum() <= 0 {
		t.Errorf("wsd_fanout_seconds count %d sum %v after a broadcast", h.GetSampleCount(), h.GetSampleSum())
	}
}
