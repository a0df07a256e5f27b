package history

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// LockFile is the file in Config.Dir an embedded Log holds locked while
// it runs. nats-server does not lock its store directory, and two servers
// on one directory corrupt each other's files, so OpenEmbedded does.
const LockFile = "wsd-history.lock"

// ErrLocked is OpenEmbedded's error when another Log (in this process or
// another) has the directory.
var ErrLocked = errors.New("history: the store directory is in use by another wsd")

// OpenEmbedded starts an in-process nats-server with JetStream on
// cfg.Dir (no listener: the Log's connection is an in-process pipe) and
// returns a Log on it. Its limits are cfg's, never nats-server's
// defaults of 75 % of RAM and disk. It fails, never hangs, within
// cfg.StartTimeout: with ErrLocked, or an error naming the directory when
// it cannot be made or written, or when the server or its JetStream does
// not come up (a damaged store nats-server cannot recover is reported
// through cfg.Logf; what it can, it repairs and logs there too).
func OpenEmbedded(cfg Config) (*Log, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("history: embedded store needs a directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("history: store dir %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("history: store dir %s: %w", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".wsd-probe-*")
	if err != nil {
		return nil, fmt.Errorf("history: store dir %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	unlock, err := lockDir(filepath.Join(dir, LockFile))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()

	opts := &server.Options{
		ServerName:         "wsd-history",
		DontListen:         true,
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: cfg.MaxMemory,
		JetStreamMaxStore:  cfg.MaxStore,
		SyncInterval:       cfg.SyncInterval,
		SyncAlways:         cfg.SyncAlways,
		NoSigs:             true,
		MaxPayload:         int32(max(maxRecordSize(cfg), 1<<20)),
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("history: embedded server on %s: %w", dir, err)
	}
	ns.SetLoggerV2(logger{cfg.Logf}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(cfg.StartTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("history: embedded server on %s did not start within %v", dir, cfg.StartTimeout)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("history: JetStream did not start on %s (see the log)", dir)
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("wsd-history"),
		nats.Timeout(cfg.StartTimeout))
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("history: connecting to the embedded server: %w", err)
	}
	l, err := open(nc, cfg, true)
	if err != nil {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("history: store %s: %w", dir, err)
	}
	l.ns, l.unlock = ns, unlock
	ok = true
	return l, nil
}

// logger passes the embedded server's warnings and errors to Config.Logf
// (notices, debug and trace are dropped).
type logger struct{ logf func(string, ...any) }

func (l logger) Noticef(string, ...any) {}
func (l logger) Warnf(f string, a ...any) {
	l.logf("history: nats-server: warning: "+f, a...)
}
func (l logger) Fatalf(f string, a ...any) {
	l.logf("history: nats-server: fatal: "+f, a...)
}
func (l logger) Errorf(f string, a ...any) {
	l.logf("history: nats-server: error: "+f, a...)
}
func (l logger) Debugf(string, ...any) {}
func (l logger) Tracef(string, ...any) {}
