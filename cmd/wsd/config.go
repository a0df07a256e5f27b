package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/wsd-chat/wsd/auth"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
	"github.com/wsd-chat/wsd/tlswire"
)

// Configuration: every flag can also be set as WSD_<FLAG> in the
// environment (upper case, '-' as '_') and as "flag value" lines in the
// file -config names; a flag on the command line wins over the
// environment, which wins over the file (github.com/peterbourgon/ff/v3).

// EnvPrefix is the prefix of wsd's environment variables.
const EnvPrefix = "WSD"

// DefaultShutdownTimeout bounds the end of a drain: how long connections
// have to answer their close frame after the last batch was closed.
const DefaultShutdownTimeout = 10 * time.Second

// DefaultLameDuckDuration spreads the closes of a drain.
const DefaultLameDuckDuration = 10 * time.Second

// DefaultAdminAddr is where metrics, health, publish and pprof listen.
const DefaultAdminAddr = "127.0.0.1:9090"

type options struct {
	server          server.Config
	adminAddr       string
	adminToken      string
	adminTokenFile  string
	adminInsecure   bool
	logFile         string
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	drainDelay      time.Duration
	lameDuck        time.Duration
	jwtSecret       string
	jwtSecretFile   string
	jwtPublicKey    string
	jwtAudience     string
	jwtIssuer       string
	allowedOrigins  string
	demo            bool // serve the chat page (web) on a plain GET /
	tlsCert         string
	tlsKey          string
	subprotocols    string
	configFile      string
	check           bool // -t
	version         bool

	// Loaded by loadSecrets: the values in force, from the flag, the
	// environment, the config file or the named file.
	token        string // admin token
	secret       []byte // JWT HMAC secret
	publicKeyPEM []byte

	cluster clusterOptions // -nats-*, -box-id: cluster.go
	history historyOptions // -history-dir, -history-jetstream, …: history.go

	fs *flag.FlagSet // the parsed flags, for comparing configurations
}

