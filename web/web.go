// Package web is what wsd serves to browsers on the client listener: the
// built-in chat page, answered to a plain GET / (no Upgrade header), and
// wsd.js, the chat protocol v1 client the page is built on, at /wsd.js
// (with its types at /wsd.d.ts) for any web application. All are embedded
// in the binary. The WebSocket endpoint stays / as in the seed protocol.
//
// Every HTTP response is built once, in New; serving one is a copy. The
// page's Content-Security-Policy names its inline script and style by
// their SHA-256 and allows other scripts only from 'self' (where the only
// script is wsd.js: the page imports it as a module), and allows
// connections only back to the page's own origin ('self', which covers ws:
// and wss: to the same host and port in CSP Level 3 browsers).
package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"strconv"
	"strings"
)

var (
	//go:embed page.html
	pageHTML string
	//go:embed page.css
	pageCSS string
	//go:embed page.js
	pageJS string
	//go:embed wsd.js
	clientJS string
	//go:embed wsd.d.ts
	clientDTS string
)

// Paths of the client module and its types.
const (
	ClientPath = "/wsd.js"
	TypesPath  = "/wsd.d.ts"
)

// Options adapts the page to the server's configuration.
type Options struct {
	// JWT shows the token field: the server requires a token at the handshake.
	JWT bool
	// ClientOnly serves /wsd.js and /wsd.d.ts but not the page (-demo=false).
	ClientOnly bool
}

// Page holds the prebuilt responses.
type Page struct {
	html []byte
	csp  string
	page *response // nil with ClientOnly
	js   *response
	dts  *response
}

// response is one resource's prebuilt answers.
type response struct {
	get, head   []byte
	etag        []byte // quoted; nil: no conditional requests
	notModified []byte // the answer to an If-None-Match naming etag
}

// New builds the page and its responses.
func New(o Options) *Page {
	if strings.Contains(strings.ToLower(pageJS), "</script") || strings.Contains(strings.ToLower(pageCSS), "</style") {
		panic("web: page.js or page.css closes its own element")
	}
	jwt := "0"
	if o.JWT {
		jwt = "1"
	}
	html := strings.NewReplacer("{{style}}", pageCSS, "{{script}}", pageJS, "{{jwt}}", jwt).Replace(pageHTML)
	p := &Page{
		html: []byte(html),
		csp: "default-src 'none'; script-src 'self' " + hashSource(pageJS) + "; style-src " + hashSource(pageCSS) +
			"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
	if !o.ClientOnly {
		p.page = build([]byte(html), "text/html; charset=utf-8", false,
			"Content-Security-Policy: "+p.csp, "Referrer-Policy: no-referrer")
	}
	// The module may be imported by pages of other origins: it is public,
	// the same for everyone, and carries no credentials. no-cache with an
	// ETag: a browser revalidates (a 304) and never runs a stale wsd.js
	// against a newer wsd.
	p.js = build([]byte(clientJS), "text/javascript; charset=utf-8", true,
		"Access-Control-Allow-Origin: *", "X-TypeScript-Types: "+TypesPath)
	p.dts = build([]byte(clientDTS), "text/plain; charset=utf-8", true, "Access-Control-Allow-Origin: *")
	return p
}

// build prebuilds a resource's responses. Every one has nosniff,
// Cache-Control: no-cache and Connection: close (wsd answers one request
// per connection outside WebSocket).
func build(body []byte, ctype string, etag bool, extra ...string) *response {
	r := &response{}
	var common []byte
	common = append(common, "\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n"...)
	if etag {
		sum := sha256.Sum256(body)
		r.etag = []byte(`"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`)
		common = append(append(append(common, "ETag: "...), r.etag...), "\r\n"...)
	}
	for _, h := range extra {
		common = append(append(common, h...), "\r\n"...)
	}
	common = append(common, "Connection: close\r\n\r\n"...)

	var h []byte
	h = append(h, "HTTP/1.1 200 OK\r\nContent-Type: "...)
	h = append(h, ctype...)
	h = append(h, "\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(len(body)), 10)
	h = append(h, common...)
	r.head = h
	r.get = append(append([]byte(nil), h...), body...)
	if etag {
		r.notModified = append([]byte("HTTP/1.1 304 Not Modified"), common...) // no body, no length
	}
	return r
}

// hashSource is the CSP source expression allowing exactly this inline text.
func hashSource(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// HTML returns the document the page serves.
func (p *Page) HTML() []byte { return p.html }

// CSP returns the page's Content-Security-Policy.
func (p *Page) CSP() string { return p.csp }

// Respond returns the complete HTTP response for a request head (through
// its blank line) that asks for the page (/), the client module (/wsd.js)
// or its types (/wsd.d.ts): GET or HEAD (any query string) over HTTP/1.x,
// with neither an Upgrade nor a Sec-WebSocket-Key header. A GET of the
// module or its types whose If-None-Match names its ETag gets a 304. For
// any other request it returns nil, and the caller answers it as it would
// without the page. The returned bytes are shared: do not modify them.
func (p *Page) Respond(head []byte) []byte {
	line, rest, ok := bytes.Cut(head, crlf)
	if !ok {
		return nil
	}
	method, line, _ := bytes.Cut(line, sp)
	target, proto, _ := bytes.Cut(line, sp)
	get := string(method) == "GET"
	if !get && string(method) != "HEAD" || !bytes.HasPrefix(proto, http1) {
		return nil
	}
	var r *response
	switch path, _, _ := bytes.Cut(target, question); string(path) {
	case "/":
		r = p.page
	case ClientPath:
		r = p.js
	case TypesPath:
		r = p.dts
	}
	if r == nil {
		return nil
	}
	fresh := false
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, crlf)
		name, val, _ := bytes.Cut(h, colon)
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, upgrade) || bytes.EqualFold(name, secKey) {
			return nil // a WebSocket client: its handshake error is more use to it
		}
		if r.etag != nil && bytes.EqualFold(name, ifNoneMatch) && matchETag(val, r.etag) {
			fresh = true
		}
	}
	switch {
	case fresh:
		return r.notModified
	case get:
		return r.get
	default:
		return r.head
	}
}

// matchETag reports whether an If-None-Match value (a list of entity tags,
// weak ones included, or *) names etag.
func matchETag(val, etag []byte) bool {
	for len(val) > 0 {
		var t []byte
		t, val, _ = bytes.Cut(val, comma)
		t = bytes.TrimSpace(t)
		t = bytes.TrimPrefix(t, weak)
		if bytes.Equal(t, etag) || bytes.Equal(t, star) {
			return true
		}
	}
	return false
}

var (
	crlf     = []byte("\r\n")
	sp       = []byte(" ")
	question = []byte("?")
	colon    = []byte(":")
	http1    = []byte("HTTP/1.")
	upgrade  = []byte("Upgrade")
	secKey   = []byte("Sec-WebSocket-Key")

	ifNoneMatch = []byte("If-None-Match")
	comma       = []byte(",")
	weak        = []byte("W/")
	star        = []byte("*")
)
