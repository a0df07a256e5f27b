package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/certfile"
	"github.com/wsd-chat/wsd/internal/version"
	"github.com/wsd-chat/wsd/web"
)

// AdminConfig configures the admin HTTP server (package admin). An empty
// Addr runs none.
type AdminConfig struct {
	Addr string
	// Token returns the bearer token in force (a reload may change it);
	// nil or "" leaves the admin endpoints open, which is logged.
	Token func() string
	// AuthFailures reports refused handshakes by reason
	// (admin.Options.AuthFailures).
	AuthFailures func(f func(reason string, n uint64))
}

// adminShutdownTimeout bounds Close's wait for admin requests in flight
// (a scrape, a publish) before their connections are dropped.
const adminShutdownTimeout = time.Second

// A BuildError is a part of the process New could not build: Part names
// it (PartTLS, PartCluster) so that a caller can say which of its own
// settings are wrong.
type BuildError struct {
	Part string
	Err  error
}

// The parts a BuildError names.
const (
	PartTLS     = "tls certificate"
	PartCluster = "cluster"
)

func (e *BuildError) Error() string { return e.Part + ": " + e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// App is one whole wsd process: the client listener, reactor and session
// hub (Server), its TLS certificate, the chat page, the cluster bridge
// and the admin HTTP server. New builds what needs no socket, Start binds
// and serves, Drain takes it down the way a load balancer can follow, and
// Close releases the rest. cmd/wsd and the in-process tests
// (internal/testserver) both run an App.
type App struct {
	cfg    Config
	log    *slog.Logger
	cert   *certfile.Certificate // nil without Config.TLSCert
	bridge *cluster.Bridge       // nil without Config.Cluster
	fanout prometheus.Histogram  // nil without an admin server
	srv    *Server               // nil until Start

	adminLn  net.Listener
	adminSrv *http.Server
	closed   sync.Once
}

// New builds every part of the process that needs no socket: it loads the
// TLS certificate, builds the chat page and the cluster bridge (without
// connecting) and fills in the session callbacks that tie them together.
// Its error joins one *BuildError per part that failed. Calling New and
// then Close checks a configuration (wsd -t) with the same code that
// starts it.
func New(cfg Config) (*App, error) {
	cfg = withDefaults(cfg)
	a := &App{log: cfg.Logger}
	var errs []error
	if cfg.TLSCert != "" {
		cert, err := certfile.Load(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			errs = append(errs, &BuildError{PartTLS, err})
		} else {
			a.cert = cert
			cfg.Session.TLS = certfile.ServerConfig(cert)
		}
	}
	if cfg.Cluster != nil {
		cc := *cfg.Cluster
		if cc.Logger == nil {
			cc.Logger = cfg.Logger
		}
		b, err := cluster.New(cc)
		if err != nil {
			errs = append(errs, &BuildError{PartCluster, err})
		} else {
			a.bridge = b
			cfg.Session.Bridge = b
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.Close()
		return nil, err
	}
	if cfg.Demo {
		cfg.Session.Page = demoPage(cfg.PageJWT)
	} else if cfg.Session.Page == nil {
		// Without the page, web applications still get the client module.
		cfg.Session.Page = web.New(web.Options{ClientOnly: true}).Respond
	}
	if cfg.Admin.Addr != "" && cfg.Session.OnFanout == nil {
		a.fanout = admin.NewFanoutHistogram()
		cfg.Session.OnFanout = admin.FanoutObserver(a.fanout)
	}
	a.cfg = cfg
	return a, nil
}

// demoPage serves the chat page and wsd.js (package web). Both variants are built
// once; each request gets the one that matches jwt, the rule in force,
// which a reload may change.
func demoPage(jwt func() bool) func(head []byte) []byte {
	plain, withToken := web.New(web.Options{}), web.New(web.Options{JWT: true})
	return func(head []byte) []byte {
		if jwt != nil && jwt() {
			return withToken.Respond(head)
		}
		return plain.Respond(head)
	}
}

// Start raises the file limit if asked, opens the client listener and
// starts serving, then starts the cluster bridge and the admin server,
// and logs what it serves. On error nothing it started is left running.
func (a *App) Start() error {
	cfg := a.cfg
	if cfg.RaiseFileLimit {
		if n, err := RaiseFileLimit(); err != nil {
			a.log.Warn("cannot raise the open file limit", "err", err)
		} else {
			a.log.Debug("open file limit", "nofile", n)
		}
	}
	srv, err := start(cfg)
	if err != nil {
		return err
	}
	a.srv = srv
	if a.bridge != nil {
		if err := a.bridge.Start(srv.Hub()); err != nil {
			srv.Shutdown(context.Background())
			return fmt.Errorf("cluster bridge: %w", err)
		}
	}
	a.announce()
	if cfg.Admin.Addr != "" {
		if err := a.startAdmin(); err != nil {
			if a.bridge != nil {
				a.bridge.Close()
			}
			srv.Shutdown(context.Background())
			return fmt.Errorf("admin listener: %w", err)
		}
	}
	return nil
}

// announce logs the listening line and the memory bound the limits imply.
func (a *App) announce() {
	cfg, srv := a.cfg, a.srv
	sc := srv.Hub().Config()
	v := version.Get()
	attrs := []any{"addr", srv.Addr().String(), "page", pageURL(cfg.Demo, srv.Addr()), "version", v.Version, "revision", v.Revision,
		"workers", srv.Workers(), "pollers", max(cfg.Pollers, 1), "shards", sc.Shards,
		"max_conns", sc.MaxConns, "max_message", sc.MaxMessage, "max_queue", sc.MaxQueue,
		"handshake_timeout", sc.HandshakeTimeout, "ping_interval", sc.PingInterval,
		"idle_timeout", sc.IdleTimeout, "close_timeout", sc.CloseTimeout,
		"max_msg_rate", sc.MaxMsgRate, "msg_burst", sc.MsgBurst,
		"max_delivery_rate", sc.MaxDeliveryRate, "max_delivery_rate_per_ip", sc.MaxDeliveryRatePerIP,
		"tls", a.cert != nil, "subprotocols", strings.Join(sc.Subprotocols, ",")}
	if len(sc.Subprotocols) == 0 {
		attrs[len(attrs)-1] = "none"
	}
	a.log.Info("listening", append(attrs, cfg.Announce...)...)
	mem := sc.WorstCase(srv.Workers())
	a.log.Info("memory bound", "worst_case_mib", mem.Total>>20, "idle_conns_mib", mem.Idle>>20,
		"inbound_budget_mib", mem.Inbound>>20, "outbound_budget_mib", mem.Outbound>>20,
		"max_byte_rate", sc.MaxByteRate, "inflate_ratio", sc.InflateRatio, "message_timeout", sc.MessageTimeout)
	if sc.MaxQueue < sc.MaxMessage {
		a.log.Warn("-max-queue is smaller than -max-message: a receiver whose socket does not take a largest message at once is closed as a slow consumer",
			"max_queue", sc.MaxQueue, "max_message", sc.MaxMessage)
	}
}

// startAdmin opens the admin listener and serves package admin's handler
// on it, in its own goroutine.
func (a *App) startAdmin() error {
	ac := a.cfg.Admin
	ln, err := net.Listen("tcp", ac.Addr)
	if err != nil {
		return err
	}
	token := ac.Token
	if token == nil {
		token = func() string { return "" }
	}
	opts := admin.Options{TokenFunc: token, Fanout: a.fanout, AuthFailures: ac.AuthFailures, Cluster: a.bridge,
		History: historyStatus(a.cfg.Session.Log)}
	a.adminLn = ln
	a.adminSrv = admin.NewServer(admin.NewHandler(a.srv, opts), a.log)
	if token() == "" {
		a.log.Warn("no admin token: anyone who reaches the admin address may publish, disconnect and profile",
			"listener", ln.Addr().String())
	}
	a.log.Info("admin listening", "admin_addr", ln.Addr().String())
	go func() {
		if err := admin.Serve(a.adminSrv, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin listener failed", "err", err)
		}
	}()
	return nil
}

// Server returns the client-facing part, nil before Start.
func (a *App) Server() *Server { return a.srv }

// Certificate returns the TLS certificate in use (its Reload re-reads the
// files), nil without Config.TLSCert.
func (a *App) Certificate() *certfile.Certificate { return a.cert }

// Bridge returns the cluster bridge, nil without Config.Cluster.
func (a *App) Bridge() *cluster.Bridge { return a.bridge }

// AdminAddr returns the admin listener's address, nil without one.
func (a *App) AdminAddr() net.Addr {
	if a.adminLn == nil {
		return nil
	}
	return a.adminLn.Addr()
}

// DrainConfig times a Drain.
type DrainConfig struct {
	Delay   time.Duration // serving on with /readyz at 503 before closing anything
	Spread  time.Duration // the 1001 closes spread over this long, in batches
	Timeout time.Duration // then this long for peers to answer
}

// Drain takes the server down the way a load balancer can follow:
// /readyz answers 503 at once; after d.Delay the listener closes and
// connections get 1001 in batches spread over d.Spread; then they have
// d.Timeout to answer before the rest are dropped. Cancelling hurry skips
// the waiting. It returns an error if sockets were dropped.
func (a *App) Drain(hurry context.Context, d DrainConfig) error {
	srv := a.srv
	srv.SetUnready()
	if d.Delay > 0 {
		t := time.NewTimer(d.Delay)
		select {
		case <-t.C:
		case <-hurry.Done():
			t.Stop()
		}
	}
	srv.StopAccepting()
	a.log.Info("closing connections", "connections", srv.Hub().Stats().Open.Load(), "spread", d.Spread)
	srv.Hub().CloseGradually(hurry, d.Spread)
	ctx, cancel := context.WithTimeout(hurry, d.Timeout) // cancelling hurry cuts this wait too
	defer cancel()
	return srv.Shutdown(ctx)
}

// Close stops whatever still runs: the server at once (its connections
// dropped if no Drain came first), then the cluster bridge (after the
// drain, so that its last messages still cross), then the admin server
// after at most adminShutdownTimeout. It is safe after a failed Start and
// more than once.
func (a *App) Close() {
	a.closed.Do(func() {
		if a.srv != nil {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = a.srv.Shutdown(ctx) // a no-op after Drain
		}
		if a.bridge != nil {
			a.bridge.Close()
		}
		if a.adminSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
			_ = a.adminSrv.Shutdown(ctx)
			cancel()
		}
	})
}

// pageURL is where a browser finds the chat page: the listener's address,
// or loopback when it listens on every interface.
func pageURL(demo bool, addr netip.AddrPort) string {
	if !demo {
		return "off"
	}
	if addr.Addr().IsUnspecified() {
		// 0.0.0.0, or [::] (dual-stack): loopback reaches it either way.
		addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), addr.Port())
	}
	return "http://" + addr.String() + "/"
}