// newFlagSet defines every flag into o.
func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	sc := &o.server.Session
	fs.StringVar(&o.server.Addr, "addr", server.DefaultAddr, "client listener `host:port`")
	fs.IntVar(&o.server.Pollers, "pollers", 1, "epoll instances")
	fs.IntVar(&o.server.Workers, "workers", runtime.GOMAXPROCS(0), "worker goroutines (decode, fan-out)")
	fs.IntVar(&sc.Shards, "shards", session.DefaultShards, "session table shards")
	fs.IntVar(&sc.MaxConns, "max-conns", 0, "sockets (handshaking, open or closing) before new ones get 503 (0: file limit less 192)")
	fs.IntVar(&sc.MaxConnsPerIP, "max-conns-per-ip", 0, "sockets one source address may hold before new ones get 429 (0: no cap; leave off behind a proxy)")
	fs.IntVar(&sc.MaxHandshakesPerIP, "max-handshakes-per-ip", session.DefaultMaxHandshakesPerIP, "sockets one source address may hold before their upgrade; more get 429 (0: no cap). At -max-conns the oldest handshaking socket is dropped for a newcomer")
	sc.InboundSharePerIP = session.DefaultInboundSharePerIP
	fs.Var((*fraction)(&sc.InboundSharePerIP), "inbound-share-per-ip", "share of -inbound-budget one source address's partial messages may hold, as 25% or 0.25 (at least two -max-message; more: close 1013; 0: no cap)")
	// -max-byte-rate, -max-msg-rate and -max-delivery-rate: 0 on the command line (and in a
	// reload) is unlimited, as it always was; session.Config's 0 is its
	// default and < 0 unlimited. sessionLimits translates, the one place.
	fs.Float64Var(&sc.MaxByteRate, "max-byte-rate", session.DefaultMaxByteRate, "message bytes (after gunzip) per second per connection (0: unlimited; over it: close 1008)")
	fs.Float64Var(&sc.MaxDeliveryRate, "max-delivery-rate", session.DefaultMaxDeliveryRate, "deliveries (each message times the members it reaches) per second a connection's messages may cost, with a burst of one second's worth (0: unlimited; over it: close 1008)")
	fs.Float64Var(&sc.MaxDeliveryRatePerIP, "max-delivery-rate-per-ip", 0, "deliveries per second the messages of all the connections of one source address may cost (0: no cap; leave off behind a proxy; over it: close 1008)")
	fs.IntVar(&sc.InflateRatio, "inflate-ratio", session.DefaultInflateRatio, "largest inflated/compressed size ratio of a gzip or permessage-deflate message past 64 KiB (more: close 1009)")
	fs.Int64Var(&sc.InboundBudget, "inbound-budget", session.DefaultInboundBudget, "bytes all partly received messages and request heads may hold together (more: close 1013)")
	fs.Int64Var(&sc.OutboundBudget, "outbound-budget", session.DefaultOutboundBudget, "bytes all broadcasts and send queues may hold together (more: largest queues closed, 1008)")
	fs.BoolVar(&sc.Deflate.Enabled, "deflate", true, "negotiate permessage-deflate (RFC 7692): one compression per broadcast, shared by every deflate peer")
	fs.IntVar(&sc.Deflate.ClientWindowBits, "deflate-client-window-bits", 0,
		"client compression context wsd keeps per connection, as 2^N bytes of dictionary: 0 answers client_no_context_takeover (nothing kept), 9-15 lets clients keep up to 2^N bytes")
	fs.DurationVar(&sc.MessageTimeout, "message-timeout", session.DefaultMessageTimeout, "longest time from a message's first byte to its last (longer: close 1008)")
	fs.IntVar(&sc.MaxMessage, "max-message", session.DefaultMaxMessage, "largest message in bytes, also after gunzip (larger: close 1009)")
	fs.IntVar(&sc.MaxQueue, "max-queue", session.DefaultMaxQueue, "outbound bytes queued per connection before it is closed as a slow consumer (1008)")
	fs.DurationVar(&sc.HandshakeTimeout, "handshake-timeout", session.DefaultHandshakeTimeout, "time to complete the upgrade request")
	fs.DurationVar(&sc.IdleTimeout, "idle-timeout", session.DefaultIdleTimeout, "close connections silent for this long (1001)")
	fs.DurationVar(&sc.PingInterval, "ping-interval", session.DefaultPingInterval, "ping connections silent for this long")
	fs.DurationVar(&sc.CloseTimeout, "close-timeout", session.DefaultCloseTimeout, "wait for the peer's close frame before dropping the socket")
	// 0: unlimited, translated by sessionLimits (see -max-byte-rate).
	fs.Float64Var(&sc.MaxMsgRate, "max-msg-rate", session.DefaultMaxMsgRate, "frames (one-frame messages, continuations, pings, pongs) per second per connection (0: unlimited; over it: close 1008); reloadable")
	fs.IntVar(&sc.MsgBurst, "msg-burst", session.DefaultMsgBurst, "messages a connection may send at once above -max-msg-rate; reloadable")
	fs.IntVar(&sc.MaxRoomsPerConn, "max-rooms-per-conn", session.DefaultMaxRoomsPerConn, "rooms one chat protocol v1 connection may be in, its first included (more: error 111)")
	fs.IntVar(&sc.HistorySize, "history-size", session.DefaultHistorySize, "messages each room keeps for v1 recovery and history (in memory, and in the history store); also the largest history a join may ask for")
	fs.DurationVar(&sc.HistoryTTL, "history-ttl", session.DefaultHistoryTTL, "age past which a room's kept message is dropped (in memory, and in the history store)")
	fs.IntVar(&sc.HistoryBytes, "history-bytes", session.DefaultHistoryBytes, "envelope bytes each room keeps at most (in memory, and in the history store)")
	fs.Int64Var(&sc.HistoryTotalBytes, "history-total-bytes", 0, "envelope bytes all rooms keep together, within -outbound-budget (0: a quarter of it)")
	fs.IntVar(&sc.LogReads, "history-reads", session.DefaultLogReads, "reads of the history store for joins memory cannot answer that run at once (-history-dir, -history-jetstream)")
	fs.IntVar(&sc.LogReadQueue, "history-read-queue", session.DefaultLogReadQueue, "joins that wait for a read of the history store; past it a join is answered from memory alone (-history-dir, -history-jetstream)")
	fs.DurationVar(&sc.LogReadTimeout, "history-read-timeout", session.DefaultLogReadTimeout, "how long a join waits for the history store (queued and read); past it it is answered from memory alone (-history-dir, -history-jetstream)")
	fs.DurationVar(&sc.DedupWindow, "dedup-window", session.DefaultDedupWindow, "how long a v1 send's id is remembered, so a retry is not broadcast twice (at least 2m)")
	fs.DurationVar(&sc.PresenceInterval, "presence-interval", session.DefaultPresenceInterval, "least time between two presence frames of a room (v1)")
	fs.DurationVar(&sc.PresenceGrace, "presence-grace", session.DefaultPresenceGrace, "a key that leaves and comes back within this shows neither (v1 presence; negative: no grace)")
	fs.IntVar(&sc.PresenceListMax, "presence-list-max", session.DefaultPresenceListMax, "rooms and changes above this many keys get counts only in presence; also the most keys a members answer lists")
	fs.IntVar(&o.server.Backlog, "backlog", server.DefaultBacklog, "listen backlog (capped by net.core.somaxconn)")
	fs.StringVar(&o.subprotocols, "subprotocols", "", "comma-separated WebSocket subprotocols wsd speaks; the first a client offers is selected")
	fs.StringVar(&o.adminAddr, "admin-addr", DefaultAdminAddr, "admin listener for /metrics, /healthz, /readyz, /stats, /publish, /disconnect, /debug/pprof (empty or off: none)")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token required by /publish, /disconnect and /debug/pprof (prefer -admin-token-file or WSD_ADMIN_TOKEN); reloadable")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "read the admin token from this `file`; reloadable")
	fs.BoolVar(&o.adminInsecure, "admin-insecure", false, "allow a non-loopback -admin-addr without an admin token")
	fs.StringVar(&o.jwtSecret, "jwt-secret", "", "require an HS256 JWT signed with this secret at the handshake (prefer -jwt-secret-file or WSD_JWT_SECRET); reloadable")
	fs.StringVar(&o.jwtSecretFile, "jwt-secret-file", "", "read the HS256 JWT secret from this `file`; reloadable")
	fs.StringVar(&o.jwtPublicKey, "jwt-public-key", "", "require an RS256 or ES256 JWT verified with the public key in this PEM `file`; reloadable")
	fs.StringVar(&o.jwtAudience, "jwt-audience", "", "when set, a JWT's aud must contain this value; reloadable")
	fs.StringVar(&o.jwtIssuer, "jwt-issuer", "", "when set, a JWT's iss must be this value; reloadable")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve wss:// with the certificate (chain) in this PEM `file`; re-read with -tls-key on SIGHUP")
	fs.StringVar(&o.tlsKey, "tls-key", "", "private key for -tls-cert, a PEM `file`")
	fs.IntVar(&sc.TLSHandshakes, "tls-handshakes", tlswire.DefaultMaxHandshakes, "TLS handshakes in progress at once, one short-lived goroutine each; more wait in a queue without one")
	fs.BoolVar(&o.demo, "demo", true, "serve the chat page on a plain GET / of the client listener (false: GET / is refused as a bad upgrade)")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", "comma-separated origins browsers may connect from, e.g. https://app.example.com,https://*.example.com (empty: any; no Origin header: always allowed); reloadable")
	fs.StringVar(&o.logFile, "log-file", "", "append logs to this file (default stderr); SIGUSR1 reopens it")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error; reloadable")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&o.drainDelay, "drain-delay", 0, "on SIGTERM, keep serving with /readyz at 503 this long before closing anything; reloadable")
	fs.DurationVar(&o.lameDuck, "lame-duck-duration", DefaultLameDuckDuration, "spread the 1001 closes of a drain over this long, in batches (0: all at once); reloadable")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "after the last batch, wait this long for peers to answer before dropping sockets; reloadable")
	fs.StringVar(&o.configFile, "config", "", "read flags from this `file`: one \"flag value\" per line, # comments")
	fs.BoolVar(&o.check, "t", false, "check the configuration and exit (0: valid, 1: not)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	addClusterFlags(fs, &o.cluster) // cluster.go
	addHistoryFlags(fs, &o.history) // history.go
	return fs
}

