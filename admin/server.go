package admin

import (
	"container/list"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"
)

// Limits of the admin HTTP server: it must keep answering /metrics and
// /readyz whatever its clients do, and never hold a connection forever.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second // a whole request, body included
	WriteTimeout      = 90 * time.Second // room for /debug/pprof/profile?seconds=60
	// IdleTimeout is short: a keep-alive connection holds one of the
	// MaxConns slots while it waits, and a scraper reconnects cheaply.
	IdleTimeout    = 5 * time.Second
	MaxHeaderBytes = 16 << 10
	// MaxConns is how many admin connections are served at once; more
	// wait in the listen backlog, holding no descriptor of wsd's. At the
	// cap, idle keep-alive connections are closed first (longest idle
	// first), so that they never keep a scrape waiting.
	MaxConns = 64
)

// NewServer returns the admin HTTP server for h: timeouts on every phase
// of a request, a small header cap, idle connections shed at MaxConns,
// and its errors (TLS handshakes, bad requests, panics) logged through
// log instead of stderr. Run it with Serve.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	idle := newIdleShedder(MaxConns)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState:         idle.connState,
		ErrorLog:          slog.NewLogLogger(log.With("component", "admin").Handler(), slog.LevelWarn),
	}
}

// Serve serves srv (from NewServer) on ln, holding at most MaxConns
// connections open at once.
func Serve(srv *http.Server, ln net.Listener) error {
	return srv.Serve(netutil.LimitListener(ln, MaxConns))
}

// idleShedder follows the admin connections through http.Server's
// ConnState. When as many are open as the listener's cap allows, the
// next client waits in the backlog; so whenever the cap is reached with
// connections sitting idle between requests, the longest-idle one is
// closed and its slot goes to the waiting client.
type idleShedder struct {
	max  int
	mu   sync.Mutex
	open int
	idle list.List // of net.Conn, longest idle at the front
	at   map[net.Conn]*list.Element
}

func newIdleShedder(max int) *idleShedder {
	return &idleShedder{max: max, at: make(map[net.Conn]*list.Element)}
}

func (s *idleShedder) connState(c net.Conn, st http.ConnState) {
	var shed net.Conn
	s.mu.Lock()
	if e, ok := s.at[c]; ok {
		s.idle.Remove(e)
		delete(s.at, c)
	}
	switch st {
	case http.StateNew:
		s.open++
	case http.StateIdle:
		s.at[c] = s.idle.PushBack(c)
	case http.StateHijacked, http.StateClosed:
		s.open--
	}
	if s.open >= s.max && s.idle.Len() > 0 {
		e := s.idle.Front()
		shed = e.Value.(net.Conn)
		s.idle.Remove(e)
		delete(s.at, shed)
	}
	s.mu.Unlock()
	if shed != nil {
		// http.Server then reports StateClosed for it, which counts it
		// out. A request arriving on it in between is lost like one on a
		// connection the idle timeout closes; clients retry those.
		shed.Close()
	}
}
