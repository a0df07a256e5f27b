package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// These tests drive wsd's chat page (package web) in headless Chromium,
// against the real binary. Chromium comes from Debian's package
// (`apt-get install chromium`, which .ci/run does when it is missing);
// where it is not installed or cannot start, the tests say so and skip.

// findChromium returns the browser to drive: $WSD_CHROMIUM, else the first
// of the usual names on PATH.
func findChromium() (string, error) {
	if p := os.Getenv("WSD_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on PATH (Debian: apt-get install chromium; .ci/run installs it)")
}

// The browser is started once per test process, on first use, and
// shared: each test opens its own tabs. TestMain (main_test.go) stops it.
var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserStop   context.CancelFunc = func() {}
	browserSkip   string
	browserBanner string
)

// startBrowser returns the shared headless Chromium, or skips the test
// saying why there is none.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	browserOnce.Do(launchBrowser)
	if browserSkip != "" {
		t.Skipf("browser tests skipped: %s", browserSkip)
	}
	t.Logf("browser: %s", browserBanner)
	return browserCtx
}

func launchBrowser() {
	path, err := findChromium()
	if err != nil {
		browserSkip = err.Error()
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(960, 640),
		chromedp.Flag("lang", "en-US"),
		// TestBrowserTLS's terminator has a throwaway self-signed certificate.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	browserStop = func() { cancelBrowser(); cancelAlloc() }
	// The first Run starts the browser and ties its life to its context, so
	// it gets the browser's own context, bounded here by a timer instead.
	type started struct {
		version string
		err     error
	}
	done := make(chan started, 1)
	go func() {
		v, err := chromedp.Run(browser, chromedp.Evaluate[string](`navigator.userAgent`))
		done <- started{v, err}
	}()
	select {
	case s := <-done:
		if s.err != nil {
			browserSkip = fmt.Sprintf("Chromium (%s) cannot start: %v", path, s.err)
			return
		}
		browserCtx, browserBanner = browser, path+" ("+s.version+")"
	case <-time.After(30 * time.Second):
		browserSkip = fmt.Sprintf("Chromium (%s) did not start in 30s", path)
		browserStop()
	}
}

// chatPage is one tab showing wsd's page.
type chatPage struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu       sync.Mutex
	problems []string // exceptions and CSP reports from the page's console
	offered  []string // Sec-WebSocket-Extensions Chromium sent
	answered []string // Sec-WebSocket-Extensions wsd answered ("" for none)
	sockets  []string // URLs of the WebSockets the page opened
}

// openPage opens a tab on url and waits until the page shows it connected.
func openPage(t *testing.T, browser context.Context, label, url string) *chatPage {
	t.Helper()
	p := newTab(t, browser, label)
	p.do(chromedp.Navigate(url))
	p.waitState("open", 15*time.Second)
	return p
}

// newTab opens a blank tab that records what the page logs.
func newTab(t *testing.T, browser context.Context, label string) *chatPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	p := &chatPage{t: t, name: label, ctx: ctx}
	// Listen is the first call on the tab's context: it creates the tab,
	// whose life is tied to the context of that first call (not to the
	// timeouts of later ones).
	err := chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			p.problems = append(p.problems, "exception: "+exceptionText(e.ExceptionDetails))
		case *log.EventEntryAdded:
			if e.Entry.Source == log.EntrySourceSecurity || strings.Contains(e.Entry.Text, "Content Security Policy") {
				p.problems = append(p.problems, "security: "+e.Entry.Text)
			}
		case *network.EventWebSocketCreated:
			p.sockets = append(p.sockets, e.URL)
		case *network.EventWebSocketHandshakeResponseReceived:
			ext, _ := e.Response.Headers["Sec-WebSocket-Extensions"].(string)
			p.answered = append(p.answered, ext)
			if off, ok := e.Response.RequestHeaders["Sec-WebSocket-Extensions"].(string); ok {
				p.offered = append(p.offered, off)
			}
		}
	})
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	return p
}