// commandLineOnly are the flags a config file may not set.
var commandLineOnly = map[string]bool{"config": true, "t": true, "version": true}

// configParser reads ff's plain format ("flag value" lines, # comments)
// and refuses the command-line-only flags.
func configParser(r io.Reader, set func(name, value string) error) error {
	return ff.PlainParser(r, func(name, value string) error {
		if commandLineOnly[strings.TrimLeft(name, "-")] {
			return fmt.Errorf("config file: %q can only be given on the command line", name)
		}
		return set(strings.TrimLeft(name, "-"), value)
	})
}

// parseArgs parses the command line, the environment and the config file,
// without checking the values.
func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	// Errors come back as one line; the flag list only for -h.
	fs := newFlagSet(o, io.Discard)
	o.fs = fs
	err := ff.Parse(fs, args,
		ff.WithEnvVarPrefix(EnvPrefix),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(configParser),
	)
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.adminAddr == "off" {
		o.adminAddr = ""
	}
	return o, nil
}

// parseFlags parses and checks the configuration and loads the secrets.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return nil, err
	}
	if o.version {
		return o, nil
	}
	if err := loadSecrets(o); err != nil {
		return nil, err
	}
	if err := validate(o); err != nil {
		return nil, err
	}
	return o, nil
}

// loadSecrets reads the secrets in force into o.token, o.secret and
// o.publicKeyPEM.
func loadSecrets(o *options) error {
	var errs []error
	if o.adminToken != "" && o.adminTokenFile != "" {
		errs = append(errs, errors.New("-admin-token and -admin-token-file exclude each other"))
	}
	if o.jwtSecret != "" && o.jwtSecretFile != "" {
		errs = append(errs, errors.New("-jwt-secret and -jwt-secret-file exclude each other"))
	}
	if (o.jwtSecret != "" || o.jwtSecretFile != "") && o.jwtPublicKey != "" {
		errs = append(errs, errors.New("-jwt-secret and -jwt-public-key exclude each other"))
	}
	if errs != nil {
		return errors.Join(errs...)
	}
	if err := loadBusKeys(o); err != nil { // cluster.go
		return err
	}
	o.token, o.secret = o.adminToken, []byte(o.jwtSecret)
	if o.adminTokenFile != "" {
		b, err := readSecret("admin-token-file", o.adminTokenFile)
		if err != nil {
			return err
		}
		o.token = string(b)
	}
	if o.jwtSecretFile != "" {
		b, err := readSecret("jwt-secret-file", o.jwtSecretFile)
		if err != nil {
			return err
		}
		o.secret = b
	}
	if o.jwtPublicKey != "" {
		pem, err := os.ReadFile(o.jwtPublicKey)
		if err != nil {
			return fmt.Errorf("-jwt-public-key: %w", err)
		}
		if len(pem) == 0 {
			return fmt.Errorf("-jwt-public-key: %s is empty", o.jwtPublicKey)
		}
		o.publicKeyPEM = pem
	}
	return nil
}

