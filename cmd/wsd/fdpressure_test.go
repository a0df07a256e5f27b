package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// Issue 10's file-descriptor case through the real binary, under a small
// file limit: the client listener full of upgraded clients, then a few
// hundred sockets that connect and never send a request. wsd's automatic
// -max-conns is the limit less server.fdReserve (192); upgrades past it
// get 503 once the request is read, and sockets past it plus
// session.acceptSlack (64) take the place of the oldest socket still in
// its handshake, or are answered 503 and closed at accept when none is, so
// the descriptors reserved beyond them stay free for the admin listener.
// One address holds at most -max-handshakes-per-ip (64) handshaking sockets.
const (
	pressureNofile   = 400
	pressureMaxConns = pressureNofile - 192 // server.fdReserve
	pressureSlack    = 64                   // session.acceptSlack
	pressureIdle     = 300                  // sockets that never send a request
)

func TestFilePressureAdminAnswers(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found: this test runs wsd under prlimit --nofile to hit its file limit")
	}
	p := wstest.StartBinaryUnder(t, []string{prlimit, fmt.Sprintf("--nofile=%d:%d", pressureNofile, pressureNofile), "--"},
		"-handshake-timeout", "30s")
	if want := fmt.Sprintf(" max_conns=%d ", pressureMaxConns); !strings.Contains(p.Log(), want) {
		t.Fatalf("start line does not say%s:\n%s", want, p.Log())
	}
	gauge := func(name string) float64 { return wstest.Scrape(t, p.AdminAddr).Get(name) }

	// The listener full of upgraded clients: the next upgrade is a 503
	// with its reason, read from the request.
	clients := make([]*wstest.Client, pressureMaxConns)
	for i := range clients {
		clients[i] = wstest.Dial(t, p.Addr, fmt.Sprintf("specialKey=c%d", i))
	}
	if _, st, err := wstest.TryDial(p.Addr, "specialKey=over"); st != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "server at connection limit") {
		t.Fatalf("upgrade past -max-conns: status %d, %v; want 503 server at connection limit", st, err)
	}

	// Sockets that never send a request, all from 127.0.0.1:
	// -max-handshakes-per-ip (64, as many as the slack) of them wait for
	// theirs (until -handshake-timeout), the others are answered 429 and
	// closed at once.
	idle := openIdle(t, p.Addr, pressureIdle)
	wstest.Eventually(t, 5*time.Second, "the idle sockets held", func() bool {
		return gauge("wsd_handshaking_connections") == pressureSlack
	})
	held, answered := classifyIdle(t, idle, time.Second)
	if held != pressureSlack || answered != pressureIdle-pressureSlack {
		t.Errorf("idle sockets: %d held, %d answered 429 at accept; want %d and %d", held, answered, pressureSlack, pressureIdle-pressureSlack)
	}

	// (a) The admin endpoints answer at once, each request on a new
	// connection (a new descriptor in wsd), again and again.
	checkAdmin(t, p, 5)
	// (b) A new client (from 127.0.0.2: it takes an idle socket's place
	// at the cap) is refused promptly, never left hanging.
	for i := 0; i < 5; i++ {
		refusedPromptly(t, p.Addr, fmt.Sprintf("late%d", i))
	}

	// Idle sockets do not keep new clients out: with upgraded clients
	// below -max-conns, more idle sockets from the same address are
	// refused at accept, and a client from another address upgrades.
	const freed = 8
	for _, c := range clients[:freed] {
		c.Close(1000)
	}
	clients = clients[freed:]
	wstest.Eventually(t, 5*time.Second, "freed slots", func() bool {
		return gauge("wsd_connections") == pressureMaxConns-freed && gauge("wsd_closing_connections") == 0
	})
	more := openIdle(t, p.Addr, freed+20)
	idle = append(idle, more...)
	// (The late clients took a few idle sockets' places: that many more
	// are held again, up to the address's cap.)
	classifyIdle(t, more, time.Second)
	if n := gauge("wsd_handshaking_connections"); n != pressureSlack {
		t.Errorf("%v sockets handshaking from one address, want its cap %d", n, pressureSlack)
	}
	beside, st, err := wstest.TryDialWith(otherAddr(), p.Addr, "/?specialKey=beside-idle", nil)
	if err != nil {
		t.Fatalf("client from 127.0.0.2 beside the idle sockets: status %d, %v", st, err)
	}
	clients = append(clients, beside)
	checkAdmin(t, p, 2)

	// (d) Once the idle sockets go away, new clients get the free slots;
	// one more than those is refused again.
	for _, c := range idle {
		c.Close()
	}
	wstest.Eventually(t, 5*time.Second, "idle sockets gone", func() bool {
		return gauge("wsd_handshaking_connections") == 0 && gauge("wsd_closing_connections") == 0
	})
	for i := 0; i < freed-1; i++ {
		clients = append(clients, wstest.Dial(t, p.Addr, fmt.Sprintf("specialKey=back%d", i)))
	}
	if _, st, _ := wstest.TryDial(p.Addr, "specialKey=over-again"); st != http.StatusServiceUnavailable {
		t.Errorf("upgrade past -max-conns after recovery: status %d, want 503", st)
	}
	// The upgraded clients were never disturbed.
	if err := clients[0].WriteText("still here"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wstest.Client{clients[0], clients[len(clients)/2], clients[len(clients)-1]} {
		expect(t, c, "still here")
	}

	// (c) wsd never ran out of descriptors: no accept failure on either
	// listener (net/http logs the admin's as "http: Accept error").
	if n := gauge("wsd_accept_errors_total"); n != 0 {
		t.Errorf("wsd_accept_errors_total = %v, want 0", n)
	}
	log := p.Log()
	for _, bad := range []string{"too many open files", "EMFILE", "Accept error", "accept failing"} {
		if strings.Contains(log, bad) {
			t.Errorf("wsd logged %q:\n%s", bad, log)
		}
	}
}