func (p *chatPage) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func eval[T any](p *chatPage, js string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		p.t.Fatalf("%s: evaluating %.60q: %v", p.name, js, err)
	}
	return v
}

// line is one entry of the page's message list.
type line struct {
	From string `json:"from"` // "" when the sender is unknown
	Text string `json:"text"`
	Enc  string `json:"enc"` // "text" or "gzip": the frame it arrived in
}

// view is what the page shows.
type view struct {
	State     string   `json:"state"`
	Status    string   `json:"status"`
	LastClose string   `json:"lastClose"`
	Info      string   `json:"info"`
	Msgs      []line   `json:"msgs"`
	Sys       []string `json:"sys"`
}

const viewJS = `(() => {
	const s = document.getElementById("state");
	const li = Array.from(document.querySelectorAll("#log li"));
	return {
		state: s.dataset.state, status: s.textContent, lastClose: s.dataset.lastClose || "",
		info: document.getElementById("info").textContent,
		msgs: li.filter(l => l.classList.contains("msg")).map(l => ({
			from: l.querySelector(".from").classList.contains("anon") ? "" : l.querySelector(".from").textContent,
			text: l.querySelector(".text").textContent, enc: l.dataset.enc })),
		sys: li.filter(l => l.classList.contains("sys")).map(l => l.querySelector(".text").textContent),
	};
})()`

func (p *chatPage) view() view {
	p.t.Helper()
	return eval[view](p, viewJS)
}

// waitFor polls the page's view until cond holds.
func (p *chatPage) waitFor(what string, timeout time.Duration, cond func(view) bool) view {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := p.view()
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s not seen in %v; page shows state %q %q, last close %q, %d messages, system lines %q",
				p.name, what, timeout, v.State, v.Status, v.LastClose, len(v.Msgs), v.Sys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *chatPage) waitState(state string, timeout time.Duration) view {
	p.t.Helper()
	return p.waitFor("state "+state, timeout, func(v view) bool { return v.State == state })
}

// waitText waits until the page lists a message with this text.
func (p *chatPage) waitText(text string) view {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("message %q", text), 15*time.Second, func(v view) bool {
		return slices.ContainsFunc(v.Msgs, func(l line) bool { return l.Text == text })
	})
}

// send types nothing: it fills the message box and presses Send, as a
// person would after typing (typing itself is exercised by typeAndSend).
func (p *chatPage) send(text string) {
	p.t.Helper()
	p.do(chromedp.SetValue(chromedp.ID("text"), text), chromedp.Click(chromedp.ID("send")))
}

// typeAndSend types the text key by key and presses Enter.
func (p *chatPage) typeAndSend(text string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.ID("text"), text+"\r"))
}

func (p *chatPage) checkClean() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.problems {
		p.t.Errorf("%s: %s", p.name, s)
	}
}

// seedLine is how a message a seed client received reads on a page.
func seedLine(raw string) line {
	var m struct {
		From *string `json:"from"`
		Text *string `json:"text"`
	}
	if strings.HasPrefix(raw, "{") && json.Unmarshal([]byte(raw), &m) == nil && m.From != nil && m.Text != nil {
		return line{From: *m.From, Text: *m.Text}
	}
	return line{Text: raw}
}