// readSecret reads a secret file; one trailing newline is not part of it.
func readSecret(flagName, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", flagName, err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("-%s: %s is empty", flagName, path)
	}
	return b, nil
}

// A check is one validation rule: bad reports whether o breaks it.
type check struct {
	flag string
	rule string
	bad  func(o *options) bool
}

// An explainedCheck is a rule whose words depend on the value: explain
// returns what is wrong with o, or "".
type explainedCheck struct {
	flag    string
	explain func(o *options) string
}

// checks holds every rule a configuration must pass, at start, with -t and
// on reload. A new flag adds its rules here.
var checks = []check{
	{"addr", "must be host:port", func(o *options) bool { return !validHostPort(o.server.Addr) }},
	{"pollers", "must be at least 1", func(o *options) bool { return o.server.Pollers < 1 }},
	{"workers", "must be at least 1", func(o *options) bool { return o.server.Workers < 1 }},
	{"shards", "must be between 1 and 65536", func(o *options) bool {
		return o.server.Session.Shards < 1 || o.server.Session.Shards > 65536
	}},
	{"max-conns", "must be 0 (the file limit less 192) or more", func(o *options) bool { return o.server.Session.MaxConns < 0 }},
	{"max-conns-per-ip", "must be 0 (no cap) or more", func(o *options) bool { return o.server.Session.MaxConnsPerIP < 0 }},
	{"max-handshakes-per-ip", "must be 0 (no cap) or more", func(o *options) bool { return o.server.Session.MaxHandshakesPerIP < 0 }},
	{"inbound-share-per-ip", "must be between 0% (no cap) and 100%", func(o *options) bool {
		f := o.server.Session.InboundSharePerIP
		return !(f >= 0 && f <= 1)
	}},
	{"max-byte-rate", "must be 0 (unlimited) or a positive number", func(o *options) bool {
		r := o.server.Session.MaxByteRate
		return r < 0 || math.IsNaN(r) || math.IsInf(r, 0)
	}},
	{"max-delivery-rate", "must be 0 (unlimited) or a positive number", func(o *options) bool {
		r := o.server.Session.MaxDeliveryRate
		return r < 0 || math.IsNaN(r) || math.IsInf(r, 0)
	}},
	{"max-delivery-rate-per-ip", "must be 0 (no cap) or a positive number", func(o *options) bool {
		r := o.server.Session.MaxDeliveryRatePerIP
		return r < 0 || math.IsNaN(r) || math.IsInf(r, 0)
	}},
	{"inflate-ratio", "must be at least 1", func(o *options) bool { return o.server.Session.InflateRatio < 1 }},
	{"inbound-budget", "must be at least -max-message (one whole message must fit)", func(o *options) bool {
		return o.server.Session.InboundBudget < int64(o.server.Session.MaxMessage)
	}},
	{"outbound-budget", "must be at least -max-queue", func(o *options) bool {
		return o.server.Session.OutboundBudget < int64(o.server.Session.MaxQueue)
	}},
	{"deflate-client-window-bits", "must be 0 (client_no_context_takeover) or 9 to 15", func(o *options) bool { return !o.server.Session.Deflate.Valid() }},
	{"jwt-audience", "needs -jwt-secret, -jwt-secret-file or -jwt-public-key", func(o *options) bool {
		return o.jwtAudience != "" && len(o.secret) == 0 && len(o.publicKeyPEM) == 0
	}},
	{"jwt-issuer", "needs -jwt-secret, -jwt-secret-file or -jwt-public-key", func(o *options) bool {
		return o.jwtIssuer != "" && len(o.secret) == 0 && len(o.publicKeyPEM) == 0
	}},
	{"tls-cert", "and -tls-key must be given together", func(o *options) bool { return (o.tlsCert == "") != (o.tlsKey == "") }},
	{"tls-handshakes", "must be at least 1", func(o *options) bool { return o.server.Session.TLSHandshakes < 1 }},
	{"message-timeout", "must be more than 0", func(o *options) bool { return o.server.Session.MessageTimeout <= 0 }},
	{"max-message", "must be between 1 and 1073741824 bytes", func(o *options) bool {
		return o.server.Session.MaxMessage < 1 || o.server.Session.MaxMessage > 1<<30
	}},
	{"max-queue", "must be at least 1 byte", func(o *options) bool { return o.server.Session.MaxQueue < 1 }},
	{"handshake-timeout", "must be more than 0", func(o *options) bool { return o.server.Session.HandshakeTimeout <= 0 }},
	{"ping-interval", "must be more than 0", func(o *options) bool { return o.server.Session.PingInterval <= 0 }},
	{"idle-timeout", "must be longer than -ping-interval (a quiet client is pinged before it is dropped)", func(o *options) bool {
		return o.server.Session.IdleTimeout <= o.server.Session.PingInterval
	}},
	{"max-rooms-per-conn", "must be at least 1", func(o *options) bool { return o.server.Session.MaxRoomsPerConn < 1 }},
	{"history-size", "must be between 1 and 100000", func(o *options) bool {
		return o.server.Session.HistorySize < 1 || o.server.Session.HistorySize > 100000
	}},
	{"history-ttl", "must be more than 0", func(o *options) bool { return o.server.Session.HistoryTTL <= 0 }},
	{"history-bytes", "must be at least 1", func(o *options) bool { return o.server.Session.HistoryBytes < 1 }},
	{"history-total-bytes", "must be 0 (a quarter of -outbound-budget) up to -outbound-budget", func(o *options) bool {
		return o.server.Session.HistoryTotalBytes < 0 || o.server.Session.HistoryTotalBytes > o.server.Session.OutboundBudget
	}},
	{"history-dir", "and -history-jetstream exclude each other", func(o *options) bool { return o.history.dir != "" && o.history.jetstream }},
	{"history-jetstream", "needs -nats-url", func(o *options) bool { return o.history.jetstream && o.cluster.url == "" }},
	{"history-replicas", "must be 1 to 5, and more than 1 only with -history-jetstream", func(o *options) bool {
		return o.history.replicas < 1 || o.history.replicas > 5 || o.history.replicas > 1 && !o.history.jetstream
	}},
	{"history-store-max", "must be at least 1 MiB", func(o *options) bool { return o.history.storeMax < 1<<20 }},
	{"history-mem-max", "must be at least 1 MiB", func(o *options) bool { return o.history.memMax < 1<<20 }},
	{"history-sync", `must be more than 0, or "always"`, func(o *options) bool { return !o.history.sync.always && o.history.sync.every <= 0 }},
	{"history-publish-timeout", "must be more than 0", func(o *options) bool { return o.history.publishTimeout <= 0 }},
	{"history-reads", "must be 1 to 256", func(o *options) bool { return o.server.Session.LogReads < 1 || o.server.Session.LogReads > 256 }},
	{"history-read-queue", "must be at least 1", func(o *options) bool { return o.server.Session.LogReadQueue < 1 }},
	{"history-read-timeout", "must be more than 0", func(o *options) bool { return o.server.Session.LogReadTimeout <= 0 }},
	{"dedup-window", "must be at least 2m (a client retrying after a reconnect counts on it)", func(o *options) bool {
		return o.server.Session.DedupWindow < session.DefaultDedupWindow
	}},
	{"presence-interval", "must be more than 0", func(o *options) bool { return o.server.Session.PresenceInterval <= 0 }},
	{"presence-grace", "must not be 0 (negative: no grace)", func(o *options) bool { return o.server.Session.PresenceGrace == 0 }},
	{"presence-list-max", "must be at least 1", func(o *options) bool { return o.server.Session.PresenceListMax < 1 }},
	{"presence-lease", "must be between 100ms and 1h, and more than 3 × -presence-interval", func(o *options) bool {
		l := o.cluster.lease
		return l < 100*time.Millisecond || l > time.Hour || l <= 3*o.server.Session.PresenceInterval
	}},
	{"close-timeout", "must be more than 0", func(o *options) bool { return o.server.Session.CloseTimeout <= 0 }},
	{"max-msg-rate", "must be 0 (unlimited) or a positive number", func(o *options) bool {
		r := o.server.Session.MaxMsgRate
		return r < 0 || math.IsNaN(r) || math.IsInf(r, 0)
	}},
	{"msg-burst", "must be at least 1", func(o *options) bool { return o.server.Session.MsgBurst < 1 }},
	{"backlog", "must be between 1 and 65535", func(o *options) bool { return o.server.Backlog < 1 || o.server.Backlog > 65535 }},
	{"subprotocols", "must be comma-separated tokens (RFC 7230)", func(o *options) bool {
		for _, p := range splitList(o.subprotocols) {
			if !isToken(p) {
				return true
			}
		}
		return false
	}},
	{"admin-addr", "must be host:port, or empty or off for no admin listener", func(o *options) bool {
		return o.adminAddr != "" && !validHostPort(o.adminAddr)
	}},
	{"admin-addr", "is not a loopback address: set an admin token (-admin-token-file, WSD_ADMIN_TOKEN) or -admin-insecure", func(o *options) bool {
		return o.adminAddr != "" && validHostPort(o.adminAddr) && !loopback(o.adminAddr) && o.token == "" && !o.adminInsecure
	}},
	{"log-level", "must be debug, info, warn or error", func(o *options) bool {
		var lv slog.Level
		return lv.UnmarshalText([]byte(o.logLevel)) != nil
	}},
	{"log-format", "must be text or json", func(o *options) bool { return o.logFormat != "text" && o.logFormat != "json" }},
	{"shutdown-timeout", "must be more than 0", func(o *options) bool { return o.shutdownTimeout <= 0 }},
	{"drain-delay", "must be 0 or more", func(o *options) bool { return o.drainDelay < 0 }},
	{"lame-duck-duration", "must be 0 or more", func(o *options) bool { return o.lameDuck < 0 }},
	{"allowed-origins", "must be scheme://host[:port] entries", func(o *options) bool {
		_, err := auth.NewOriginPolicy(auth.ParseOriginList(o.allowedOrigins))
		return err != nil && !errors.Is(err, auth.ErrPublicSuffixWildcard)
	}},
}

