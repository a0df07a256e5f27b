// Package web is wsd's built-in chat page: one HTML document with its
// style and script inline, embedded in the binary, answered to a plain
// GET / (no Upgrade header) on the client listener. The WebSocket
// endpoint stays / as in the seed protocol.
//
// The whole HTTP response is built once, in New; serving it is a copy.
// The Content-Security-Policy names the page's own script and style by
// their SHA-256, so nothing else runs, and allows connections only back to
// the page's own origin ('self', which covers ws: and wss: to the same
// host and port in CSP Level 3 browsers).
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
)

// Options adapts the page to the server's configuration.
type Options struct {
	// JWT shows the token field: the server requires a token at the handshake.
	JWT bool
}

// Page holds the prebuilt responses.
type Page struct {
	html []byte
	csp  string
	get  []byte // complete response to GET
	head []byte // the same head, no body, for HEAD
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
		csp: "default-src 'none'; script-src " + hashSource(pageJS) + "; style-src " + hashSource(pageCSS) +
			"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
	var h []byte
	h = append(h, "HTTP/1.1 200 OK\r\n"...)
	h = append(h, "Content-Type: text/html; charset=utf-8\r\n"...)
	h = append(h, "Content-Length: "...)
	h = strconv.AppendInt(h, int64(len(p.html)), 10)
	h = append(h, "\r\nContent-Security-Policy: "...)
	h = append(h, p.csp...)
	h = append(h, "\r\nX-Content-Type-Options: nosniff\r\n"...)
	h = append(h, "Referrer-Policy: no-referrer\r\n"...)
	h = append(h, "Cache-Control: no-cache\r\n"...)
	h = append(h, "Connection: close\r\n\r\n"...)
	p.head = h
	p.get = append(append([]byte(nil), h...), p.html...)
	return p
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
// its blank line) that asks for the page: GET or HEAD of / (any query
// string) over HTTP/1.x, with neither an Upgrade nor a Sec-WebSocket-Key
// header. For any other request it returns nil, and the caller answers it
// as it would without the page. The returned bytes are shared: do not
// modify them.
func (p *Page) Respond(head []byte) []byte {
	line, rest, ok := bytes.Cut(head, crlf)
	if !ok {
		return nil
	}
	method, line, _ := bytes.Cut(line, sp)
	target, proto, _ := bytes.Cut(line, sp)
	var resp []byte
	switch string(method) {
	case "GET":
		resp = p.get
	case "HEAD":
		resp = p.head
	default:
		return nil
	}
	if path, _, _ := bytes.Cut(target, question); string(path) != "/" || !bytes.HasPrefix(proto, http1) {
		return nil
	}
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, crlf)
		name, _, _ := bytes.Cut(h, colon)
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, upgrade) || bytes.EqualFold(name, secKey) {
			return nil // a WebSocket client: its handshake error is more use to it
		}
	}
	return resp
}

var (
	crlf     = []byte("\r\n")
	sp       = []byte(" ")
	question = []byte("?")
	colon    = []byte(":")
	http1    = []byte("HTTP/1.")
	upgrade  = []byte("Upgrade")
	secKey   = []byte("Sec-WebSocket-Key")
)
