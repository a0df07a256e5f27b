package admin_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/internal/wstest"
)

func TestRedactArgs(t *testing.T) {
	secret := admin.DefaultSecretFlags
	for _, tc := range []struct{ in, want []string }{
		{[]string{"wsd", "-admin-token", "s1", "-workers", "2"}, []string{"wsd", "-admin-token", "REDACTED", "-workers", "2"}},
		{[]string{"wsd", "--jwt-secret=s2", "-admin-token=s3"}, []string{"wsd", "--jwt-secret=REDACTED", "-admin-token=REDACTED"}},
		{[]string{"wsd", "-jwt-secret-file", "/run/s", "-admin-token"}, []string{"wsd", "-jwt-secret-file", "/run/s", "-admin-token"}},
		{[]string{"wsd", "-allowed-origins", "-admin-token"}, []string{"wsd", "-allowed-origins", "-admin-token"}},
	} {
		if got := admin.RedactArgs(tc.in, secret); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("RedactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPublishNeedsText(t *testing.T) {
	f := start(t)
	for _, body := range []string{`{}`, `{"room":"a"}`, `{"key":"k","text":""}`} {
		if status, out := f.do(t, "POST", "/publish", "Bearer "+token, body); status != 400 || out["error"] != "text is required" {
			t.Errorf("publish %s: %d %v, want 400 text is required", body, status, out)
		}
	}
}

func TestDisconnect(t *testing.T) {
	f := start(t)
	c := wstest.Dial(t, f.srv.Addr().String(), "specialKey=alice")
	for _, tc := range []struct {
		auth, body string
		status     int
	}{
		{"", `{"key":"alice"}`, 401},
		{"Bearer " + token, `{}`, 400},
		{"Bearer " + token, `{"key":"alice","code":1000}`, 400},
		{"Bearer " + token, `{"key":"alice","extra":1}`, 400},
		{"Bearer " + token, `{"key":"nobody"} {"key":"alice"}`, 400},
		{"Bearer " + token, `{"key":"` + strings.Repeat("a", 4096) + `"}`, 413},
		{"Bearer " + token, `{"key":"nobody"}`, 200},
	} {
		if status, out := f.do(t, "POST", "/disconnect", tc.auth, tc.body); status != tc.status {
			t.Errorf("disconnect %s: %d %v, want %d", tc.body, status, out, tc.status)
		}
	}
	status, out := f.do(t, "POST", "/disconnect", "Bearer "+token, `{"key":"alice","code":4010,"reason":"banned"}`)
	if status != 200 || out["disconnected"] != true {
		t.Fatalf("disconnect alice: %d %v", status, out)
	}
	f2, err := c.ReadFrame(5 * time.Second)
	if err != nil || f2.CloseCode() != 4010 || string(f2.Payload[2:]) != "banned" {
		t.Fatalf("close frame %v %q, %v; want 4010 banned", f2.Op, f2.Payload, err)
	}
}

// TestIdleConnsNeverBlockAScrape fills the admin server's connection cap
// with idle keep-alive connections: a new scrape must still be answered
// at once, the longest-idle connection giving up its slot.
func TestIdleConnsNeverBlockAScrape(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}), slog.New(slog.DiscardHandler))
	go admin.Serve(srv, ln)
	defer srv.Close()
	for i := 0; i < admin.MaxConns; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// One request each, then the connection stays open, idle.
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("keep-alive %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	resp, err := client.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics with %d idle keep-alives open: %v after %v", admin.MaxConns, err, time.Since(start))
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
}
