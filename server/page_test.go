package server_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
	"github.com/wsd-chat/wsd/web"
)

// httpGet sends a raw request head, in parts PartGap apart, and reads the
// whole response; the server must close the connection after it.
func httpGet(t *testing.T, addr, method string, parts ...string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wstest.DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wstest.DefaultTimeout))
	for i, p := range parts {
		if i > 0 {
			time.Sleep(wstest.PartGap)
		}
		if _, err := conn.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the body: %v", method, err)
	}
	if n, err := r.Read(make([]byte, 1)); n > 0 || err == nil {
		t.Fatalf("%s: connection not closed after the response (%d more bytes, %v)", method, n, err)
	}
	return resp, string(body)
}

func pageRequest(method, target string) string {
	return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n"
}

// TestPage: with Config.Page set, a plain GET / (no Upgrade) gets the chat
// page and HEAD / its head; everything else is answered as before, and
// WebSocket upgrades on / are unchanged.
func TestPage(t *testing.T) {
	page := web.New(web.Options{})
	_, addr, stats := start(t, session.Config{Page: page.Respond})

	resp, body := httpGet(t, addr, "GET", pageRequest("GET", "/"))
	if resp.StatusCode != 200 || body != string(page.HTML()) {
		t.Fatalf("GET /: status %d, %d bytes; want the %d-byte page", resp.StatusCode, len(body), len(page.HTML()))
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != page.CSP() {
		t.Errorf("CSP %q", got)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", got)
	}

	// Byte by byte, with a query string: still the page.
	req := pageRequest("GET", "/?room=lobby&name=alice")
	parts := make([]string, 0, 8)
	for i := 0; i < len(req); i += len(req)/7 + 1 {
		parts = append(parts, req[i:min(len(req), i+len(req)/7+1)])
	}
	if resp, body := httpGet(t, addr, "GET", parts...); resp.StatusCode != 200 || len(body) != len(page.HTML()) {
		t.Errorf("GET / in parts: status %d, %d bytes", resp.StatusCode, len(body))
	}

	resp, body = httpGet(t, addr, "HEAD", pageRequest("HEAD", "/"))
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len(page.HTML())) {
		t.Errorf("HEAD /: status %d, body %d bytes, Content-Length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
	if got := stats.PageRequests.Load(); got != 3 {
		t.Errorf("PageRequests %d, want 3", got)
	}
	failed := stats.HandshakesFailed.Load()

	for _, tc := range []struct {
		method, req string
		status      int
	}{
		{"GET", pageRequest("GET", "/x"), 404},
		{"GET", pageRequest("GET", "/index.html"), 404},
		{"POST", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405},
		{"GET", wstest.UpgradeRequest(addr, "/"), 400},                                                                // an upgrade without specialKey
		{"GET", strings.Replace(wstest.UpgradeRequest(addr, "/?specialKey=k"), "Upgrade: websocket\r\n", "", 1), 400}, // a broken upgrade
		{"GET", "GET / HTTP/1.1\r\nX-Pad: " + strings.Repeat("p", 9000) + "\r\n\r\n", 431},                            // the head cap applies
	} {
		if resp, body := httpGet(t, addr, tc.method, tc.req); resp.StatusCode != tc.status {
			t.Errorf("%.40q: status %d %q, want %d", tc.req, resp.StatusCode, body, tc.status)
		}
	}
	if got := stats.HandshakesFailed.Load() - failed; got != 6 {
		t.Errorf("%d refusals counted, want 6", got)
	}
	if got := stats.PageRequests.Load(); got != 3 {
		t.Errorf("PageRequests %d after refusals, want 3", got)
	}

	c := wstest.Dial(t, addr, "specialKey=alice")
	if err := c.WriteText("still a chat server"); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, "alice", "still a chat server")
	wstest.Eventually(t, 5*time.Second, "page connections closed", func() bool {
		return stats.Handshaking.Load() == 0 && stats.Closing.Load() == 0
	})
}

// TestPageOff: without Config.Page (wsd -demo=false) GET / and HEAD / are
// refused exactly as before.
func TestPageOff(t *testing.T) {
	_, addr, stats := start(t, session.Config{})
	resp, body := httpGet(t, addr, "GET", pageRequest("GET", "/"))
	if resp.StatusCode != 400 || !strings.Contains(body, "specialKey") {
		t.Errorf("GET /: %d %q, want 400 missing specialKey", resp.StatusCode, body)
	}
	// The upgrader's refusal of HEAD carries a body: read it as GET would.
	if resp, _ := httpGet(t, addr, "GET", pageRequest("HEAD", "/")); resp.StatusCode != 405 {
		t.Errorf("HEAD /: %d, want 405", resp.StatusCode)
	}
	if stats.PageRequests.Load() != 0 {
		t.Error("page counted without a page")
	}
}

// TestClientModuleServed: /wsd.js is served with the page (Demo) and
// without it; GET / is the page only with Demo.
func TestClientModuleServed(t *testing.T) {
	for _, demo := range []bool{true, false} {
		srv := testserver.Start(t, server.Config{Demo: demo})
		addr := srv.Addr().String()
		resp, body := httpGet(t, addr, "GET", pageRequest("GET", "/wsd.js"))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(body, "export class WsdClient") {
			t.Errorf("demo %v: GET /wsd.js: %d %q, %d bytes", demo, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		etag := resp.Header.Get("ETag")
		if resp, body := httpGet(t, addr, "GET", "GET /wsd.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: "+etag+"\r\n\r\n"); resp.StatusCode != 304 || body != "" {
			t.Errorf("demo %v: revalidating /wsd.js: %d, %d bytes", demo, resp.StatusCode, len(body))
		}
		if resp, body := httpGet(t, addr, "GET", pageRequest("GET", "/wsd.d.ts")); resp.StatusCode != 200 || !strings.Contains(body, "declare class WsdClient") {
			t.Errorf("demo %v: GET /wsd.d.ts: %d", demo, resp.StatusCode)
		}
		resp, _ = httpGet(t, addr, "GET", pageRequest("GET", "/"))
		if want := map[bool]int{true: 200, false: 400}[demo]; resp.StatusCode != want {
			t.Errorf("demo %v: GET /: %d, want %d", demo, resp.StatusCode, want)
		}
	}
}

// TestPageHandshakeTimeout: a page request that never ends is dropped at
// the handshake timeout like any other.
func TestPageHandshakeTimeout(t *testing.T) {
	page := web.New(web.Options{})
	_, addr, stats := start(t, session.Config{Page: page.Respond, HandshakeTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("waiting for the close: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("closed after %v", took)
	}
	if stats.HandshakeTimeouts.Load() != 1 || stats.PageRequests.Load() != 0 {
		t.Errorf("timeouts %d, pages %d (%d bytes answered)", stats.HandshakeTimeouts.Load(), stats.PageRequests.Load(), n)
	}
}
