package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/internal/natstest"
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
	t     *testing.T
	name  string
	ctx   context.Context
	close context.CancelFunc // closes the tab

	mu       sync.Mutex
	problems []string        // exceptions and CSP reports from the page's console
	offered  []string        // Sec-WebSocket-Extensions Chromium sent
	answered []string        // Sec-WebSocket-Extensions wsd answered ("" for none)
	sockets  []string        // URLs of the WebSockets the page opened
	frames   map[float64]int // frames received, by opcode (1 text, 2 binary)
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
	p := &chatPage{t: t, name: label, ctx: ctx, close: cancel, frames: map[float64]int{}}
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
		case *network.EventWebSocketFrameReceived:
			p.frames[e.Response.Opcode]++
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

// line is one message of a room's log.
type line struct {
	From   string `json:"from"` // the server-stamped sender
	Text   string `json:"text"`
	Seq    uint64 `json:"seq"`    // 0 for an own message not acked yet
	Status string `json:"status"` // own messages: pending, acked or failed
}

// roomView is what the page shows of one room (its tab and log).
type roomView struct {
	Room string   `json:"room"`
	Msgs []line   `json:"msgs"`
	Sys  []string `json:"sys"`
}

// view is what the page shows.
type view struct {
	State     string     `json:"state"`
	Status    string     `json:"status"`
	LastClose string     `json:"lastClose"`
	Info      string     `json:"info"`
	Rooms     []roomView `json:"rooms"` // in tab order
	Active    *string    `json:"active"`
	Count     int        `json:"count"`   // "Online n" of the active room
	Members   []string   `json:"members"` // who is online in the active room
}

const viewJS = `(() => {
	const s = document.getElementById("state");
	const tabs = Array.from(document.querySelectorAll("#tabs .tab"));
	const sel = tabs.find((t) => t.getAttribute("aria-selected") === "true");
	return {
		state: s.dataset.state, status: s.textContent, lastClose: s.dataset.lastClose || "",
		info: document.getElementById("info").textContent,
		rooms: Array.from(document.querySelectorAll("#logs .log")).map((ol) => ({
			room: ol.dataset.room,
			msgs: Array.from(ol.querySelectorAll("li.msg")).map((l) => ({
				from: l.dataset.from, text: l.querySelector(".text").textContent,
				seq: Number(l.dataset.seq || 0), status: l.dataset.status || "" })),
			sys: Array.from(ol.querySelectorAll("li.sys")).map((l) => l.querySelector(".text").textContent),
		})),
		active: sel ? sel.dataset.room : null,
		count: Number(document.getElementById("count").textContent),
		members: Array.from(document.querySelectorAll("#members li")).map((l) => l.textContent),
	};
})()`

func (p *chatPage) view() view {
	p.t.Helper()
	return eval[view](p, viewJS)
}

// room returns the room's log as the page shows it (empty if no such tab).
func (v view) room(name string) roomView {
	for _, r := range v.Rooms {
		if r.Room == name {
			return r
		}
	}
	return roomView{Room: name}
}

// sysAll is every system line of every room.
func (v view) sysAll() []string {
	var out []string
	for _, r := range v.Rooms {
		out = append(out, r.Sys...)
	}
	return out
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
			n := 0
			for _, r := range v.Rooms {
				n += len(r.Msgs)
			}
			p.t.Fatalf("%s: %s not seen in %v; page shows state %q %q, last close %q, %d messages, system lines %q",
				p.name, what, timeout, v.State, v.Status, v.LastClose, n, v.sysAll())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *chatPage) waitState(state string, timeout time.Duration) view {
	p.t.Helper()
	return p.waitFor("state "+state, timeout, func(v view) bool { return v.State == state })
}

// waitText waits until the room's log lists a message with this text, acked
// if it is the page's own.
func (p *chatPage) waitText(room, text string) view {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("message %q in room %q", text, room), 15*time.Second, func(v view) bool {
		return slices.ContainsFunc(v.room(room).Msgs, func(l line) bool { return l.Text == text && l.Seq > 0 })
	})
}

