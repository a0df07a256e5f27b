package web

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func parse(t *testing.T, resp []byte, method string) (*http.Response, []byte) {
	t.Helper()
	r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(resp)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("response does not parse: %v\n%s", err, resp)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, body
}

func TestGetServesThePage(t *testing.T) {
	p := New(Options{})
	resp := p.Respond([]byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nAccept: text/html\r\n\r\n"))
	if resp == nil {
		t.Fatal("GET / got no page")
	}
	r, body := parse(t, resp, "GET")
	if r.StatusCode != 200 {
		t.Fatalf("status %d", r.StatusCode)
	}
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-cache",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": p.CSP(),
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if !r.Close {
		t.Error("response does not close the connection")
	}
	if r.ContentLength != int64(len(body)) || !bytes.Equal(body, p.HTML()) {
		t.Errorf("Content-Length %d, body %d bytes, page %d bytes", r.ContentLength, len(body), len(p.HTML()))
	}
	for _, s := range []string{"<!doctype html>", `id="logs"`, `id="tabs"`, `data-jwt="0"`, `<script type="module">`, `import { WsdClient } from "/wsd.js";`, "location.protocol"} {
		if !bytes.Contains(body, []byte(s)) {
			t.Errorf("page lacks %q", s)
		}
	}
	// No external resources: no src= or href= other than the data: icon.
	for _, m := range regexp.MustCompile(`(?i)\b(src|href)\s*=\s*"([^"]*)"`).FindAllSubmatch(body, -1) {
		if string(m[2]) != "data:," {
			t.Errorf("page loads %s=%q", m[1], m[2])
		}
	}
	if bytes.Contains(body, []byte("{{")) {
		t.Error("page has an unfilled placeholder")
	}
}

// TestCSP checks the policy allows exactly the page's inline script and
// style (by hash), connections only to its own origin, and nothing else.
func TestCSP(t *testing.T) {
	p := New(Options{})
	dirs := map[string]string{}
	for _, d := range strings.Split(p.CSP(), ";") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), " ")
		dirs[name] = val
	}
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	html := string(p.HTML())
	inline := func(tag string) string {
		name, _, _ := strings.Cut(tag, " ")
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+name+`>`).FindAllStringSubmatch(html, -1)
		if len(m) != 1 || strings.Count(html, "<"+name) != 1 {
			t.Fatalf("%d <%s> elements, want 1", len(m), tag)
		}
		return m[0][1]
	}
	for name, want := range map[string]string{
		"default-src":     "'none'",
		"script-src":      "'self' " + hash(inline(`script type="module"`)),
		"style-src":       hash(inline("style")),
		"connect-src":     "'self'",
		"img-src":         "data:",
		"base-uri":        "'none'",
		"form-action":     "'none'",
		"frame-ancestors": "'none'",
	} {
		if got := dirs[name]; got != want {
			t.Errorf("%s %q, want %q", name, got, want)
		}
	}
	if len(dirs) != 8 {
		t.Errorf("unexpected directives in %q", p.CSP())
	}
	if regexp.MustCompile(`(?i)\son[a-z]+\s*=`).MatchString(html) || strings.Contains(html, "style=") {
		t.Error("inline event handler or style attribute: the CSP blocks it")
	}
}

// TestClientModule: /wsd.js and /wsd.d.ts are served with their types,
// nosniff, no-cache and an ETag; a GET naming the ETag gets a 304 without
// a body; with ClientOnly the page is gone and the module stays.
func TestClientModule(t *testing.T) {
	for _, o := range []Options{{}, {ClientOnly: true}} {
		p := New(o)
		for _, c := range []struct {
			path, ctype string
			body        string
		}{
			{"/wsd.js", "text/javascript; charset=utf-8", clientJS},
			{"/wsd.d.ts?v=1", "text/plain; charset=utf-8", clientDTS},
		} {
			resp := p.Respond([]byte("GET " + c.path + " HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n"))
			if resp == nil {
				t.Fatalf("%+v: GET %s got nothing", o, c.path)
			}
			r, body := parse(t, resp, "GET")
			if r.StatusCode != 200 || string(body) != c.body || r.ContentLength != int64(len(c.body)) {
				t.Fatalf("GET %s: status %d, %d bytes (Content-Length %d), want %d", c.path, r.StatusCode, len(body), r.ContentLength, len(c.body))
			}
			for k, v := range map[string]string{
				"Content-Type":                c.ctype,
				"X-Content-Type-Options":      "nosniff",
				"Cache-Control":               "no-cache",
				"Access-Control-Allow-Origin": "*",
			} {
				if got := r.Header.Get(k); got != v {
					t.Errorf("%s %s: %q, want %q", c.path, k, got, v)
				}
			}
			if r.Header.Get("Content-Security-Policy") != "" || !r.Close {
				t.Errorf("%s: CSP %q, close %v", c.path, r.Header.Get("Content-Security-Policy"), r.Close)
			}
			etag := r.Header.Get("ETag")
			if len(etag) < 10 || etag[0] != '"' {
				t.Fatalf("%s: ETag %q", c.path, etag)
			}
			for inm, want := range map[string]int{
				etag:                     304,
				"W/" + etag:              304,
				`"other", ` + etag:       304,
				"*":                      304,
				`"other"`:                200,
				etag[:len(etag)-2] + `"`: 200,
			} {
				resp := p.Respond([]byte("GET " + c.path + " HTTP/1.1\r\nIf-None-Match: " + inm + "\r\n\r\n"))
				r, body := parse(t, resp, "GET")
				if r.StatusCode != want || (want == 304 && (len(body) != 0 || r.Header.Get("ETag") != etag)) {
					t.Errorf("%s If-None-Match %s: %d (%d bytes), want %d", c.path, inm, r.StatusCode, len(body), want)
				}
			}
			r, body = parse(t, p.Respond([]byte("HEAD "+c.path+" HTTP/1.1\r\n\r\n")), "HEAD")
			if r.StatusCode != 200 || len(body) != 0 || r.ContentLength != int64(len(c.body)) {
				t.Errorf("HEAD %s: %d, %d bytes, length %d", c.path, r.StatusCode, len(body), r.ContentLength)
			}
		}
		if got := p.Respond([]byte("GET / HTTP/1.1\r\n\r\n")); (got == nil) != o.ClientOnly {
			t.Errorf("%+v: GET / answered: %v", o, got != nil)
		}
		for _, head := range []string{
			"GET /wsd.jsx HTTP/1.1\r\n\r\n",
			"GET /web/wsd.js HTTP/1.1\r\n\r\n",
			"POST /wsd.js HTTP/1.1\r\n\r\n",
			"GET /wsd.js HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
		} {
			if p.Respond([]byte(head)) != nil {
				t.Errorf("%q answered", head)
			}
		}
	}
}

