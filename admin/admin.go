package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/version"
	"github.com/wsd-chat/wsd/session"
)

// Source is what the admin endpoints observe; *server.Server provides it.
type Source interface {
	Hub() *session.Hub
	Ready() bool
	AcceptErrors() uint64
	Workers() int
}

// Options configure the admin handler.
type Options struct {
	// Token, if set, is required as "Authorization: Bearer <token>" on
	// POST /publish, POST /disconnect and /debug/pprof/.
	Token string
	// TokenFunc, if set, returns the token in force and overrides Token,
	// so a configuration reload can change it.
	TokenFunc func() string
	// SecretFlags names the command-line flags whose values
	// /debug/pprof/cmdline replaces with "REDACTED" (DefaultSecretFlags
	// when nil), whether or not a token is set.
	SecretFlags []string
	// Fanout, if set, is exported as wsd_fanout_seconds; feed it from
	// session.Config.OnFanout (see FanoutObserver).
	Fanout prometheus.Histogram
	// AuthFailures, if set, reports refused handshakes by reason for
	// wsd_auth_failures_total (auth.Authorizer.Failures).
	AuthFailures func(f func(reason string, n uint64))
	// Cluster, if set, is this box's NATS bridge: wsd_cluster_* metrics
	// and the "cluster" part of /stats. /readyz does not depend on it.
	Cluster *cluster.Bridge
	// History, if set, reports the history store (-history-dir,
	// -history-jetstream): wsd_history_* metrics, with the Hub's own, and
	// its state in /healthz, /readyz and /stats. A store that is not ok
	// leaves both answering 200: the box keeps its rooms going alone
	// (docs/design.md).
	History func() HistoryStatus
}

// NewFanoutHistogram returns the wsd_fanout_seconds histogram: time from a
// broadcast being accepted to a shard's fan-out finishing its writes, one
// observation per shard batch (the batch's oldest broadcast).
func NewFanoutHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wsd_fanout_seconds",
		Help: "Time from a broadcast being accepted to a shard's fan-out finishing its writes (one observation per shard batch, its oldest broadcast).",
		Buckets: []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
			1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
	})
}

// FanoutObserver adapts h for session.Config.OnFanout.
func FanoutObserver(h prometheus.Histogram) func(time.Duration) {
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

// NewHandler returns the admin HTTP handler:
//
//	GET  /metrics        Prometheus metrics (wsd_*, go_*, process_*)
//	GET  /healthz        200 while the process serves
//	GET  /readyz         200 while accepting connections, 503 while draining
//	GET  /stats          JSON snapshot: connections, rooms by size
//	POST /publish        push a message to a room, a key or everyone
//	POST /disconnect     close one key's connection (4002)
//	GET  /rooms          every room's count, seq and epoch (chat protocol v1)
//	GET  /rooms/{room}   one room, with its member keys
//	GET  /rooms/{room}/history  its retained message envelopes
//	     /debug/pprof/   Go profiling (token required when one is set)
//	GET  /               this list
func NewHandler(src Source, opts Options) http.Handler {
	token := opts.TokenFunc
	if token == nil {
		static := opts.Token
		token = func() string { return static }
	}
	secrets := opts.SecretFlags
	if secrets == nil {
		secrets = DefaultSecretFlags
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&collector{stats: src.Hub().Stats(), acceptErrors: src.AcceptErrors, authFailures: opts.AuthFailures},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if opts.Fanout != nil {
		reg.MustRegister(opts.Fanout)
	}
	if opts.Cluster != nil {
		reg.MustRegister(&clusterCollector{b: opts.Cluster})
	}
	if opts.History != nil {
		reg.MustRegister(&historyCollector{stats: src.Hub().Stats(), status: opts.History}, &storeCollector{status: opts.History})
	}
	status := func(ok string) map[string]string {
		m := map[string]string{"status": ok}
		if opts.History != nil {
			m["history"] = opts.History().State
		}
		return m
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, status("ok"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !src.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, status("draining"))
			return
		}
		writeJSON(w, http.StatusOK, status("ready"))
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		snap := snapshot(src)
		snap.Cluster = clusterSnapshot(opts.Cluster)
		if opts.History != nil {
			snap.History = opts.History().State
		}
		writeJSON(w, http.StatusOK, snap)
	})
	mux.Handle("POST /publish", &publisher{hub: src.Hub(), token: token})
	mux.Handle("POST /disconnect", &disconnecter{hub: src.Hub(), token: token})
	rs := &rooms{hub: src.Hub(), token: token}
	mux.HandleFunc("GET /rooms", rs.list)
	mux.HandleFunc("GET /rooms/{room}", rs.room)
	mux.HandleFunc("GET /rooms/{room}/history", rs.history)
	guard := func(h http.HandlerFunc) http.Handler { return requireToken(token, h) }
	mux.Handle("/debug/pprof/", guard(pprof.Index))
	mux.Handle("/debug/pprof/cmdline", guard(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, strings.Join(RedactArgs(os.Args, secrets), "\x00"))
	}))
	mux.Handle("/debug/pprof/profile", guard(pprof.Profile))
	mux.Handle("/debug/pprof/symbol", guard(pprof.Symbol))
	mux.Handle("/debug/pprof/trace", guard(pprof.Trace))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, index)
	})
	return browserGuard(mux, token)
}