// selectRoom clicks the room's tab.
func (p *chatPage) selectRoom(room string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.tab[data-room=%q] .pick`, room))))
}

// send selects the room's tab, fills the message box and presses Send, as
// a person would after typing (typing itself is exercised by typeAndSend).
func (p *chatPage) send(room, text string) {
	p.t.Helper()
	p.selectRoom(room)
	p.do(chromedp.SetValue(chromedp.ID("text"), text), chromedp.Click(chromedp.ID("send")))
}

// typeAndSend types the text key by key into the selected room and presses Enter.
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

func texts(ls []line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

// checkLog fails unless the room's log is want exactly (sender and text),
// each message once, in seq order, every own message acked.
func checkLog(t *testing.T, who string, r roomView, want []line) {
	t.Helper()
	got := make([]line, len(r.Msgs))
	for i, l := range r.Msgs {
		got[i] = line{From: l.From, Text: l.Text}
		if l.Seq == 0 || (i > 0 && l.Seq <= r.Msgs[i-1].Seq) {
			t.Fatalf("%s, room %q: message %d (%q) has seq %d after %d; the room shows %+v; system lines %q",
				who, r.Room, i, l.Text, l.Seq, r.Msgs[max(i-1, 0)].Seq, r.Msgs, r.Sys)
		}
		if l.Status != "" && l.Status != "acked" {
			t.Fatalf("%s, room %q: own message %q is %s", who, r.Room, l.Text, l.Status)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s, room %q shows\n%+v\nwant\n%+v", who, r.Room, got, want)
	}
}

// ordered reports whether the room's log is in seq order, each message
// with a seq. An own message acked before its echo came back keeps its
// place until the echo moves it into the room's order, so a log with one
// is not settled yet.
func ordered(r roomView) bool {
	for i, l := range r.Msgs {
		if l.Seq == 0 || i > 0 && l.Seq <= r.Msgs[i-1].Seq {
			return false
		}
	}
	return true
}

// TestBrowserChat: two pages, each in two rooms as tabs (the global room
// and "side"), and a seed-protocol Go client in the global room chat
// through the real binary. Every page shows every message of a room once,
// in the server's order, with the sender wsd stamped; the seed client gets
// the pages' messages as bare text and the pages show its messages as
// from its key; the side room is not heard in the global room; markup
// stays text; the CSP holds; both pages list who is online; a third page
// with the first one's name replaces it, which stays down.
func TestBrowserChat(t *testing.T) {
	browser := startBrowser(t)
	addr := freeAddr(t)
	first := wstest.StartBinary(t, "-addr", addr, "-shutdown-timeout", "5s")
	if !strings.Contains(first.Log(), "page=http://"+addr+"/") {
		t.Errorf("the listening line does not say where the page is:\n%s", first.Log())
	}
	base := "http://" + addr + "/"

	alice := openPage(t, browser, "alice", base+"?name=alice&rooms=,side&gzip=0")
	bob := openPage(t, browser, "bob", base+"?name=bob&rooms=,side") // gzip is on by default
	carol := wstest.SeedDial(t, addr, "specialKey=carol")            // a client of the original protocol
	carolGot := func() string {
		t.Helper()
		s, mt := wstest.SeedRead(t, carol)
		if mt != websocket.TextMessage {
			t.Fatalf("carol got message type %d", mt)
		}
		return s
	}
	for _, p := range []*chatPage{alice, bob} {
		v := p.view()
		if len(v.Rooms) != 2 || v.Rooms[0].Room != "" || v.Rooms[1].Room != "side" || v.Active == nil || *v.Active != "" {
			t.Fatalf("%s shows rooms %+v, active %v; want tabs everyone and side, everyone selected", p.name, v.Rooms, v.Active)
		}
	}

	// A conversation in the global room, one message at a time.
	var global, side []line
	say := func(from string, p *chatPage, room, text string) {
		t.Helper()
		switch {
		case p == nil:
			if err := carol.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
				t.Fatal(err)
			}
		case room == "" && strings.HasPrefix(text, "hi bob"):
			p.selectRoom("")
			p.typeAndSend(text)
		default:
			p.send(room, text)
		}
		l := line{From: from, Text: text}
		if room == "" {
			global = append(global, l)
			if got := carolGot(); got != text {
				t.Fatalf("carol got %q, want the bare text %q", got, text)
			}
		} else {
			side = append(side, l)
		}
		alice.waitText(room, text)
		bob.waitText(room, text)
	}
	say("alice", alice, "", "hi bob, is the new build up?")
	say("bob", bob, "", `yes, and <b>markup</b> stays text: <img src=x onerror="window.pwned=1">`)
	say("carol", nil, "", "hello from a Go client of the original protocol: the page shows my key as the sender")
	// Long enough to compress: alice's page gets it as a permessage-deflate
	// frame (RSV1) and Chromium inflates it.
	say("carol", nil, "", strings.Repeat("all work and no play makes jack a dull boy; ", 3))
	say("alice", alice, "side", "in the side room only: carol is not here")
	say("bob", bob, "side", "bob's page gets every envelope gzip'd; wsd.js inflates it with DecompressionStream")
	say("alice", alice, "", "and wsd.js reconnects by itself, rejoining every room with since")
	say("bob", bob, "side", "each tab is a room on the same socket")
	bob.selectRoom("")

	// Who is online: both pages list all three in the global room, and
	// the two of them in side.
	for _, p := range []*chatPage{alice, bob} {
		p.selectRoom("")
		p.waitFor("three online in the global room", 10*time.Second, func(v view) bool {
			return v.Count == 3 && slices.Equal(v.Members, []string{"alice", "bob", "carol"})
		})
		p.selectRoom("side")
		p.waitFor("two online in side", 10*time.Second, func(v view) bool {
			return v.Count == 2 && slices.Equal(v.Members, []string{"alice", "bob"})
		})
	}
	bob.selectRoom("")
	say("alice", alice, "side", "bob's side tab counts this one as unread")
	if n := eval[string](bob, `document.querySelector('.tab[data-room="side"] .pick').dataset.unread`); n != "1" {
		t.Errorf("bob's side tab shows %q unread, want 1", n)
	}
	alice.selectRoom("")

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

	// A burst from all three at once into the global room, and from the
	// pages into side: every observer sees one order, the server's, and
	// each sender's messages in the order sent.
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
				const pick = (r) => document.querySelector('.tab[data-room="' + r + '"] .pick').click();
				for (let i = 0; i < %d; i++) { pick(""); t.value = "%s" + i; b.click(); pick("side"); t.value = "%s-side" + i; b.click(); } })()`,
				burst, s.pfx, s.pfx)
			ctx, cancel := context.WithTimeout(s.p.ctx, 15*time.Second)
			defer cancel()
			_, *s.err = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](js))
		}()
	}
	wg.Wait()
	if aliceErr != nil || bobErr != nil {
		t.Fatalf("burst: %v %v", aliceErr, bobErr)
	}
	var order []string
	for range 3 * burst {
		order = append(order, carolGot())
	}
	for _, who := range []string{"a", "b", "c"} {
		var seq []string
		for _, s := range order {
			if strings.HasPrefix(s, who) {
				seq = append(seq, s)
			}
		}
		for i, s := range seq {
			if s != fmt.Sprintf("%s%d", who, i) {
				t.Fatalf("%s's burst reached carol out of order: %q", who, seq)
			}
		}
	}
	for _, s := range order {
		global = append(global, line{From: map[byte]string{'a': "alice", 'b': "bob", 'c': "carol"}[s[0]], Text: s})
	}
	// side's order is the server's: take it from alice's page, check bob's
	// matches and each sender's messages are in the order sent.
	v := alice.waitFor("the side burst", 15*time.Second, func(v view) bool { return len(v.room("side").Msgs) >= len(side)+2*burst })
	var sideOrder []line
	for _, l := range v.room("side").Msgs[len(side):] {
		sideOrder = append(sideOrder, line{From: l.From, Text: l.Text})
	}
	for _, who := range []string{"alice", "bob"} {
		n := 0
		for _, l := range sideOrder {
			if l.From == who {
				if l.Text != fmt.Sprintf("%s-side%d", who[:1], n) {
					t.Fatalf("%s's side burst out of order: %q", who, texts(sideOrder))
				}
				n++
			}
		}
		if n != burst {
			t.Fatalf("%d of %s's side burst, want %d: %q", n, who, burst, texts(sideOrder))
		}
	}
	side = append(side, sideOrder...)
	for _, p := range []*chatPage{alice, bob} {
		v := p.waitFor("the whole burst, in order", 15*time.Second, func(v view) bool {
			return len(v.room("").Msgs) >= len(global) && len(v.room("side").Msgs) >= len(side) &&
				ordered(v.room("")) && ordered(v.room("side"))
		})
		checkLog(t, p.name, v.room(""), global)
		checkLog(t, p.name, v.room("side"), side)
	}
	time.Sleep(200 * time.Millisecond)
	for _, p := range []*chatPage{alice, bob} { // and nothing more came (no doubles)
		v := p.view()
		checkLog(t, p.name, v.room(""), global)
		checkLog(t, p.name, v.room("side"), side)
	}
	t.Logf("alice, bob and carol saw the same %d messages of the global room in the same order, the pages the same %d of side", len(global), len(side))
	bob.mu.Lock()
	bobText, bobBinary := bob.frames[1], bob.frames[2]
	bob.mu.Unlock()
	if bobText != 0 || bobBinary < len(global)+len(side) {
		t.Errorf("bob (gzip) got %d text and %d binary frames; want every envelope gzip'd", bobText, bobBinary)
	}

	// Markup is text: nothing was parsed as HTML, nothing ran.
	for _, p := range []*chatPage{alice, bob} {
		if n := eval[int](p, `document.querySelectorAll("#logs img, #logs b").length + (window.pwned ? 100 : 0)`); n != 0 {
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
	t.Logf("extensions: Chromium offered %q; wsd answered %q; the page shows: %q", offered, answered, info)
	// Chromium's default offer negotiates permessage-deflate; wsd compresses
	// each broadcast once from an empty window and asks the browser not to
	// keep its context, so nothing is held per idle connection.
	if len(answered) == 0 || !strings.HasPrefix(answered[0], "permessage-deflate") ||
		!strings.Contains(answered[0], "server_no_context_takeover") ||
		!strings.Contains(info, "permessage-deflate") || !strings.Contains(info, "protocol wsd.v1") {
		t.Errorf("Chromium's offer did not negotiate permessage-deflate and wsd.v1: answered %q, page shows %q", answered, info)
	}
	// (wsd_deflate_bytes_saved_total counts seed deliveries only: the
	// pages are v1 members, so only the encodings are asserted.)
	if enc := metricValue(t, first.AdminAddr, "wsd_deflate_encodings_total"); enc == 0 {
		t.Errorf("nothing reached the pages compressed: %v compressions", enc)
	} else {
		t.Logf("permessage-deflate: %v broadcasts compressed", enc)
	}

	// A third page with alice's name replaces the first, which says so and
	// stays down.
	alice2 := openPage(t, browser, "alice (second tab)", base+"?name=alice")
	v = alice.waitState("replaced", 10*time.Second)
	if v.LastClose != "4001" || !strings.Contains(v.Status, "replaced") {
		t.Errorf("replaced page shows %q (last close %q)", v.Status, v.LastClose)
	}
	aliceCount := len(v.room("").Msgs)
	alice2.send("", "alice moved to another tab")
	if got := carolGot(); got != "alice moved to another tab" {
		t.Fatalf("carol got %q", got)
	}
	bob.waitText("", "alice moved to another tab")
	if v := alice2.view(); !slices.ContainsFunc(v.room("").Msgs, func(l line) bool { return l.Text == "c14" && l.From == "carol" }) {
		t.Errorf("the new tab did not show the room's recent history on join: %q", texts(v.room("").Msgs))
	}
	time.Sleep(2 * time.Second) // more than the first reconnect delays
	if v := alice.view(); v.State != "replaced" || len(v.room("").Msgs) != aliceCount {
		t.Errorf("the replaced page reconnected: state %q, %d messages (had %d)", v.State, len(v.room("").Msgs), aliceCount)
	}
	if v := alice2.view(); v.State != "open" {
		t.Errorf("the new alice page was replaced back: %q", v.Status)
	}

	// bob leaves side: its tab goes, and side's messages no longer reach him.
	bob.do(chromedp.Click(chromedp.CSS(`.tab[data-room="side"] .close`)))
	bob.waitFor("side closed", 5*time.Second, func(v view) bool { return len(v.Rooms) == 1 })
	if u := eval[string](bob, `location.search`); !strings.Contains(u, "rooms=&") && !strings.HasSuffix(u, "rooms=") {
		t.Errorf("the address keeps the rooms: %s", u)
	}
	for _, p := range []*chatPage{alice, bob, alice2} {
		p.checkClean()
	}
}

// restartRooms are the rooms of the restart tests: the sender writes to
// them in turn, so both ways of resuming are exercised (the first room in
// the query of the new connection, the second by a join with since).
var restartRooms = []string{"lobby", "side"}

// restartRun is what the restart tests saw: a page sending while wsd
// restarts under it, and a second page in the same rooms.
type restartRun struct {
	page, observer  view                         // the sender's and the other page at the end
	acked, failed   int                          // the sender's own messages
	sent            int                          // what it was asked to send
	before, after   map[string][]wstest.Envelope // by room, its messages on the old and the new process
	recoveryNotices []string                     // the sender's system lines about the reconnect
	sender, obs     *chatPage
}

// sendText is the text of message i and restartRoom the room it is sent to.
func sendText(i int) string    { return fmt.Sprintf("m%d", i) }
func restartRoom(i int) string { return restartRooms[i%len(restartRooms)] }

// sendThroughRestart opens two pages, sender sam and observer olive, each
// in rooms lobby and side, of a wsd started with extra flags; sam sends n
// messages 15 ms apart, to the two rooms in turn, and wsd restarts
// (SIGTERM, then a new process on the same address with the same flags)
// after the first third. A v1 client records the rooms on the old
// process; on the new one the rooms' history is read at the end. It
// returns when sam's page has no message pending.
func sendThroughRestart(t *testing.T, n int, flags ...string) restartRun {
	t.Helper()
	browser := startBrowser(t)
	addr := freeAddr(t)
	args := append([]string{"-addr", addr, "-history-size", "1000", "-shutdown-timeout", "5s"}, flags...)
	old := wstest.StartBinary(t, args...)
	watcher := wstest.DialV1(t, addr, "specialKey=watcher&room=lobby")
	watcher.Expect(t, "joined")
	if err := watcher.Join("side", 0, ""); err != nil {
		t.Fatal(err)
	}
	watcher.ExpectUntil(t, "joined")
	rooms := "&rooms=" + strings.Join(restartRooms, ",")
	page := openPage(t, browser, "sender", "http://"+addr+"/?name=sam"+rooms)
	// The observer reaches wsd through a proxy, cut when wsd is told to
	// stop and down until the sender has every message acked: it comes
	// back later than the sender and has messages to recover.
	front := startFront(t, addr)
	obs := openPage(t, browser, "observer", "http://"+front.Addr()+"/?name=olive"+rooms)
	for _, p := range []*chatPage{page, obs} {
		p.waitFor("both pages and the watcher in lobby", 5*time.Second, func(v view) bool { return v.Count == 3 })
	}

	run := restartRun{sent: n, sender: page, obs: obs, before: map[string][]wstest.Envelope{}, after: map[string][]wstest.Envelope{}}
	eval[chromedp.Void](page, fmt.Sprintf(`(() => { const t = document.getElementById("text"), b = document.getElementById("send");
		const rooms = %q.split(",");
		const pick = (r) => document.querySelector('.tab[data-room="' + r + '"] .pick').click();
		window.sentN = 0;
		const tick = () => { pick(rooms[window.sentN %% rooms.length]); t.value = "m" + window.sentN; b.click();
			if (++window.sentN < %d) setTimeout(tick, 15); };
		tick(); })()`, strings.Join(restartRooms, ","), n))
	got := make(chan map[string][]wstest.Envelope, 1)
	go func() {
		msgs := map[string][]wstest.Envelope{}
		for {
			e, err := watcher.Read(10 * time.Second)
			if err != nil {
				got <- msgs
				return
			}
			if e.Type == "message" {
				msgs[e.Room] = append(msgs[e.Room], e)
			}
		}
	}()
	for eval[int](page, `window.sentN`) < n/3 {
		time.Sleep(20 * time.Millisecond)
	}
	front.Switch("", true)
	if err := old.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := old.Wait(10 * time.Second); code != 0 {
		t.Fatalf("the first wsd exited %d", code)
	}
	run.before = <-got
	wstest.StartBinary(t, args...)
	v := page.waitFor("every message acked or failed", 60*time.Second, func(v view) bool {
		if eval[int](page, `window.sentN`) < n {
			return false
		}
		mine := 0
		for _, room := range restartRooms {
			for _, l := range v.room(room).Msgs {
				if l.From == "sam" {
					mine++
					if l.Status == "pending" {
						return false
					}
				}
			}
		}
		return mine == n
	})
	run.page = v
	front.Switch(addr, false)
	for _, room := range restartRooms {
		for _, l := range v.room(room).Msgs {
			switch l.Status {
			case "acked":
				run.acked++
			case "failed":
				run.failed++
			}
		}
		for _, s := range v.room(room).Sys {
			if strings.Contains(s, "recover") {
				run.recoveryNotices = append(run.recoveryNotices, room+": "+s)
			}
		}
	}
	reader := wstest.DialV1(t, addr, "specialKey=reader&room=lobby&history=1000")
	for i, room := range restartRooms {
		if i > 0 {
			if err := reader.JoinHistory(room, 1000); err != nil {
				t.Fatal(err)
			}
		}
		j := reader.ExpectUntil(t, "joined")
		for range j.Seq {
			run.after[room] = append(run.after[room], reader.ExpectUntil(t, "message"))
		}
	}
	// The observer has had what it will get once it is back and the reader
	// has it all.
	run.observer = obs.waitFor("back", 30*time.Second, func(v view) bool {
		return v.State == "open" && slices.ContainsFunc(v.room(restartRooms[len(restartRooms)-1]).Sys, func(s string) bool {
			return strings.Contains(s, "recover")
		})
	})
	time.Sleep(500 * time.Millisecond)
	run.observer = obs.view()
	page.checkClean()
	obs.checkClean()
	return run
}

// TestBrowserRestart: a page sends 200 messages to two rooms while wsd
// restarts under it, a second page listening in both. Without
// -history-dir the history is in memory: the new process has a new epoch,
// the pages say recovery was not possible, and every message is either
// acked or reported failed — none shown twice on either page, none stored
// twice across the two processes, every acked one stored.
func TestBrowserRestart(t *testing.T) {
	const n = 200
	run := sendThroughRestart(t, n)
	t.Logf("%d sent: %d acked, %d failed; the old process had %d+%d of them, the new one %d+%d; notices %q",
		n, run.acked, run.failed, len(run.before["lobby"]), len(run.before["side"]),
		len(run.after["lobby"]), len(run.after["side"]), run.recoveryNotices)
	if run.acked+run.failed != n {
		t.Errorf("%d acked + %d failed, want %d", run.acked, run.failed, n)
	}
	for _, pv := range []struct {
		who string
		v   view
	}{{"sender", run.page}, {"observer", run.observer}} {
		for _, room := range restartRooms {
			r := pv.v.room(room)
			if !slices.ContainsFunc(r.Sys, func(s string) bool { return strings.Contains(s, "not possible") && strings.Contains(s, "new epoch") }) {
				t.Errorf("%s, room %s: the page did not say recovery was impossible: %q", pv.who, room, r.Sys)
			}
			if pv.who == "sender" && !slices.ContainsFunc(r.Sys, func(s string) bool { return strings.HasPrefix(s, "closed 1001") }) {
				t.Errorf("%s, room %s: the page did not show the drain's 1001: %q", pv.who, room, r.Sys) // the observer's connection was cut
			}
		}
		if pv.v.State != "open" {
			t.Errorf("the %s page is %q after the restart: %s", pv.who, pv.v.State, pv.v.Status)
		}
	}
	for _, room := range restartRooms {
		if len(run.before[room]) == 0 || len(run.after[room]) == 0 {
			t.Errorf("room %s: the restart was not in the middle: %d messages before, %d after", room, len(run.before[room]), len(run.after[room]))
		}
	}
	stored := map[string]int{}
	for _, room := range restartRooms {
		for _, e := range append(slices.Clone(run.before[room]), run.after[room]...) {
			if e.From != "sam" {
				t.Errorf("a message from %q: %s", e.From, e.Raw)
			}
			stored[e.Text]++
		}
	}
	for _, pv := range []struct {
		who string
		v   view
	}{{"sender", run.page}, {"observer", run.observer}} {
		shown := map[string]int{}
		for _, room := range restartRooms {
			for _, l := range pv.v.room(room).Msgs {
				shown[l.Text]++
				if stored[l.Text] > 1 {
					t.Errorf("%q stored %d times", l.Text, stored[l.Text])
				}
				if l.Status == "acked" && stored[l.Text] != 1 {
					t.Errorf("%q acked but stored %d times", l.Text, stored[l.Text])
				}
			}
		}
		for text, k := range shown {
			if k != 1 {
				t.Errorf("%s: %q shown %d times", pv.who, text, k)
			}
		}
	}
}

// TestBrowserRestartDurable: the same restart with -history-dir. The
// store keeps each room's order, history and dedup across the restart, so
// the epoch stays: both pages end with all 200 messages exactly once, each
// room in the order sent (which is the server's), every one of the
// sender's acked, and both say how many messages were recovered rather
// than that recovery was not possible. The store holds each once.
func TestBrowserRestartDurable(t *testing.T) {
	const n = 200
	run := sendThroughRestart(t, n, "-history-dir", t.TempDir())
	t.Logf("%d sent: %d acked, %d failed; the old process relayed %d+%d of them; the store has %d+%d; notices %q",
		n, run.acked, run.failed, len(run.before["lobby"]), len(run.before["side"]),
		len(run.after["lobby"]), len(run.after["side"]), run.recoveryNotices)
	if run.acked != n {
		t.Errorf("%d of %d acked (%d failed)", run.acked, n, run.failed)
	}
	want := map[string][]line{}
	for i := range n {
		want[restartRoom(i)] = append(want[restartRoom(i)], line{From: "sam", Text: sendText(i)})
	}
	for _, room := range restartRooms {
		if len(run.before[room]) == 0 || len(run.before[room]) >= len(want[room]) {
			t.Errorf("room %s: the restart was not in the middle: %d of %d messages before it", room, len(run.before[room]), len(want[room]))
		}
		var stored []line
		for i, e := range run.after[room] {
			stored = append(stored, line{From: e.From, Text: e.Text})
			if e.Seq != uint64(i+1) {
				t.Errorf("room %s: stored message %d has seq %d", room, i, e.Seq)
			}
		}
		if !slices.Equal(stored, want[room]) {
			t.Errorf("room %s: the store has\n%v\nwant\n%v", room, stored, want[room])
		}
	}
	settled := func(v view) bool {
		k := 0
		for _, room := range restartRooms {
			if !ordered(v.room(room)) {
				return false
			}
			k += len(v.room(room).Msgs)
		}
		return k >= n
	}
	obs := run.obs.waitFor("all messages, in order", 15*time.Second, settled)
	page := run.sender.waitFor("every echo, in order", 15*time.Second, settled)
	for _, pv := range []struct {
		who string
		v   view
	}{{"sender", page}, {"observer", obs}} {
		if pv.v.State != "open" {
			t.Errorf("the %s page is %q after the restart: %s", pv.who, pv.v.State, pv.v.Status)
		}
		for _, room := range restartRooms {
			r := pv.v.room(room)
			checkLog(t, pv.who, r, want[room])
			if slices.ContainsFunc(r.Sys, func(s string) bool { return strings.Contains(s, "not possible") }) {
				t.Errorf("%s, room %s: the page says recovery was not possible: %q", pv.who, room, r.Sys)
			}
			if !slices.ContainsFunc(r.Sys, func(s string) bool { return strings.HasSuffix(s, " recovered") }) {
				t.Errorf("%s, room %s: the page does not say how many messages were recovered: %q", pv.who, room, r.Sys)
			}
			if pv.who == "sender" && !slices.ContainsFunc(r.Sys, func(s string) bool { return strings.HasPrefix(s, "closed 1001") }) {
				t.Errorf("%s, room %s: the page did not show the drain's 1001: %q", pv.who, room, r.Sys) // the observer's connection was cut
			}
		}
	}
	// The observer came back after the sender: it recovered what it missed.
	recovered := 0
	for _, room := range restartRooms {
		for _, s := range obs.room(room).Sys {
			var k int
			if _, err := fmt.Sscanf(s, "%d message", &k); err == nil && strings.HasSuffix(s, " recovered") {
				recovered += k
			}
		}
	}
	t.Logf("the observer, back after the sender, recovered %d messages", recovered)
	if recovered == 0 {
		t.Errorf("the observer recovered nothing: %q %q", obs.room("lobby").Sys, obs.room("side").Sys)
	}
	time.Sleep(300 * time.Millisecond) // and nothing more comes (no doubles)
	for _, p := range []*chatPage{run.sender, run.obs} {
		v := p.view()
		for _, room := range restartRooms {
			checkLog(t, p.name, v.room(room), want[room])
		}
	}
}

// front is a loopback TCP proxy in front of wsd, as a load balancer is:
// each connection it accepts is piped to the backend of the moment. Switch
// changes the backend for new connections ("" refuses them: accepted and
// closed at once, as a backend that is down) and, with cut, closes the
// ones open.
type front struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	closed  bool // the test is over: no more connections
	conns   map[net.Conn]struct{}
}