func texts(ls []line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

// TestBrowserChat: two pages and a seed-protocol Go client chat in the
// global room through the real binary; a third page with the first one's
// name replaces it; a room change isolates; a restart closes the pages with
// 1001 and they reconnect to the new process on the same address.
func TestBrowserChat(t *testing.T) {
	browser := startBrowser(t)
	addr := freeAddr(t)
	first := wstest.StartBinary(t, "-addr", addr, "-shutdown-timeout", "5s")
	if !strings.Contains(first.Log(), "page=http://"+addr+"/") {
		t.Errorf("the listening line does not say where the page is:\n%s", first.Log())
	}
	base := "http://" + addr + "/"

	alice := openPage(t, browser, "alice", base+"?name=alice&gzip=0")
	bob := openPage(t, browser, "bob", base+"?name=bob")  // gzip is on by default
	carol := wstest.SeedDial(t, addr, "specialKey=carol") // a client of the original protocol
	carolGot := func() line {
		t.Helper()
		s, mt := wstest.SeedRead(t, carol)
		if mt != websocket.TextMessage {
			t.Fatalf("carol got message type %d", mt)
		}
		return seedLine(s)
	}

	// A conversation, one message at a time.
	var want []line
	say := func(from string, p *chatPage, text string) {
		t.Helper()
		if p != nil {
			p.send(text)
		} else if err := carol.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
			t.Fatal(err)
		}
		l := line{From: from, Text: text}
		want = append(want, l)
		if got := carolGot(); got != l {
			t.Fatalf("carol got %+v, want %+v", got, l)
		}
		alice.waitText(text)
		bob.waitText(text)
	}
	alice.typeAndSend("hi bob, is the new build up?")
	want = append(want, line{From: "alice", Text: "hi bob, is the new build up?"})
	if got := carolGot(); got != want[0] {
		t.Fatalf("carol got %+v, want %+v", got, want[0])
	}
	say("bob", bob, `yes, and <b>markup</b> stays text: <img src=x onerror="window.pwned=1">`)
	say("", nil, "hello from a Go client of the original protocol (plain text, so no sender)")
	// Long enough to compress: alice's page gets it as a permessage-deflate
	// frame (RSV1) and Chromium inflates it.
	say("", nil, strings.Repeat("all work and no play makes jack a dull boy; ", 10))
	say("alice", alice, "bob's page gets every message gzip'd and decodes it with DecompressionStream")
	say("bob", bob, "and it reconnects by itself when wsd restarts — try it")

	png := screenshot(t, bob)
	path := filepath.Join(t.TempDir(), "chat.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot mid-conversation: %s (%d bytes)", path, len(png))
	if dst := os.Getenv("WSD_SCREENSHOT"); dst != "" {
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", dst)
	}

	// A burst from all three at once: every observer sees one order, the
	// server's, and each sender's messages in the order sent.
	const burst = 15
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range burst {
			carol.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "c%d", i))
		}
	}()
	var aliceErr, bobErr error
	for _, s := range []struct {
		p   *chatPage
		pfx string
		err *error
	}{{alice, "a", &aliceErr}, {bob, "b", &bobErr}} {
		go func() {
			defer wg.Done()
			js := fmt.Sprintf(`(() => { const t = document.getElementById("text"), b = document.getElementById("send");
				for (let i = 0; i < %d; i++) { t.value = "%s" + i; b.click(); } })()`, burst, s.pfx)
			ctx, cancel := context.WithTimeout(s.p.ctx, 15*time.Second)
			defer cancel()
			_, *s.err = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](js))
		}()
	}
	wg.Wait()
	if aliceErr != nil || bobErr != nil {
		t.Fatalf("burst: %v %v", aliceErr, bobErr)
	}
	var order []line
	for range 3 * burst {
		order = append(order, carolGot())
	}
	want = append(want, order...)
	for _, who := range []string{"a", "b", "c"} {
		var seq []string
		for _, l := range order {
			if strings.HasPrefix(l.Text, who) {
				seq = append(seq, l.Text)
			}
		}
		for i, s := range seq {
			if s != fmt.Sprintf("%s%d", who, i) {
				t.Fatalf("%s's burst reached carol out of order: %q", who, seq)
			}
		}
	}
	for _, p := range []*chatPage{alice, bob} {
		v := p.waitFor("the whole burst", 15*time.Second, func(v view) bool { return len(v.Msgs) >= len(want) })
		got := make([]line, len(v.Msgs))
		for i, l := range v.Msgs {
			got[i] = line{From: l.From, Text: l.Text}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s shows\n%q\nwant (carol's order)\n%q", p.name, texts(got), texts(want))
		}
		enc := "text"
		if p == bob {
			enc = "gzip"
		}
		for _, l := range v.Msgs {
			if l.Enc != enc {
				t.Fatalf("%s got %q as a %s frame, want %s", p.name, l.Text, l.Enc, enc)
			}
		}
	}
	t.Logf("alice, bob and carol saw the same %d messages in the same order; bob's all arrived gzip'd", len(want))

	// Markup is text: nothing was parsed as HTML, nothing ran.
	for _, p := range []*chatPage{alice, bob} {
		if n := eval[int](p, `document.querySelectorAll("#log img, #log b").length + (window.pwned ? 100 : 0)`); n != 0 {
			t.Errorf("%s: a message was rendered as HTML", p.name)
		}
	}

	// The CSP: a script the page did not ship does not run, and the page
	// cannot connect anywhere but back to its own origin.
	injected := eval[bool](alice, `(() => { const s = document.createElement("script");
		s.textContent = "window.injected = true"; document.body.append(s); return !!window.injected; })()`)
	if injected {
		t.Error("an injected inline script ran despite the CSP")
	}
	blocked := eval[string](alice, fmt.Sprintf(`new Promise((resolve) => {
		document.addEventListener("securitypolicyviolation", (e) => resolve(e.violatedDirective + " " + e.blockedURI), { once: true });
		try { new WebSocket("ws://%s/?specialKey=elsewhere"); } catch (e) { resolve("threw " + e.name); }
		setTimeout(() => resolve("not blocked"), 5000);
	})`, first.AdminAddr), chromedp.EvalAwaitPromise)
	if !strings.HasPrefix(blocked, "connect-src") && !strings.HasPrefix(blocked, "threw") {
		t.Errorf("a WebSocket to another port: %s; want a connect-src violation", blocked)
	}
	t.Logf("CSP: WebSocket to another port of the same host: %s; injected script ran: %v", blocked, injected)
	// Chromium reports both refusals on the console; they were provoked.
	alice.mu.Lock()
	for _, s := range alice.problems {
		t.Logf("alice's console (expected): %.160s", s)
	}
	alice.problems = nil
	alice.mu.Unlock()

	// What Chromium and wsd agreed on.
	bob.mu.Lock()
	offered, answered := slices.Clone(bob.offered), slices.Clone(bob.answered)
	bob.mu.Unlock()
	info := bob.view().Info
	t.Logf("extensions: Chromium offered %q; wsd answered %q; the page's WebSocket.extensions: %q", offered, answered, info)
	// Chromium's default offer negotiates permessage-deflate; wsd compresses
	// each broadcast once from an empty window and asks the browser not to
	// keep its context, so nothing is held per idle connection.
	if len(answered) == 0 || !strings.HasPrefix(answered[0], "permessage-deflate") ||
		!strings.Contains(answered[0], "server_no_context_takeover") ||
		!strings.Contains(info, "permessage-deflate") {
		t.Errorf("Chromium's offer did not negotiate permessage-deflate: answered %q, page shows %q", answered, info)
	}
	if enc, saved := metricValue(t, first.AdminAddr, "wsd_deflate_encodings_total"),
		metricValue(t, first.AdminAddr, "wsd_deflate_bytes_saved_total"); enc == 0 || saved == 0 {
		t.Errorf("nothing reached the pages compressed: %v compressions, %v bytes saved", enc, saved)
	} else {
		t.Logf("permessage-deflate: %v broadcasts compressed, %v bytes saved", enc, saved)
	}

	// A third page with alice's name replaces the first, which says so and
	// stays down.
	alice2 := openPage(t, browser, "alice (second tab)", base+"?name=alice")
	v := alice.waitState("replaced", 10*time.Second)
	if v.LastClose != "4001" || !strings.Contains(v.Status, "replaced") {
		t.Errorf("replaced page shows %q (last close %q)", v.Status, v.LastClose)
	}
	aliceCount := len(v.Msgs)
	alice2.send("alice moved to another tab")
	if got := carolGot(); got.Text != "alice moved to another tab" {
		t.Fatalf("carol got %+v", got)
	}
	bob.waitText("alice moved to another tab")
	time.Sleep(2 * time.Second) // more than the first reconnect delays
	if v := alice.view(); v.State != "replaced" || len(v.Msgs) != aliceCount {
		t.Errorf("the replaced page reconnected: state %q, %d messages (had %d)", v.State, len(v.Msgs), aliceCount)
	}
	if v := alice2.view(); v.State != "open" {
		t.Errorf("the new alice page was replaced back: %q", v.Status)
	}

	// bob moves to room "side": the rooms no longer hear each other.
	bob.do(chromedp.SetValue(chromedp.ID("room"), "side"), chromedp.Click(chromedp.ID("connect")))
	bob.waitFor("connected in room side", 10*time.Second, func(v view) bool {
		return v.State == "open" && strings.Contains(v.Status, "room side")
	})
	bobCount := len(bob.view().Msgs)
	bob.send("only the side room hears this")
	bob.waitText("only the side room hears this")
	if err := carol.WriteMessage(websocket.TextMessage, []byte("only the global room hears this")); err != nil {
		t.Fatal(err)
	}
	if got := carolGot(); got.Text != "only the global room hears this" {
		t.Fatalf("carol got %+v; the side room leaked", got)
	}
	alice2.waitText("only the global room hears this")
	alice2.send("global again")
	if got := carolGot(); got.Text != "global again" {
		t.Fatalf("carol got %+v", got)
	}
	time.Sleep(300 * time.Millisecond)
	if got := texts(bob.view().Msgs[bobCount:]); !slices.Equal(got, []string{"only the side room hears this"}) {
		t.Errorf("bob in room side got %q", got)
	}
	if slices.Contains(texts(alice2.view().Msgs), "only the side room hears this") {
		t.Error("the global room heard the side room")
	}

	// SIGTERM: the pages see 1001 and reconnect to a new process on the
	// same address; the replaced page stays down.
	if err := first.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*chatPage{bob, alice2} {
		// The page's history, not its last close: once the old process is
		// gone its reconnect attempts fail (1006) until the new one starts.
		p.waitFor("close 1001", 10*time.Second, func(v view) bool {
			return slices.ContainsFunc(v.Sys, func(s string) bool { return strings.Contains(s, "closed 1001") })
		})
	}
	carol.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := carol.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("carol: %v, want close 1001", err)
	}
	if code := first.Wait(10 * time.Second); code != 0 {
		t.Fatalf("first wsd exited %d", code)
	}
	restarted := time.Now()
	wstest.StartBinary(t, "-addr", addr)
	for _, p := range []*chatPage{bob, alice2} {
		p.waitFor("reconnected", 20*time.Second, func(v view) bool {
			return v.State == "open" && len(v.Sys) > 0 && strings.HasPrefix(v.Sys[len(v.Sys)-1], "connected")
		})
	}
	t.Logf("both pages reconnected %v after the new process started", time.Since(restarted).Round(time.Millisecond))
	if v := bob.view(); !strings.Contains(v.Status, "room side") {
		t.Errorf("bob came back as %q, want room side", v.Status)
	}
	carol = wstest.SeedDial(t, addr, "specialKey=carol")
	alice2.send("back after the restart")
	if got := carolGot(); got != (line{From: "alice", Text: "back after the restart"}) {
		t.Fatalf("carol got %+v after the restart", got)
	}
	alice2.waitText("back after the restart")
	if v := alice.view(); v.State != "replaced" {
		t.Errorf("the replaced page changed to %q", v.Status)
	}

	for _, p := range []*chatPage{alice, bob, alice2} {
		p.checkClean()
	}
}

