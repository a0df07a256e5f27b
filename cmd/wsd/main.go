// Command wsd runs the wsd WebSocket chat server. It owns the operator's
// side only: flags, WSD_* variables and the config file become one
// server.Config (config.go checks them, reload.go says what SIGHUP may
// change), the log output, and the signals. Package server builds and
// runs the process itself.
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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wsd-chat/wsd/internal/certfile"
	"github.com/wsd-chat/wsd/internal/version"
	"github.com/wsd-chat/wsd/server"
)

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
		printError(stderr, err)
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
		return checkConfig(o, stderr)
	}
	log, level, logOut, err := newLogger(o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	defer logOut.Close()
	// Signals are taken from here on, before anything is announced: a
	// SIGHUP sent as soon as the listening line appears must reload, not
	// kill (its default action). They wait in sig until serve reads them.
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sig)
	st, err := newState(o, args, stderr, log, level)
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	app, err := build(st, o)
	if err != nil {
		printError(stderr, err)
		return 2
	}
	defer func() {
		if st.history != nil {
			st.history.Close() // after app.Close: nothing submits to it any more
		}
	}()
	if err := app.Start(); err != nil {
		app.Close()
		log.Error("cannot start", "err", err)
		return 1
	}
	st.hub, st.bridge = app.Server().Hub(), app.Bridge()
	if b := st.bridge; b != nil {
		clusterStarted(log, b, o)
	}
	err = drain(st, app, logOut, serve(st, logOut, sig), sig)
	app.Close()
	if err != nil {
		log.Warn("drain timed out; remaining sockets dropped", "err", err)
	}
	log.Info("stopped")
	return 0
}

// newState is the running configuration o, before anything is built.
func newState(o *options, args []string, stderr io.Writer, log *slog.Logger, level *slog.LevelVar) (*state, error) {
	authz, err := newAuthorizer(o)
	if err != nil {
		return nil, err
	}
	st := &state{args: args, stderr: stderr, log: log, level: level, auth: newAuthSwitch(authz)}
	st.cur.Store(o)
	return st, nil
}

// serverConfig turns the options into the assembler's configuration; the
// handshake rule, the page's JWT prompt and the admin token are read
// through st, so that a reload changes them.
func serverConfig(st *state, o *options) (server.Config, error) {
	cc, err := clusterConfig(o) // cluster.go
	if err != nil {
		return server.Config{}, err
	}
	cfg := sessionLimits(o.server)
	cfg.Logger = st.log
	cfg.Session.Authorize = st.auth.Authorize
	cfg.Session.Subprotocols = splitList(o.subprotocols)
	cfg.TLSCert, cfg.TLSKey = o.tlsCert, o.tlsKey
	cfg.Demo = o.demo
	cfg.PageJWT = func() bool { return st.auth.cur.Load().Algorithm() != "" }
	cfg.Admin = server.AdminConfig{
		Addr:         o.adminAddr,
		Token:        func() string { return st.cur.Load().token },
		AuthFailures: st.auth.Failures,
	}
	cfg.Cluster = cc
	cfg.RaiseFileLimit = true
	cfg.Announce = []any{"jwt", cmp.Or(st.auth.cur.Load().Algorithm(), "off"),
		"allowed_origins", cmp.Or(o.allowedOrigins, "any"), "config", cmp.Or(o.configFile, "none")}
	return cfg, nil
}

// build builds the process o describes (server.New), binding nothing.
func build(st *state, o *options) (*server.App, error) {
	cfg, err := serverConfig(st, o)
	if err != nil {
		return nil, err
	}
	if len(o.secret) > 0 && len(o.secret) < 32 {
		st.log.Warn("the JWT secret is shorter than 32 bytes; use a long random secret")
	}
	hs, err := openHistory(o, &cfg, st.log, st.check) // history.go
	if err != nil {
		return nil, err
	}
	if hs != nil {
		cfg.Session.Log = hs
		st.history = hs
		historyStarted(st.log, o)
	}
	app, err := server.New(cfg)
	if err != nil {
		if st.history != nil {
			st.history.Close()
			st.history = nil
		}
		return nil, err
	}
	if st.cert = app.Certificate(); st.cert != nil {
		logCertificate(st.log, "tls certificate", st.cert)
	}
	return app, nil
}