func startFront(t *testing.T, backend string) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		f.Switch("", true)
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			to := f.backend
			f.mu.Unlock()
			if to == "" {
				c.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.pipe(c, to)
			}()
		}
	}()
	return f
}

func (f *front) Addr() string { return f.ln.Addr().String() }

func (f *front) Switch(backend string, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backend = backend
	if cut {
		for c := range f.conns {
			c.Close()
		}
	}
}

// track records a pipe's two ends so that Switch can cut them; after the
// test it refuses them.
func (f *front) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *front) pipe(c net.Conn, to string) {
	defer c.Close()
	b, err := net.DialTimeout("tcp", to, 5*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	if !f.track(c, b) {
		return
	}
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		delete(f.conns, b)
		f.mu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(b, c)
		b.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(c, b)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

// TestBrowserClusterDrain: two boxes on one NATS with JetStream
// (-history-jetstream), behind a load balancer (a loopback proxy that
// health-checks box a's /readyz and takes it out of rotation once it
// fails). A page on box a sends 100 messages while a v1 client on box b
// sends 100 more to the same room; box a is drained (SIGTERM, lame duck)
// in the middle. Box b is put in rotation once box a has gone and b's
// client has sent ten more, so the page is away while the room goes on.
// The page reconnects through the balancer to box b and recovers exactly:
// it ends with all 200 once, in the room's one order (as box b's history
// has it), every own message acked, and says how many messages it
// recovered (some), not that recovery was impossible.
func TestBrowserClusterDrain(t *testing.T) {
	browser := startBrowser(t)
	ns := natstest.StartJetStream(t, nil)
	natsURL := "nats://" + ns.Addr().String()
	box := func(id string, extra ...string) *wstest.Process {
		return wstest.StartBinary(t, append([]string{"-nats-url", natsURL, "-history-jetstream", "-box-id", id,
			"-history-size", "1000", "-history-store-max", "67108864", "-shutdown-timeout", "5s"}, extra...)...)
	}
	// Box a keeps serving with /readyz at 503 for a second before its
	// closes, as a balancer in front needs to take it out of rotation.
	a := box("a", "-drain-delay", "1s", "-lame-duck-duration", "1s")
	b := box("b")
	lb := startFront(t, a.Addr)
	stopCheck := make(chan struct{})
	checked := make(chan struct{})
	go func() { // the balancer's health check of box a
		defer close(checked)
		for {
			select {
			case <-stopCheck:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := httpClient.Get(adminURL(a, "/readyz"))
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				lb.Switch("", false)
				return
			}
		}
	}()
	t.Cleanup(func() { close(stopCheck); <-checked })

	const room, n = "hall", 100
	page := openPage(t, browser, "pia", "http://"+lb.Addr()+"/?name=pia&rooms="+room)
	bea := wstest.DialV1(t, b.Addr, "specialKey=bea&room="+room)
	bea.ExpectUntil(t, "joined")
	beaDone := make(chan error, 1)
	aGone := make(chan struct{}) // bea's second half waits for it: some of it is sent while the page is away
	var beaSent atomic.Int64
	go func() { // bea's reads: acks and the room's messages
		for {
			if _, err := bea.Read(20 * time.Second); err != nil {
				return
			}
		}
	}()
	eval[chromedp.Void](page, fmt.Sprintf(`(() => { const t = document.getElementById("text"), b = document.getElementById("send");
		window.sentN = 0;
		const tick = () => { t.value = "p" + window.sentN; b.click(); if (++window.sentN < %d) setTimeout(tick, 15); };
		tick(); })()`, n))
	go func() {
		for i := range n {
			if i == n/2 {
				<-aGone
			}
			if err := bea.Send(room, fmt.Sprintf("bea-%d", i), fmt.Sprintf("b%d", i)); err != nil {
				beaDone <- err
				return
			}
			beaSent.Add(1)
			time.Sleep(40 * time.Millisecond)
		}
		beaDone <- nil
	}()
	for eval[int](page, `window.sentN`) < n/3 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := a.Wait(15 * time.Second); code != 0 {
		t.Fatalf("box a exited %d", code)
	}
	close(aGone)
	for k := beaSent.Load(); beaSent.Load() < min(k+10, n); {
		time.Sleep(10 * time.Millisecond)
	}
	lb.Switch(b.Addr, false)
	if err := <-beaDone; err != nil {
		t.Fatalf("bea's sends: %v", err)
	}
	v := page.waitFor("all messages, its own acked", 30*time.Second, func(v view) bool {
		if eval[int](page, `window.sentN`) < n {
			return false
		}
		for _, l := range v.room(room).Msgs {
			if l.Status == "pending" {
				return false
			}
		}
		return len(v.room(room).Msgs) >= 2*n && ordered(v.room(room))
	})

	// The room's one order, as box b's history has it.
	reader := wstest.DialV1(t, b.Addr, "specialKey=reader&room="+room+"&history=1000")
	j := reader.ExpectUntil(t, "joined")
	var want []line
	for range j.Seq {
		e := reader.ExpectUntil(t, "message")
		want = append(want, line{From: e.From, Text: e.Text})
	}
	if len(want) != 2*n {
		t.Fatalf("the room holds %d messages, want %d", len(want), 2*n)
	}
	checkLog(t, "pia", v.room(room), want)
	acked := 0
	for _, l := range v.room(room).Msgs {
		if l.From == "pia" && l.Status == "acked" {
			acked++
		}
	}
	if acked != n {
		t.Errorf("%d of pia's %d messages acked", acked, n)
	}
	sys := v.room(room).Sys
	if !slices.ContainsFunc(sys, func(s string) bool { return strings.HasPrefix(s, "closed 1001") }) {
		t.Errorf("the page did not show the drain's 1001: %q", sys)
	}
	if slices.ContainsFunc(sys, func(s string) bool { return strings.Contains(s, "not possible") }) ||
		!slices.ContainsFunc(sys, func(s string) bool { return strings.HasSuffix(s, " recovered") }) {
		t.Errorf("the page does not say it recovered: %q", sys)
	}
	if v.State != "open" {
		t.Errorf("the page is %q after the drain: %s", v.State, v.Status)
	}
	page.mu.Lock()
	sockets := len(page.sockets)
	page.mu.Unlock()
	recovered := 0
	for _, s := range sys {
		var k int
		if _, err := fmt.Sscanf(s, "%d message", &k); err == nil && strings.HasSuffix(s, " recovered") {
			recovered += k
		}
	}
	if recovered == 0 {
		t.Errorf("the page recovered nothing although bea sent while it was away: %q", sys)
	}
	t.Logf("pia's page: %d messages in the room's order, %d own acked, %d WebSockets opened (box a drained, box b took it); %q",
		len(v.room(room).Msgs), acked, sockets, sys)
	time.Sleep(300 * time.Millisecond) // and nothing more comes (no doubles)
	checkLog(t, "pia", page.view().room(room), want)
	page.checkClean()
}

// docExample returns the first ```js block of a doc, relative to this
// package's directory.
func docExample(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n```js\n")
	if !ok {
		t.Fatalf("%s has no js example", path)
	}
	code, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("%s: the js example is not closed", path)
	}
	return code
}

// TestBrowserDocExamples runs the wsd.js examples of README.md and
// docs/wsd-js.md as they are written, in a page of another origin (as an
// application's page is), against the real binary: the address they name
// is the only thing changed. Each imports /wsd.js from wsd, connects,
// sends hello to lobby and logs its own message when it comes back; a v1
// client in lobby gets the message from alice.
func TestBrowserDocExamples(t *testing.T) {
	browser := startBrowser(t)
	for _, doc := range []string{"../../README.md", "../../docs/wsd-js.md"} {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			code := docExample(t, doc)
			if n := strings.Count(code, "\n") + 1; n > 5 {
				t.Errorf("%s: the example is %d lines, want at most five:\n%s", doc, n, code)
			}
			addr := freeAddr(t)
			wstest.StartBinary(t, "-addr", addr)
			code = strings.ReplaceAll(code, "127.0.0.1:8888", addr)
			watcher := wstest.DialV1(t, addr, "specialKey=watcher&room=lobby")
			watcher.Expect(t, "joined")

			// The application's page: console output recorded, then the example.
			html := `<!doctype html><meta charset="utf-8"><title>app</title>
<script>window.logged = []; for (const k of ["log", "warn"]) console[k] = (...a) => window.logged.push(a.join(" "));</script>
<script type="module">` + code + `
window.done = true;</script>`
			app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				io.WriteString(w, html)
			})}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go app.Serve(ln)
			t.Cleanup(func() { app.Close() })

			p := newTab(t, browser, "app")
			p.do(chromedp.Navigate("http://" + ln.Addr().String() + "/"))
			deadline := time.Now().Add(15 * time.Second)
			for !eval[bool](p, `window.done === true`) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: the example did not get its ack in 15s; it logged %q", doc, eval[[]string](p, `window.logged`))
				}
				time.Sleep(50 * time.Millisecond)
			}
			e := watcher.ExpectUntil(t, "message")
			if e.From != "alice" || e.Text != "hello" || e.Room != "lobby" {
				t.Errorf("%s: the watcher got %s, want hello from alice in lobby", doc, e.Raw)
			}
			for !slices.ContainsFunc(eval[[]string](p, `window.logged`), func(s string) bool { return strings.Contains(s, "alice hello") }) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: the example did not log its message; it logged %q", doc, eval[[]string](p, `window.logged`))
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("%s: the example logged %q", doc, eval[[]string](p, `window.logged`))
			p.checkClean()
		})
	}
}

// TestBrowserPresence: two pages in a room list each other; when one
// closes its tab, the other drops it after the presence grace.
func TestBrowserPresence(t *testing.T) {
	browser := startBrowser(t)
	p := wstest.StartBinary(t, "-presence-grace", "300ms", "-presence-interval", "100ms")
	base := "http://" + p.Addr + "/?rooms=lobby&name="
	pat := openPage(t, browser, "pat", base+"pat")
	quinn := openPage(t, browser, "quinn", base+"quinn")
	for _, pg := range []*chatPage{pat, quinn} {
		pg.waitFor("both online", 10*time.Second, func(v view) bool {
			return v.Count == 2 && slices.Equal(v.Members, []string{"pat", "quinn"})
		})
	}
	closed := time.Now()
	quinn.close()
	pat.waitFor("quinn gone", 10*time.Second, func(v view) bool {
		return v.Count == 1 && slices.Equal(v.Members, []string{"pat"})
	})
	t.Logf("quinn left pat's list %v after the tab closed (grace 300ms)", time.Since(closed).Round(10*time.Millisecond))
	pat.checkClean()
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

// TestBrowserPageOff: with -demo=false the browser gets today's refusal
// for /, and /wsd.js is still served.
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
	resp, err = chromedp.RunResponse(ctx, chromedp.Navigate((&url.URL{Scheme: "http", Host: p.Addr, Path: "/wsd.js"}).String()))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || !strings.HasPrefix(resp.MimeType, "text/javascript") {
		t.Errorf("GET /wsd.js with -demo=false: %d %s, want 200 text/javascript", resp.Status, resp.MimeType)
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
	p.send("lobby", "signed in")
	p.waitText("lobby", "signed in")
	if u := eval[string](p, `location.href`); strings.Contains(u, "token") {
		t.Errorf("the token stays in the address bar: %s", u)
	}

	// An invalid room never leaves the page.
	p.do(chromedp.SetValue(chromedp.ID("room"), "no/slash"), chromedp.Click(chromedp.ID("join")))
	time.Sleep(300 * time.Millisecond)
	if v := p.view(); v.State != "open" || len(v.Rooms) != 1 {
		t.Errorf("after an invalid room the page shows %q with %d tabs", v.Status, len(v.Rooms))
	}
	// A room the token does not allow: the server's refusal is shown.
	p.do(chromedp.SetValue(chromedp.ID("room"), "elsewhere"), chromedp.Click(chromedp.ID("join")))
	p.waitFor("the refusal of elsewhere", 5*time.Second, func(v view) bool {
		return slices.ContainsFunc(v.room("elsewhere").Sys, func(s string) bool { return strings.Contains(s, "110") })
	})
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
	page.send("secure", "over wss")
	page.waitText("secure", "over wss")
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