// explainedChecks are checked after checks, in the same way.
var explainedChecks = []explainedCheck{
	// https://*.com, https://*.github.io: the answer names the pattern
	// and the suffix.
	{"allowed-origins", func(o *options) string {
		if _, err := auth.NewOriginPolicy(auth.ParseOriginList(o.allowedOrigins)); errors.Is(err, auth.ErrPublicSuffixWildcard) {
			return err.Error()
		}
		return ""
	}},
}

// validate applies every check and returns one line per broken rule.
func validate(o *options) error {
	var errs []error
	broken := func(flag, rule string) {
		f := o.fs.Lookup(flag)
		errs = append(errs, fmt.Errorf("-%s %s: %s", flag, strconv.Quote(f.Value.String()), rule))
	}
	for _, c := range checks {
		if c.bad(o) {
			broken(c.flag, c.rule)
		}
	}
	for _, c := range explainedChecks {
		if rule := c.explain(o); rule != "" {
			broken(c.flag, rule)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The authorizer's own checks: key type and size, origin patterns.
	if _, err := newAuthorizer(o); err != nil {
		return err
	}
	return nil
}

func validHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// loopback reports whether a host:port listens on loopback only.
func loopback(hostport string) bool {
	host, _, _ := net.SplitHostPort(hostport)
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// isToken reports whether s is an RFC 7230 token, what a subprotocol is.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// newAuthorizer builds the handshake checks from the configuration.
func newAuthorizer(o *options) (*auth.Authorizer, error) {
	return auth.New(auth.Config{
		HMACSecret:     o.secret,
		PublicKeyPEM:   o.publicKeyPEM,
		Audience:       o.jwtAudience,
		Issuer:         o.jwtIssuer,
		AllowedOrigins: auth.ParseOriginList(o.allowedOrigins),
	})
}

// printUsage writes -h's answer.
func printUsage(w io.Writer) {
	fs := newFlagSet(&options{}, w)
	fmt.Fprintf(w, "Usage: wsd [flags]\n\nEvery flag may also be set as %s_<FLAG> in the environment or as a\n\"flag value\" line in the -config file; the command line wins over the\nenvironment, which wins over the file.\n\n", EnvPrefix)
	fs.PrintDefaults()
}

// fraction is a flag holding a share: "25%" or "0.25".
type fraction float64

func (f *fraction) String() string {
	return strconv.FormatFloat(float64(*f)*100, 'g', -1, 64) + "%"
}

func (f *fraction) Set(s string) error {
	t, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return errors.New("want a fraction such as 0.25 or a percentage such as 25%")
	}
	if pct {
		v /= 100
	}
	*f = fraction(v)
	return nil
}

// sessionLimits maps the command line's "0 means no limit" for the rate
// and per-address flags to the session package's negative values (its zero means default):
// at start and at every reload.
func sessionLimits(c server.Config) server.Config {
	if c.Session.MaxMsgRate == 0 {
		c.Session.MaxMsgRate = -1
	}
	if c.Session.MaxByteRate == 0 {
		c.Session.MaxByteRate = -1
	}
	if c.Session.MaxDeliveryRate == 0 {
		c.Session.MaxDeliveryRate = -1
	}
	if c.Session.MaxHandshakesPerIP == 0 {
		c.Session.MaxHandshakesPerIP = -1
	}
	if c.Session.InboundSharePerIP == 0 {
		c.Session.InboundSharePerIP = -1
	}
	return c
}