// checkConfig is -t: what start would build and find wrong is checked
// by the same builders, so that a unit's ExecStartPre=wsd -t catches it;
// nothing is bound, connected or kept open.
func checkConfig(o *options, stderr io.Writer) int {
	st, err := newState(o, nil, io.Discard, slog.New(slog.DiscardHandler), new(slog.LevelVar))
	errs := []error{err, checkClusterURLs(o)}
	if err == nil {
		st.check = true
		app, err := build(st, o)
		if app != nil {
			app.Close()
		}
		if st.history != nil {
			st.history.Close()
		}
		errs = append(errs, err)
	}
	if out, err := openLogOutput(o.logFile, io.Discard); err != nil {
		errs = append(errs, err)
	} else {
		out.Close()
	}
	if err := errors.Join(errs...); err != nil {
		printError(stderr, err)
		return 1
	}
	fmt.Fprintf(stderr, "wsd: configuration ok (%s)\n", cmp.Or(o.configFile, "no config file"))
	return 0
}

// buildParts names the flags behind each part server.New reports; ""
// leaves the part's own words, which already name them.
var buildParts = map[string]string{
	server.PartTLS:     "-tls-cert/-tls-key",
	server.PartCluster: "",
}

// printError writes err one "wsd:" line per error, a build error under
// the flags that configure its part.
func printError(stderr io.Writer, err error) {
	var lines []string
	var walk func(error)
	walk = func(err error) {
		var be *server.BuildError
		switch j, ok := err.(interface{ Unwrap() []error }); {
		case ok:
			for _, e := range j.Unwrap() {
				walk(e)
			}
		case errors.As(err, &be):
			prefix := buildParts[be.Part]
			if prefix != "" {
				prefix += ": "
			}
			lines = append(lines, prefix+be.Err.Error())
		default:
			lines = append(lines, err.Error())
		}
	}
	walk(err)
	for _, l := range lines {
		for _, line := range strings.Split(l, "\n") {
			fmt.Fprintln(stderr, "wsd:", line)
		}
	}
}

// serve handles SIGHUP (reload) and SIGUSR1 (reopen the log) until a
// signal asks to stop, and returns it.
func serve(st *state, logOut *logOutput, sig chan os.Signal) os.Signal {
	for {
		switch got := <-sig; got {
		case syscall.SIGHUP:
			if err := st.reload(); err != nil {
				st.log.Error("reload refused; old values kept", "err", strings.ReplaceAll(err.Error(), "\n", "; "))
			}
		case syscall.SIGUSR1:
			reopenLog(st, logOut)
		default:
			return got
		}
	}
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

// drain takes the process down (server.App.Drain) with the drain
// settings in force. A second SIGINT or SIGTERM skips the waiting.
func drain(st *state, app *server.App, logOut *logOutput, s os.Signal, sig chan os.Signal) error {
	o := st.cur.Load()
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
	return app.Drain(hurry, server.DrainConfig{Delay: o.drainDelay, Spread: o.lameDuck, Timeout: o.shutdownTimeout})
}

// logCertificate logs the certificate in use.
func logCertificate(log *slog.Logger, msg string, cert *certfile.Certificate) {
	leaf := cert.Leaf()
	log.Info(msg, "subject", leaf.Subject.String(), "dns", strings.Join(leaf.DNSNames, ","),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
}

// reloadTLS re-reads the certificate and key files: new handshakes get the
// new pair, established connections keep theirs. On failure the old pair
// stays in use and the error is logged.
func reloadTLS(cert *certfile.Certificate, log *slog.Logger) error {
	if err := cert.Reload(); err != nil {
		log.Error("tls reload failed; keeping the current certificate", "err", err)
		return err
	}
	logCertificate(log, "tls certificate reloaded", cert)
	return nil
}
