// Command wsd is a WebSocket chat server built to hold very many
// connections on one box: an epoll reactor, zero-copy upgrades, a worker
// pool and a sharded session table, one gzip encoding per broadcast.
//
//	wsd                              # ws://127.0.0.1:8888/?specialKey=K&support_gzip=1
//	wsd -addr :8888 -workers 4       # all interfaces, four workers
//
// See the README for every flag.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/auth"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// DefaultShutdownTimeout bounds the drain on SIGINT/SIGTERM.
const DefaultShutdownTimeout = 10 * time.Second

// DefaultAdminAddr is where metrics, health, publish and pprof listen.
const DefaultAdminAddr = "127.0.0.1:9090"

type options struct {
	server          server.Config
	adminAddr       string
	adminToken      string
	logFile         string
	logLevel        string
	shutdownTimeout time.Duration
	jwtSecret       string
	jwtPublicKey    string
	allowedOrigins  string
	cluster         clusterOptions // cluster.go
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("wsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sc := &o.server.Session
	fs.StringVar(&o.server.Addr, "addr", server.DefaultAddr, "client listener `host:port`")
	fs.IntVar(&o.server.Pollers, "pollers", 1, "epoll instances")
	fs.IntVar(&o.server.Workers, "workers", runtime.GOMAXPROCS(0), "worker goroutines (decode, fan-out)")
	fs.IntVar(&sc.Shards, "shards", session.DefaultShards, "session table shards")
	fs.IntVar(&sc.MaxConns, "max-conns", 0, "open connections before new ones get 503 (0: file limit less 64)")
	fs.IntVar(&sc.MaxMessage, "max-message", session.DefaultMaxMessage, "largest message in bytes, also after gunzip (larger: close 1009)")
	fs.IntVar(&sc.MaxQueue, "max-queue", session.DefaultMaxQueue, "outbound bytes queued per connection before it is closed as a slow consumer (1008)")
	fs.DurationVar(&sc.HandshakeTimeout, "handshake-timeout", session.DefaultHandshakeTimeout, "time to complete the upgrade request")
	fs.DurationVar(&sc.IdleTimeout, "idle-timeout", session.DefaultIdleTimeout, "close connections silent for this long (1001)")
	fs.DurationVar(&sc.PingInterval, "ping-interval", session.DefaultPingInterval, "ping connections silent for this long")
	fs.DurationVar(&sc.CloseTimeout, "close-timeout", session.DefaultCloseTimeout, "wait for the peer's close frame before dropping the socket")
	fs.Float64Var(&sc.MaxMsgRate, "max-msg-rate", session.DefaultMaxMsgRate, "messages and pings per second per connection (0: unlimited; over it: close 1008)")
	fs.IntVar(&sc.MsgBurst, "msg-burst", session.DefaultMsgBurst, "messages a connection may send at once above -max-msg-rate")
	fs.Float64Var(&sc.MaxByteRate, "max-byte-rate", session.DefaultMaxByteRate, "message bytes (after gunzip) per second per connection (0: unlimited; over it: close 1008)")
	fs.IntVar(&sc.InflateRatio, "inflate-ratio", session.DefaultInflateRatio, "largest inflated/compressed size ratio of a gzip message past 64 KiB (more: close 1009)")
	fs.Int64Var(&sc.InboundBudget, "inbound-budget", session.DefaultInboundBudget, "bytes all partly received messages and request heads may hold together (more: close 1013)")
	fs.Int64Var(&sc.OutboundBudget, "outbound-budget", session.DefaultOutboundBudget, "bytes all broadcasts and send queues may hold together (more: largest queues closed, 1008)")
	fs.DurationVar(&sc.MessageTimeout, "message-timeout", session.DefaultMessageTimeout, "longest time from a message's first byte to its last (longer: close 1008)")
	fs.IntVar(&o.server.Backlog, "backlog", server.DefaultBacklog, "listen backlog (capped by net.core.somaxconn)")
	fs.StringVar(&o.adminAddr, "admin-addr", DefaultAdminAddr, "admin listener for /metrics, /healthz, /readyz, /stats, /publish, /debug/pprof (empty: off)")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token required by POST /publish")
	fs.StringVar(&o.jwtSecret, "jwt-secret", "", "require an HS256 JWT signed with this secret at the handshake (token= or Authorization: Bearer; sub = specialKey)")
	fs.StringVar(&o.jwtPublicKey, "jwt-public-key", "", "require an RS256 or ES256 JWT verified with the public key in this PEM `file`")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", "comma-separated origins browsers may connect from, e.g. https://app.example.com,https://*.example.com (empty: any; no Origin header: always allowed)")
	fs.StringVar(&o.logFile, "log-file", "", "append logs to this file (default stderr)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "drain time on SIGINT/SIGTERM before sockets are dropped")
	addClusterFlags(fs, &o.cluster)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	// On the command line 0 means "no limit", as for every other cap.
	if sc.MaxMsgRate == 0 {
		sc.MaxMsgRate = -1
	}
	if sc.MaxByteRate == 0 {
		sc.MaxByteRate = -1
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.jwtSecret != "" && o.jwtPublicKey != "" {
		return nil, errors.New("-jwt-secret and -jwt-public-key exclude each other")
	}
	return o, nil
}

// newAuthorizer builds the handshake checks from the flags.
func newAuthorizer(o *options) (*auth.Authorizer, error) {
	cfg := auth.Config{
		HMACSecret:     []byte(o.jwtSecret),
		AllowedOrigins: auth.ParseOriginList(o.allowedOrigins),
	}
	if o.jwtPublicKey != "" {
		pem, err := os.ReadFile(o.jwtPublicKey)
		if err != nil {
			return nil, fmt.Errorf("-jwt-public-key: %w", err)
		}
		if len(pem) == 0 {
			return nil, fmt.Errorf("-jwt-public-key: %s is empty", o.jwtPublicKey)
		}
		cfg.PublicKeyPEM = pem
	}
	a, err := auth.New(cfg)
	if err != nil {
		return nil, err
	}
	return a, nil
}

func newLogger(file, level string, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("-log-level: %w", err)
	}
	out, closer := stderr, io.Closer(nil)
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("-log-file: %w", err)
		}
		out, closer = f, f
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: lv})), closer, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	log, closer, err := newLogger(o.logFile, o.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	if closer != nil {
		defer closer.Close()
	}
	if n, err := server.RaiseFileLimit(); err != nil {
		log.Warn("cannot raise the open file limit", "err", err)
	} else {
		log.Debug("open file limit", "nofile", n)
	}
	authz, err := newAuthorizer(o)
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	if len(o.jwtSecret) > 0 && len(o.jwtSecret) < 32 {
		log.Warn("-jwt-secret is shorter than 32 bytes; use a long random secret")
	}
	o.server.Session.Authorize = authz.Hook()
	fanout := admin.NewFanoutHistogram()
	o.server.Session.OnFanout = admin.FanoutObserver(fanout)
	o.server.Logger = log
	bridge, err := newBridge(o, log)
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	if bridge != nil {
		o.server.Session.Bridge = bridge
	}
	srv, err := server.Start(o.server)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	cfg := srv.Hub().Config()
	if bridge != nil {
		if err := bridge.Start(srv.Hub()); err != nil {
			log.Error("cannot start the cluster bridge", "err", err)
			srv.Shutdown(context.Background())
			return 1
		}
		clusterStarted(log, bridge, o)
	}
	log.Info("listening", "addr", srv.Addr().String(), "workers", srv.Workers(),
		"pollers", max(o.server.Pollers, 1), "shards", cfg.Shards, "max_conns", cfg.MaxConns,
		"jwt", cmp.Or(authz.Algorithm(), "off"), "allowed_origins", cmp.Or(o.allowedOrigins, "any"))
	mem := cfg.WorstCase(srv.Workers())
	log.Info("memory bound", "worst_case_mib", mem.Total>>20, "idle_conns_mib", mem.Idle>>20,
		"inbound_budget_mib", mem.Inbound>>20, "outbound_budget_mib", mem.Outbound>>20,
		"max_message", cfg.MaxMessage, "max_queue", cfg.MaxQueue, "message_timeout", cfg.MessageTimeout)

	var adminSrv *http.Server
	if o.adminAddr != "" {
		ln, err := net.Listen("tcp", o.adminAddr)
		if err != nil {
			log.Error("cannot start admin listener", "err", err)
			srv.Shutdown(context.Background())
			return 1
		}
		adminSrv = &http.Server{
			Handler: admin.NewHandler(srv, admin.Options{
				Token:        o.adminToken,
				Fanout:       fanout,
				AuthFailures: authz.Failures,
				Cluster:      bridge,
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		log.Info("admin listening", "admin_addr", ln.Addr().String())
		go func() {
			if err := adminSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener failed", "err", err)
			}
		}()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Info("draining", "signal", s.String(), "timeout", o.shutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	// /readyz answers 503 from here on; the admin listener stays up during
	// the drain so the flip is observable.
	err = srv.Shutdown(ctx)
	if bridge != nil {
		bridge.Close()
	}
	if adminSrv != nil {
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		_ = adminSrv.Shutdown(actx)
		acancel()
	}
	if err != nil {
		log.Warn("drain timed out; remaining sockets dropped", "err", err)
	}
	log.Info("stopped")
	return 0
}