// Snapshot is the JSON answer of GET /stats.
type Snapshot struct {
	Connections int64               `json:"connections"`
	Handshaking int64               `json:"handshaking"`
	Closing     int64               `json:"closing"`
	Broadcasts  uint64              `json:"broadcasts"`
	Rooms       int                 `json:"rooms"`
	TopRooms    []session.RoomCount `json:"top_rooms"`
	Workers     int                 `json:"workers"`
	Goroutines  int                 `json:"goroutines"`
	Ready       bool                `json:"ready"`
	Cluster     *ClusterSnapshot    `json:"cluster,omitempty"` // with -nats-url
	History     string              `json:"history,omitempty"` // the history store's state, with one
	Version     version.Info        `json:"version"`
}

const topRooms = 10

func snapshot(src Source) Snapshot {
	hub := src.Hub()
	st := hub.Stats()
	rooms := hub.Rooms()
	top := rooms
	if len(top) > topRooms {
		top = top[:topRooms]
	}
	return Snapshot{
		Connections: st.Open.Load(),
		Handshaking: st.Handshaking.Load(),
		Closing:     st.Closing.Load(),
		Broadcasts:  st.Broadcasts.Load(),
		Rooms:       len(rooms),
		TopRooms:    top,
		Workers:     src.Workers(),
		Goroutines:  runtime.NumGoroutine(),
		Ready:       src.Ready(),
		Version:     version.Get(),
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// index is the answer of GET /.
const index = `wsd admin endpoints:
GET  /metrics           Prometheus metrics
GET  /healthz           200 while the process serves
GET  /readyz            200 while ready, 503 while draining
GET  /stats             JSON snapshot: connections, rooms, version
POST /publish           {"room"|"key", "text"}: push a message (bearer token when set)
POST /disconnect        {"key"}: close that connection with 4002 (bearer token when set)
GET  /rooms             rooms: count, seq, epoch, history held (bearer token when set)
GET  /rooms/{room}      one room and its member keys (bearer token when set)
GET  /rooms/{room}/history  the room's retained messages, oldest first (bearer token when set)
GET  /debug/pprof/      Go profiling (bearer token when set)
`

// DefaultSecretFlags are the flags whose values /debug/pprof/cmdline hides.
// A NATS URL may carry a user's password or a token.
var DefaultSecretFlags = []string{"admin-token", "jwt-secret", "nats-token", "nats-password", "nats-url"}

// RedactArgs returns args with the value of every flag named in secret
// replaced by REDACTED, in each spelling the flag package accepts:
// -name value, -name=value, --name value, --name=value.
func RedactArgs(args []string, secret []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	isSecret := func(name string) bool {
		for _, s := range secret {
			if name == s {
				return true
			}
		}
		return false
	}
	for i := 1; i < len(out); i++ {
		a := out[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if eq := strings.IndexByte(name, '='); eq >= 0 {
			if isSecret(name[:eq]) {
				out[i] = a[:len(a)-len(name)+eq+1] + "REDACTED"
			}
			continue
		}
		if isSecret(name) && i+1 < len(out) {
			out[i+1] = "REDACTED"
			i++
		}
	}
	return out
}

// requireToken refuses requests without the bearer token in force, when
// one is set.
func requireToken(token func() string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if authorized(w, r, token) {
			h.ServeHTTP(w, r)
		}
	})
}
