package admin

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of the admin HTTP server: it must keep answering /metrics and
// /readyz whatever its clients do, and never hold a connection forever.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second // a whole request, body included
	WriteTimeout      = 90 * time.Second // room for /debug/pprof/profile?seconds=60
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
	// MaxConns is how many admin connections are served at once; more
	// wait in the listen backlog, holding no descriptor of wsd's.
	MaxConns = 64
)

// NewServer returns the admin HTTP server for h: timeouts on every phase
// of a request, a small header cap, and its errors (TLS handshakes, bad
// requests, panics) logged through log instead of stderr.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.With("component", "admin").Handler(), slog.LevelWarn),
	}
}

// LimitListener returns a Listener that holds at most n accepted
// connections open at once; Accept waits for a slot when they are all
// taken (like golang.org/x/net/netutil.LimitListener).
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
