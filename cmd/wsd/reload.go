package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/wsd-chat/wsd/auth"
	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/certfile"
	"github.com/wsd-chat/wsd/session"
)

// state is the running configuration. cur is swapped whole by a reload;
// readers (the admin token, the drain settings) load it when they need it.
type state struct {
	args    []string
	stderr  io.Writer
	cur     atomic.Pointer[options]
	log     *slog.Logger
	level   *slog.LevelVar
	auth    *authSwitch
	hub     *session.Hub
	cert    *certfile.Certificate // nil without -tls-cert
	bridge  *cluster.Bridge       // nil without -nats-url
	history *historyStore         // nil without a history store; closed after the App
	mu      sync.Mutex            // one reload at a time
}

// A reloadable group of settings: when any of flags changed, prepare
// checks the new values and returns what commit does. A reload commits
// only once every group prepared.
type reloadable struct {
	flags   []string
	prepare func(st *state, o *options) (commit func(), err error)
}

// reloadables lists everything SIGHUP can change; every other flag needs a
// restart. The TLS certificate files are re-read on every reload (see
// reload); their names need a restart.
var reloadables = []reloadable{
	{[]string{"allowed-origins", "jwt-secret", "jwt-secret-file", "jwt-public-key", "jwt-audience", "jwt-issuer"}, func(st *state, o *options) (func(), error) {
		a, err := newAuthorizer(o)
		if err != nil {
			return nil, err
		}
		return func() { st.auth.swap(a) }, nil
	}},
	{[]string{"nats-bus-key-file"}, reloadBusKeys},
	{[]string{"max-msg-rate", "msg-burst"}, func(st *state, o *options) (func(), error) {
		sc := sessionLimits(o.server).Session
		return func() { st.hub.SetRateLimit(sc.MaxMsgRate, sc.MsgBurst) }, nil
	}},
	{[]string{"log-level"}, func(st *state, o *options) (func(), error) {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(o.logLevel)); err != nil {
			return nil, err
		}
		return func() { st.level.Set(lv) }, nil
	}},
	// Read from the snapshot when used: nothing to do but swap it.
	{[]string{"admin-token", "admin-token-file", "admin-insecure", "drain-delay", "lame-duck-duration", "shutdown-timeout"}, nil},
}

// secretFlags are never printed, not even in a reload's list of changes.
var secretFlags = map[string]bool{"admin-token": true, "jwt-secret": true}

// changed lists the flags whose values differ between a and b, plus the
// file-backed settings whose file contents changed.
func changed(a, b *options) []string {
	var out []string
	a.fs.VisitAll(func(f *flag.Flag) {
		if g := b.fs.Lookup(f.Name); g == nil || g.Value.String() != f.Value.String() {
			out = append(out, f.Name)
		}
	})
	if a.adminTokenFile != "" && a.token != b.token && !slices.Contains(out, "admin-token-file") {
		out = append(out, "admin-token-file")
	}
	if a.jwtSecretFile != "" && !bytes.Equal(a.secret, b.secret) && !slices.Contains(out, "jwt-secret-file") {
		out = append(out, "jwt-secret-file")
	}
	if a.jwtPublicKey != "" && !bytes.Equal(a.publicKeyPEM, b.publicKeyPEM) && !slices.Contains(out, "jwt-public-key") {
		out = append(out, "jwt-public-key")
	}
	if a.cluster.keyFile != "" && !slices.EqualFunc(a.cluster.busKeys, b.cluster.busKeys, bytes.Equal) && !slices.Contains(out, "nats-bus-key-file") {
		out = append(out, "nats-bus-key-file")
	}
	sort.Strings(out)
	return out
}

// reload re-reads the configuration (command line, environment, config
// file and the files it names) and applies what changed. Anything that
// fails — a bad value, a setting that needs a restart — refuses the whole
// reload and keeps the old values.
func (st *state) reload() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	old := st.cur.Load()
	o, err := parseFlags(st.args, io.Discard)
	if err != nil {
		return err
	}
	diff := changed(old, o)
	// The certificate files are re-read on every reload (their contents
	// change under the same names); a bad pair keeps the old one.
	if st.cert != nil && !slices.Contains(diff, "tls-cert") && !slices.Contains(diff, "tls-key") {
		_ = reloadTLS(st.cert, st.log)
	}
	if len(diff) == 0 {
		st.log.Info("reload: nothing changed")
		return nil
	}
	var fixed []string
	for _, name := range diff {
		if reloadableFlag(name) < 0 {
			fixed = append(fixed, "-"+name)
		}
	}
	if fixed != nil {
		return fmt.Errorf("%s cannot change without a restart", strings.Join(fixed, ", "))
	}
	var commits []func()
	for _, r := range reloadables {
		if r.prepare == nil || !slices.ContainsFunc(r.flags, func(f string) bool { return slices.Contains(diff, f) }) {
			continue
		}
		commit, err := r.prepare(st, o)
		if err != nil {
			return err
		}
		commits = append(commits, commit)
	}
	for _, c := range commits {
		c()
	}
	st.cur.Store(o)
	shown := make([]string, len(diff))
	for i, name := range diff {
		shown[i] = "-" + name
		if f := o.fs.Lookup(name); f != nil && !secretFlags[name] && !strings.HasSuffix(name, "-file") {
			shown[i] += "=" + f.Value.String()
		}
	}
	st.log.Info("reloaded", "changed", strings.Join(shown, " "))
	return nil
}

func reloadableFlag(name string) int {
	for i, r := range reloadables {
		if slices.Contains(r.flags, name) {
			return i
		}
	}
	return -1
}

// authSwitch is the handshake check in force: a reload swaps the
// Authorizer, and the refusal counts of the retired ones stay in the sum.
type authSwitch struct {
	cur     atomic.Pointer[auth.Authorizer]
	mu      sync.Mutex
	retired []*auth.Authorizer
}

func newAuthSwitch(a *auth.Authorizer) *authSwitch {
	s := &authSwitch{}
	s.cur.Store(a)
	return s
}

// Authorize is session.Config.Authorize.
func (s *authSwitch) Authorize(req *codec.Request) error { return s.cur.Load().Authorize(req) }

func (s *authSwitch) swap(a *auth.Authorizer) {
	s.mu.Lock()
	s.retired = append(s.retired, s.cur.Swap(a))
	s.mu.Unlock()
}

// Failures reports refusals by reason, summed over every Authorizer that
// was in force (admin.Options.AuthFailures).
func (s *authSwitch) Failures(f func(reason string, n uint64)) {
	s.mu.Lock()
	all := append(slices.Clone(s.retired), s.cur.Load())
	s.mu.Unlock()
	for _, r := range auth.Reasons() {
		var n uint64
		for _, a := range all {
			n += a.Failed(r)
		}
		f(r.String(), n)
	}
}