// TestModuleIsPlain: the module has no dependency (no import), builds no
// HTML and evaluates no code, so it runs under the page's CSP as shipped.
func TestModuleIsPlain(t *testing.T) {
	if regexp.MustCompile(`(?m)^\s*import\b|\bimport\(`).MatchString(clientJS) {
		t.Error("wsd.js imports something")
	}
	for _, bad := range []string{"require(", "eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
		if strings.Contains(clientJS, bad) {
			t.Errorf("wsd.js contains %q", bad)
		}
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function"} {
		if strings.Contains(pageJS, bad) {
			t.Errorf("page.js contains %q", bad)
		}
	}
	// Every export of the module is declared in its types.
	for _, m := range regexp.MustCompile(`(?m)^export (?:class|function|const) (\w+)`).FindAllStringSubmatch(clientJS, -1) {
		if !regexp.MustCompile(`export declare (?:class|function|const) ` + m[1] + `\b`).MatchString(clientDTS) {
			t.Errorf("wsd.d.ts does not declare %s", m[1])
		}
	}
	// And every public method of WsdClient.
	methods := regexp.MustCompile(`(?m)^  (?:get )?([a-z]\w*)\(`).FindAllStringSubmatch(clientJS, -1)
	if len(methods) < 8 {
		t.Fatalf("found %d methods of WsdClient: the pattern no longer fits wsd.js", len(methods))
	}
	for _, m := range methods {
		if m[1] == "constructor" || m[1] == "if" || m[1] == "for" {
			continue
		}
		if !regexp.MustCompile(`(?m)^  (?:readonly )?` + m[1] + `[(:<]`).MatchString(clientDTS) {
			t.Errorf("wsd.d.ts does not declare WsdClient.%s", m[1])
		}
	}
}

func TestHead(t *testing.T) {
	p := New(Options{})
	resp := p.Respond([]byte("HEAD /?room=lobby HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp == nil {
		t.Fatal("HEAD / got no page")
	}
	r, body := parse(t, resp, "HEAD")
	if r.StatusCode != 200 || len(body) != 0 || !bytes.HasSuffix(resp, []byte("\r\n\r\n")) {
		t.Fatalf("HEAD: status %d, %d body bytes", r.StatusCode, len(body))
	}
	if r.ContentLength != int64(len(p.HTML())) {
		t.Errorf("HEAD Content-Length %d, page is %d bytes", r.ContentLength, len(p.HTML()))
	}
}

func TestJWTShowsTokenField(t *testing.T) {
	if !bytes.Contains(New(Options{JWT: true}).HTML(), []byte(`data-jwt="1"`)) {
		t.Error("JWT option not passed to the page")
	}
}

// TestNotThePage lists requests the page leaves to the upgrader.
func TestNotThePage(t *testing.T) {
	p := New(Options{})
	for _, head := range []string{
		"GET /x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /index.html HTTP/1.1\r\n\r\n",
		"GET //? HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET /?specialKey=a HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
		"GET / HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		"",
		"garbage",
	} {
		if resp := p.Respond([]byte(head)); resp != nil {
			t.Errorf("%q answered with the page", head)
		}
	}
	for _, head := range []string{
		"GET / HTTP/1.0\r\n\r\n",
		"GET /?specialKey=alice&room=lobby HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nX-Upgrade: no\r\n\r\n",
	} {
		if resp := p.Respond([]byte(head)); resp == nil {
			t.Errorf("%q not answered with the page", head)
		}
	}
}

func FuzzRespond(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("HEAD / HTTP/1.1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"))
	p := New(Options{})
	f.Fuzz(func(t *testing.T, head []byte) {
		resp := p.Respond(head)
		if resp != nil && !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 OK\r\n")) {
			t.Fatalf("odd response %q", resp[:20])
		}
		if resp != nil && !bytes.HasPrefix(head, []byte("GET / HTTP/1.")) && !bytes.HasPrefix(head, []byte("GET /?")) &&
			!bytes.HasPrefix(head, []byte("HEAD /")) {
			t.Fatalf("page for %q", head)
		}
	})
}

func BenchmarkRespondModule(b *testing.B) {
	p := New(Options{})
	head := []byte("GET /wsd.js HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nIf-None-Match: \"x\"\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if p.Respond(head) == nil {
			b.Fatal("no module")
		}
	}
}

func BenchmarkRespond(b *testing.B) {
	p := New(Options{})
	head := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html\r\nAccept-Language: en\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if p.Respond(head) == nil {
			b.Fatal("no page")
		}
	}
}
