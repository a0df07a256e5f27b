package admin

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsd-chat/wsd/cluster"
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
	// POST /publish.
	Token string
	// Fanout, if set, is exported as wsd_fanout_seconds; feed it from
	// session.Config.OnFanout (see FanoutObserver).
	Fanout prometheus.Histogram
	// AuthFailures, if set, reports refused handshakes by reason for
	// wsd_auth_failures_total (auth.Authorizer.Failures).
	AuthFailures func(f func(reason string, n uint64))
	// Cluster, if set, is this box's NATS bridge: wsd_cluster_* metrics
	// and the "cluster" part of /stats. /readyz does not depend on it.
	Cluster *cluster.Bridge
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
//	     /debug/pprof/   Go profiling
func NewHandler(src Source, opts Options) http.Handler {
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
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !src.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		snap := snapshot(src)
		snap.Cluster = clusterSnapshot(opts.Cluster)
		writeJSON(w, http.StatusOK, snap)
	})
	mux.Handle("POST /publish", &publisher{hub: src.Hub(), token: opts.Token})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
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
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