func screenshot(t *testing.T, p *chatPage) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return png
}

// TestBrowserPageOff: with -demo=false the browser gets today's refusal.
func TestBrowserPageOff(t *testing.T) {
	browser := startBrowser(t)
	p := wstest.StartBinary(t, "-demo=false")
	if !strings.Contains(p.Log(), "page=off") {
		t.Errorf("listening line does not say the page is off:\n%s", p.Log())
	}
	tab := newTab(t, browser, "page off")
	ctx, cancel := context.WithTimeout(tab.ctx, 15*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate((&url.URL{Scheme: "http", Host: p.Addr, Path: "/"}).String()))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 400 {
		t.Errorf("GET / with -demo=false: %d, want 400", resp.Status)
	}
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

// TestBrowserJWT: with -jwt-secret the page shows the token field, cannot
// connect without a token, and connects with one; with -allowed-origins
// set to the page's own origin it still connects (the page's Origin is
// wsd's own address). A bad room name is caught by the page itself.
func TestBrowserJWT(t *testing.T) {
	browser := startBrowser(t)
	secret := []byte("a secret of at least thirty-two bytes!!")
	addr := freeAddr(t)
	wstest.StartBinary(t, "-addr", addr, "-jwt-secret", string(secret), "-allowed-origins", "http://"+addr)
	p := newTab(t, browser, "dave")
	p.do(chromedp.Navigate("http://" + addr + "/?name=dave&room=lobby"))
	v := p.waitFor("a refused connection", 15*time.Second, func(v view) bool {
		return v.State == "waiting" && strings.Contains(v.Status, "token")
	})
	t.Logf("without a token the page shows: %q", v.Status)
	if !eval[bool](p, `!document.getElementById("token-field").hidden`) {
		t.Error("token field hidden although wsd requires a token")
	}
	tok := mint(t, jwt.SigningMethodHS256, secret, "dave", time.Hour, []string{"lobby"})
	p.do(chromedp.SetValue(chromedp.ID("token"), tok), chromedp.Click(chromedp.ID("connect")))
	p.waitState("open", 15*time.Second)
	p.send("signed in")
	p.waitText("signed in")
	if u := eval[string](p, `location.href`); strings.Contains(u, "token") {
		t.Errorf("the token stays in the address bar: %s", u)
	}

	// An invalid room never leaves the page.
	p.do(chromedp.SetValue(chromedp.ID("room"), "no/slash"), chromedp.Click(chromedp.ID("connect")))
	time.Sleep(300 * time.Millisecond)
	if v := p.view(); v.State != "open" || !strings.Contains(v.Status, "room lobby") {
		t.Errorf("after an invalid room the page shows %q", v.Status)
	}
	p.checkClean()
}

// TestBrowserTLS: served over https (a TLS terminator in front of wsd, as
// in production), the page connects with wss:// to the same host, which
// its CSP's connect-src 'self' allows.
func TestBrowserTLS(t *testing.T) {
	browser := startBrowser(t)
	p := wstest.StartBinary(t)
	front := tlsTerminator(t, p.Addr)
	t0 := time.Now()
	page := openPage(t, browser, "tls", "https://"+front+"/?name=erin&room=secure")
	t.Logf("open took %v", time.Since(t0))
	page.send("over wss")
	page.waitText("over wss")
	page.mu.Lock()
	sockets := slices.Clone(page.sockets)
	page.mu.Unlock()
	if len(sockets) == 0 || !strings.HasPrefix(sockets[0], "wss://"+front+"/?") {
		t.Errorf("the page opened %q, want wss://%s/", sockets, front)
	}
	t.Logf("page over https opened %q", sockets)
	page.checkClean()
}

// tlsTerminator accepts TLS on a loopback port and pipes each connection,
// decrypted, to backend.
func tlsTerminator(t *testing.T, backend string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { io.Copy(b, c); b.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, b)
			}()
		}
	}()
	return ln.Addr().String()
}