// openIdle connects n sockets to addr that never send anything.
func openIdle(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("idle socket %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// classifyIdle reads each idle socket for up to wait: a socket wsd refused
// at accept holds its 429 (then EOF); one it holds has nothing to read.
func classifyIdle(t *testing.T, conns []net.Conn, wait time.Duration) (held, answered int) {
	t.Helper()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		odd  []string
		till = time.Now().Add(wait)
	)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(till)
			b, err := io.ReadAll(c)
			mu.Lock()
			defer mu.Unlock()
			var ne net.Error
			switch {
			case len(b) == 0 && errors.As(err, &ne) && ne.Timeout():
				held++
			case strings.HasPrefix(string(b), "HTTP/1.1 429 ") && strings.Contains(string(b), "too many handshakes from this address"):
				answered++
			default:
				odd = append(odd, fmt.Sprintf("%q, %v", b, err))
			}
		}()
	}
	wg.Wait()
	if len(odd) > 0 {
		t.Errorf("%d idle sockets neither held nor answered 503, e.g. %s", len(odd), odd[0])
	}
	return held, answered
}

// checkAdmin asks /metrics, /healthz and /readyz rounds times, each on a
// new connection, and wants each 200 within a second.
func checkAdmin(t *testing.T, p *wstest.Process, rounds int) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for r := 0; r < rounds; r++ {
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			start := time.Now()
			resp, err := hc.Get(adminURL(p, path))
			if err != nil {
				t.Fatalf("round %d: GET %s under fd pressure: %v", r, path, err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if took := time.Since(start); resp.StatusCode != http.StatusOK || err != nil || took > time.Second {
				t.Fatalf("round %d: GET %s: %d in %v (%v)", r, path, resp.StatusCode, took, err)
			}
		}
	}
}

// refusedPromptly dials a WebSocket client and wants a 503, or the
// connection closed, within two seconds: never a hang.
func refusedPromptly(t *testing.T, addr, key string) {
	t.Helper()
	start := time.Now()
	c, st, err := wstest.TryDialWith(otherAddr(), addr, "/?specialKey="+key, nil)
	took := time.Since(start)
	if err == nil {
		c.Conn.Close()
		t.Fatalf("%s upgraded past the cap", key)
	}
	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset by peer")
	if st != http.StatusServiceUnavailable && !closed || took > 2*time.Second {
		t.Fatalf("%s: status %d, %v after %v; want 503 or a closed connection within 2s", key, st, err, took)
	}
}

// otherAddr dials from 127.0.0.2, an address apart from the idle sockets'.
func otherAddr() *net.Dialer {
	return &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
}
