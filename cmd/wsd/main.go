// Command wsd is a WebSocket chat server built to hold very many
// connections on one box: an epoll reactor, zero-copy upgrades, a worker
// pool and a sharded session table, one gzip encoding per broadcast.
//
//	wsd                              # ws://127.0.0.1:8888/?specialKey=K&support_gzip=1
//	wsd -addr :8888 -workers 4       # all interfaces, four workers
//	wsd -config /etc/wsd/wsd.conf    # flags from a file (and WSD_* from the environment)
//	wsd -t -config /etc/wsd/wsd.conf # check a configuration and exit
//
// Signals: SIGHUP reloads the configuration, SIGUSR1 reopens the log file,
// SIGTERM, SIGINT and SIGUSR2 drain (lame duck) and exit.
//
// See the README and docs/operator.md for every flag.
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
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/internal/version"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/tlswire"
	"github.com/wsd-chat/wsd/web"
)

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
func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// checkMode reports whether args ask for -t, even when they do not parse.
func checkMode(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		switch strings.TrimLeft(a, "-") {
		case "t", "t=true", "t=1":
			return strings.HasPrefix(a, "-")
		}
	}
	return false
}

func run(args []string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stderr)
		return 0
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "wsd:", line)
		}
		if checkMode(args) {
			return 1
		}
		return 2
	}
	if o.version {
		fmt.Fprintln(stderr, version.Get())
		return 0
	}
	if o.check {
		// What start would open and find wrong, checked here too, so that
		// a unit's ExecStartPre=wsd -t catches it; nothing is kept open.
		if err := checkResources(o); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(stderr, "wsd:", line)
			}
			return 1
		}
		fmt.Fprintf(stderr, "wsd: configuration ok (%s)\n", cmp.Or(o.configFile, "no config file"))
		return 0
	}

	log, level, logOut, err := newLogger(o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	defer logOut.Close()
	// Signals are taken from here on, before anything is announced: a
	// SIGHUP sent as soon as the listening line appears must reload, not
	// kill (its default action). They wait in sig until the loop below.
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sig)
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
	if len(o.secret) > 0 && len(o.secret) < 32 {
		log.Warn("the JWT secret is shorter than 32 bytes; use a long random secret")
	}
	var cert *tlswire.Certificate
	if o.tlsCert != "" {
		if cert, err = tlswire.LoadCertificate(o.tlsCert, o.tlsKey); err != nil {
			fmt.Fprintln(stderr, "wsd: -tls-cert/-tls-key:", err)
			return 2
		}
		o.server.Session.TLS = tlswire.ServerConfig(cert)
		logCertificate(log, "tls certificate", cert)
	}
	st := &state{args: args, stderr: stderr, log: log, level: level, auth: newAuthSwitch(authz), cert: cert}
	st.cur.Store(o)
	o.server.Session.Authorize = st.auth.Authorize
	o.server.Session.Subprotocols = splitList(o.subprotocols)
	fanout := admin.NewFanoutHistogram()
	o.server.Session.OnFanout = admin.FanoutObserver(fanout)
	if o.demo {
		// Both variants are built once; each request gets the one that
		// matches the JWT rule in force, which a reload may change.
		plain, withToken := web.New(web.Options{}), web.New(web.Options{JWT: true})
		o.server.Session.Page = func(head []byte) []byte {
			if st.auth.cur.Load().Algorithm() != "" {
				return withToken.Respond(head)
			}
			return plain.Respond(head)
		}
	}
	o.server.Logger = log
	bridge, err := newBridge(o, log) // cluster.go
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	if bridge != nil {
		o.server.Session.Bridge = bridge
	}
	srv, err := server.Start(sessionLimits(o.server))
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if bridge != nil {
		if err := bridge.Start(srv.Hub()); err != nil {
			log.Error("cannot start the cluster bridge", "err", err)
			srv.Shutdown(context.Background())
			return 1
		}
		clusterStarted(log, bridge, o)
	}
	st.hub = srv.Hub()
	cfg := srv.Hub().Config()
	v := version.Get()
	log.Info("listening", "addr", srv.Addr().String(), "page", pageURL(o.demo, srv.Addr()), "version", v.Version, "revision", v.Revision,
		"workers", srv.Workers(), "pollers", max(o.server.Pollers, 1), "shards", cfg.Shards,
		"max_conns", cfg.MaxConns, "max_message", cfg.MaxMessage, "max_queue", cfg.MaxQueue,
		"handshake_timeout", cfg.HandshakeTimeout, "ping_interval", cfg.PingInterval,
		"idle_timeout", cfg.IdleTimeout, "close_timeout", cfg.CloseTimeout,
		"max_msg_rate", cfg.MaxMsgRate, "msg_burst", cfg.MsgBurst,
		"tls", cert != nil, "jwt", cmp.Or(authz.Algorithm(), "off"), "allowed_origins", cmp.Or(o.allowedOrigins, "any"),
		"subprotocols", cmp.Or(o.subprotocols, "none"), "config", cmp.Or(o.configFile, "none"))
	mem := cfg.WorstCase(srv.Workers())
	log.Info("memory bound", "worst_case_mib", mem.Total>>20, "idle_conns_mib", mem.Idle>>20,
		"inbound_budget_mib", mem.Inbound>>20, "outbound_budget_mib", mem.Outbound>>20,
		"max_byte_rate", cfg.MaxByteRate, "inflate_ratio", cfg.InflateRatio, "message_timeout", cfg.MessageTimeout)
	if cfg.MaxQueue < cfg.MaxMessage {
		log.Warn("-max-queue is smaller than -max-message: a receiver whose socket does not take a largest message at once is closed as a slow consumer",
			"max_queue", cfg.MaxQueue, "max_message", cfg.MaxMessage)
	}

	var adminSrv *http.Server
	if o.adminAddr != "" {
		ln, err := net.Listen("tcp", o.adminAddr)
		if err != nil {
			log.Error("cannot start admin listener", "err", err)
			srv.Shutdown(context.Background())
			return 1
		}
		adminSrv = admin.NewServer(admin.NewHandler(srv, admin.Options{
			TokenFunc:    func() string { return st.cur.Load().token },
			Fanout:       fanout,
			AuthFailures: st.auth.Failures,
			Cluster:      bridge,
		}), log)
		if o.token == "" {
			log.Warn("no admin token: anyone who reaches the admin address may publish, disconnect and profile",
				"listener", ln.Addr().String())
		}
		log.Info("admin listening", "admin_addr", ln.Addr().String())
		go func() {
			if err := adminSrv.Serve(admin.LimitListener(ln, admin.MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener failed", "err", err)
			}
		}()
	}

	var s os.Signal
	for s == nil {
		switch got := <-sig; got {
		case syscall.SIGHUP:
			if err := st.reload(); err != nil {
				log.Error("reload refused; old values kept", "err", strings.ReplaceAll(err.Error(), "\n", "; "))
			}
		case syscall.SIGUSR1:
			reopenLog(st, logOut)
		default:
			s = got
		}
	}
	err = drain(st, srv, logOut, s, sig)
	if bridge != nil {
		bridge.Close() // after the drain: its last messages still cross
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

func reopenLog(st *state, out *logOutput) {
	file, err := out.Reopen()
	switch {
	case err != nil:
		st.log.Error("cannot reopen the log file", "err", err)
	case file:
		st.log.Info("log file reopened")
	}
}

// drain takes the server down the way a load balancer can follow:
// /readyz answers 503 at once; after -drain-delay the listener closes and
// connections get 1001 in batches spread over -lame-duck-duration; then
// they have -shutdown-timeout to answer before the rest are dropped. A
// second SIGINT or SIGTERM skips the waiting.
func drain(st *state, srv *server.Server, logOut *logOutput, s os.Signal, sig chan os.Signal) error {
	o := st.cur.Load()
	srv.SetUnready()
	st.log.Info("draining", "signal", s.String(), "drain_delay", o.drainDelay,
		"lame_duck_duration", o.lameDuck, "shutdown_timeout", o.shutdownTimeout)
	hurry, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for got := range sig {
			switch got {
			case syscall.SIGUSR1:
				reopenLog(st, logOut)
			case syscall.SIGINT, syscall.SIGTERM:
				st.log.Warn("second signal: closing every connection now", "signal", got.String())
				cancel()
			default:
				st.log.Info("ignored while draining", "signal", got.String())
			}
		}
	}()
	defer signal.Stop(sig)
	if o.drainDelay > 0 {
		t := time.NewTimer(o.drainDelay)
		select {
		case <-t.C:
		case <-hurry.Done():
			t.Stop()
		}
	}
	srv.StopAccepting()
	st.log.Info("closing connections", "connections", srv.Hub().Stats().Open.Load(), "spread", o.lameDuck)
	srv.Hub().CloseGradually(hurry, o.lameDuck)
	ctx, cancelT := context.WithTimeout(hurry, o.shutdownTimeout) // a second signal cuts this wait too
	defer cancelT()
	return srv.Shutdown(ctx)
}

// sessionLimits maps the command line's "0 means no limit" for the rate
// and per-address flags to the session package's negative values (its zero means default).
func sessionLimits(c server.Config) server.Config {
	if c.Session.MaxMsgRate == 0 {
		c.Session.MaxMsgRate = -1
	}
	if c.Session.MaxByteRate == 0 {
		c.Session.MaxByteRate = -1
	}
	if c.Session.MaxHandshakesPerIP == 0 {
		c.Session.MaxHandshakesPerIP = -1
	}
	if c.Session.InboundSharePerIP == 0 {
		c.Session.InboundSharePerIP = -1
	}
	return c
}

// logCertificate logs the certificate in use.
func logCertificate(log *slog.Logger, msg string, cert *tlswire.Certificate) {
	leaf := cert.Leaf()
	log.Info(msg, "subject", leaf.Subject.String(), "dns", strings.Join(leaf.DNSNames, ","),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
}

// reloadTLS re-reads the certificate and key files: new handshakes get the
// new pair, established connections keep theirs. On failure the old pair
// stays in use and the error is logged.
func reloadTLS(cert *tlswire.Certificate, log *slog.Logger) error {
	if err := cert.Reload(); err != nil {
		log.Error("tls reload failed; keeping the current certificate", "err", err)
		return err
	}
	logCertificate(log, "tls certificate reloaded", cert)
	return nil
}

// checkResources does for -t what start would do with the files and
// settings the flag checks cannot judge alone: load the TLS pair, build
// the cluster configuration, open the log file for appending. It connects
// to nothing and leaves nothing open.
func checkResources(o *options) error {
	var errs []error
	if o.tlsCert != "" {
		if _, err := tlswire.LoadCertificate(o.tlsCert, o.tlsKey); err != nil {
			errs = append(errs, fmt.Errorf("-tls-cert/-tls-key: %w", err))
		}
	}
	if err := checkCluster(o); err != nil {
		errs = append(errs, err)
	}
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			errs = append(errs, fmt.Errorf("-log-file: %w", err))
		} else {
			f.Close()
		}
	}
	return errors.Join(errs...)
}
