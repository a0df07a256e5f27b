package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/poller"
	"github.com/wsd-chat/wsd/session"
)

// Defaults for Config's zero values.
const (
	DefaultAddr    = "127.0.0.1:8888" // the seed's address
	DefaultBacklog = 4096             // capped by net.core.somaxconn
	// fdReserve is how many file descriptors the automatic connection cap
	// leaves for everything else: the listeners, the admin endpoint's own
	// connection cap (64) with room for pprof and scrapes, the log file,
	// the epoll instances and a cluster connection.
	fdReserve = 192
)

// Config configures a wsd process (App). Its zero value is a plain
// ws:// server on DefaultAddr with no page, no admin server and no
// cluster, as the in-process tests want it.
type Config struct {
	Addr    string
	Backlog int
	Pollers int // epoll instances
	Workers int // worker goroutines
	Session session.Config
	Logger  *slog.Logger

	// TLSCert and TLSKey name the PEM files of the certificate served on
	// wss:// (it replaces Session.TLS); empty: Session.TLS as given.
	TLSCert, TLSKey string
	// Demo serves the chat page (package web) on a plain GET /; /wsd.js
	// and /wsd.d.ts, the v1 client, are served either way. PageJWT
	// reports whether the page must ask for a JWT, the handshake rule in
	// force, which may change while serving; nil: never.
	Demo    bool
	PageJWT func() bool
	Admin   AdminConfig
	// Cluster, if set, joins other boxes through NATS (package cluster);
	// its Logger defaults to Logger.
	Cluster *cluster.Config
	// RaiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit at
	// Start, before the connection cap is derived from it.
	RaiseFileLimit bool
	// Announce are attributes the "listening" log line adds, for the
	// settings the caller alone knows (its config file, its auth rules).
	Announce []any
}

// Server is the client-facing part of an App: the listening socket, the
// reactor (package poller) and the session Hub.
type Server struct {
	cfg      Config
	log      *slog.Logger
	reactor  *poller.Reactor
	hub      *session.Hub
	acc      *acceptor
	addr     netip.AddrPort
	draining atomic.Bool
	unready  atomic.Bool // set by SetUnready (drain.go)
}

// withDefaults fills in Config's zero values.
func withDefaults(cfg Config) Config {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = DefaultBacklog
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Session.Logger == nil {
		cfg.Session.Logger = cfg.Logger
	}
	return cfg
}

// start opens the listener and starts serving cfg (with its defaults).
func start(cfg Config) (*Server, error) {
	if cfg.Session.MaxConns == 0 {
		// After RaiseFileLimit, which App.Start may call.
		cfg.Session.MaxConns = autoMaxConns()
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	r, err := poller.New(poller.Config{
		Pollers: cfg.Pollers,
		Workers: cfg.Workers,
		OnError: func(err error) { cfg.Logger.Error("epoll_wait failed", "err", err) },
	})
	if err != nil {
		return nil, err
	}
	s.reactor = r
	s.hub = session.NewHub(cfg.Session, r)

	lfd, addr, err := listen(cfg.Addr, cfg.Backlog)
	if err != nil {
		s.hub.Close()
		r.Close()
		return nil, err
	}
	s.addr = addr
	s.acc = &acceptor{srv: s, lfd: lfd}
	if err := r.Add(&s.acc.desc, lfd, s.acc); err != nil {
		unix.Close(lfd)
		s.hub.Close()
		r.Close()
		return nil, fmt.Errorf("register listener: %w", err)
	}
	return s, nil
}

// autoMaxConns is the default connection cap: the process's file limit
// less fdReserve, so wsd answers 503 before it runs out of descriptors.
func autoMaxConns() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return 0
	}
	if n := int(lim.Cur) - fdReserve; n > 0 {
		return n
	}
	return 1
}

// RaiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit.
func RaiseFileLimit() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Hub returns the session hub, for the admin endpoints.
func (s *Server) Hub() *session.Hub { return s.hub }

// Workers reports the worker pool size.
func (s *Server) Workers() int { return s.reactor.Workers() }

// AcceptErrors reports accept failures (EMFILE and the like).
func (s *Server) AcceptErrors() uint64 { return s.acc.errors.Load() }

// Ready reports whether the server accepts new connections.
func (s *Server) Ready() bool { return !s.draining.Load() && !s.unready.Load() }

// Shutdown stops accepting, drains the hub (see session.Hub.Shutdown) and
// stops the reactor. It returns ctx's error if the drain did not finish.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	s.acc.close(s.reactor)
	err := s.hub.Shutdown(ctx)
	s.reactor.Close()
	return err
}
