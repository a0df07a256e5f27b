package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/history"
	"github.com/wsd-chat/wsd/server"
)

// The history store's flags: where a room's order and history are kept
// when not only in memory (docs/protocol.md, "Order and history by mode").

// Defaults of the history store's flags.
const (
	DefaultHistoryStoreMax       = 1 << 30  // disk the embedded store may use (1 GiB)
	DefaultHistoryMemMax         = 64 << 20 // memory the embedded server may use (64 MiB)
	DefaultHistorySync           = 2 * time.Minute
	DefaultHistoryPublishTimeout = 2 * time.Second
	DefaultHistoryReplicas       = 1 // copies of the stream (-history-jetstream)
	// DefaultHistoryConnectTimeout bounds the dial of each -nats-url
	// server for -history-jetstream at start.
	DefaultHistoryConnectTimeout = 2 * time.Second
)

// codeInsufficientResources is JetStream's answer to a stream larger than
// the server or account may store.
const codeInsufficientResources jetstream.ErrorCode = 10047

// historyOptions are the -history-* flags of the store (the per-room
// limits, -history-size, -ttl and -bytes, are session's).
type historyOptions struct {
	dir            string
	storeMax       int64
	memMax         int64
	sync           syncFlag
	jetstream      bool
	replicas       int
	publishTimeout time.Duration
}

// syncFlag is -history-sync: an interval, or "always" (fsync every write).
type syncFlag struct {
	every  time.Duration
	always bool
}

func (s *syncFlag) String() string {
	if s.always {
		return "always"
	}
	return s.every.String()
}

func (s *syncFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "always" {
		*s = syncFlag{always: true}
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New(`want a duration such as 1s, or "always"`)
	}
	*s = syncFlag{every: d}
	return nil
}

func addHistoryFlags(fs *flag.FlagSet, h *historyOptions) {
	fs.StringVar(&h.dir, "history-dir", "", "keep rooms' order and history in an embedded JetStream file store in this `directory` (one box; empty: in memory)")
	fs.Int64Var(&h.storeMax, "history-store-max", DefaultHistoryStoreMax, "bytes of disk the history store may use: the embedded store's (-history-dir), or the stream's in the cluster's JetStream (-history-jetstream)")
	fs.Int64Var(&h.memMax, "history-mem-max", DefaultHistoryMemMax, "bytes of memory the embedded history server may use (-history-dir)")
	h.sync.every = DefaultHistorySync
	fs.Var(&h.sync, "history-sync", `how often the embedded history store fsyncs (a duration), or "always": every write before its ack (-history-dir)`)
	fs.BoolVar(&h.jetstream, "history-jetstream", false, "keep rooms' order and history in the JetStream of the -nats-url cluster: one order per room for every box")
	fs.IntVar(&h.replicas, "history-replicas", DefaultHistoryReplicas, "copies JetStream keeps of the history stream (-history-jetstream; at most the NATS cluster's servers)")
	fs.DurationVar(&h.publishTimeout, "history-publish-timeout", DefaultHistoryPublishTimeout, "how long a message waits for the history store; past it the box delivers it alone under a box-local epoch")
}

// historyStore is the open history store: the Log, and for
// -history-jetstream the NATS connection it runs on, which is its own
// (the bridge's is made later, by the App's Start, and follows its own
// reconnect policy).
type historyStore struct {
	*history.Log
	nc *nats.Conn // nil with -history-dir
}

var _ server.HistoryReporter = (*historyStore)(nil)

// openHistory opens the store o asks for, nil for none. cfg is the
// server's configuration, whose per-room limits bound the store too.
// It returns within the connect and start timeouts, never hanging on an
// unreachable NATS or a NATS without JetStream: wsd then does not start.
// With check (-t) the JetStream store is only checked, not opened: that
// would connect and create or update the stream.
func openHistory(o *options, cfg *server.Config, log *slog.Logger, check bool) (*historyStore, error) {
	hc := history.Config{
		MaxMsgsPerRoom: cfg.Session.HistorySize,
		MaxAge:         cfg.Session.HistoryTTL,
		MaxText:        cfg.Session.MaxMessage,
		PublishTimeout: o.history.publishTimeout,
		Logf:           func(f string, a ...any) { log.Warn(fmt.Sprintf(f, a...), "part", "history") },
	}
	switch {
	case o.history.dir != "":
		hc.Dir = o.history.dir
		hc.MaxMemory, hc.MaxStore = o.history.memMax, o.history.storeMax
		// The stream's own cap stays under the store's, so the server
		// drops the oldest messages before its disk is full.
		hc.MaxBytes = o.history.storeMax - o.history.storeMax/5
		hc.SyncInterval, hc.SyncAlways = o.history.sync.every, o.history.sync.always
		lg, err := history.OpenEmbedded(hc)
		if err != nil {
			return nil, fmt.Errorf("-history-dir %s: %w", o.history.dir, err)
		}
		return &historyStore{Log: lg}, nil
	case o.history.jetstream:
		hc.Prefix = o.cluster.prefix
		hc.MaxBytes = o.history.storeMax
		hc.Replicas = o.history.replicas
		if check {
			if err := hc.Validate(); err != nil {
				return nil, fmt.Errorf("-history-jetstream: %w", err)
			}
			return nil, nil
		}
		nc, err := historyConn(o)
		if err != nil {
			return nil, fmt.Errorf("-history-jetstream: %w", err)
		}
		lg, err := history.Open(nc, hc)
		if err != nil {
			nc.Close()
			switch ae := (*jetstream.APIError)(nil); {
			case errors.As(err, &ae) && ae.ErrorCode == codeInsufficientResources:
				return nil, fmt.Errorf("-history-jetstream: %w (-history-store-max %d is the stream's cap: lower it or give the NATS server more JetStream storage)", err, o.history.storeMax)
			case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
				errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
				return nil, fmt.Errorf("-history-jetstream: %w (JetStream is not enabled on the NATS server, or not for this account)", err)
			}
			return nil, fmt.Errorf("-history-jetstream: %w", err)
		}
		return &historyStore{Log: lg, nc: nc}, nil
	}
	return nil, nil
}

// historyConn dials -nats-url with the -nats-* credentials and CA for
// the history store. The first connect must succeed (bounded by
// DefaultHistoryConnectTimeout per server): without the stream there is
// no order to join. After it, the connection reconnects forever; while
// it is down a publish fails at once (no reconnect buffer), so the
// session delivers the message on this box under a box-local epoch
// rather than have it stored later as well.
func historyConn(o *options) (*nats.Conn, error) {
	c := &o.cluster
	opts := []nats.Option{
		nats.Name(strings.TrimSpace("wsd history " + c.boxID)), // the bridge's connection is "wsd <box id>"
		nats.Timeout(DefaultHistoryConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.PingInterval(10 * time.Second),
	}
	if c.creds != "" {
		opts = append(opts, nats.UserCredentials(c.creds))
	}
	if c.token != "" {
		opts = append(opts, nats.Token(c.token))
	}
	if c.user != "" || c.password != "" {
		opts = append(opts, nats.UserInfo(c.user, c.password))
	}
	if c.ca != "" {
		opts = append(opts, nats.RootCAs(c.ca))
	}
	nc, err := nats.Connect(c.url, opts...)
	if err != nil {
		// Never echo the URL: it may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("-nats-url does not parse: %w", ue.Err)
		}
		return nil, fmt.Errorf("cannot connect to NATS: %w", err)
	}
	return nc, nil
}

// historyStarted logs the store in use and the limits it was given.
func historyStarted(log *slog.Logger, o *options) {
	cur := o.server.Session
	if o.history.dir != "" {
		log.Info("history store", "mode", "embedded", "dir", o.history.dir, "stream", history.DefaultStream,
			"per_room", cur.HistorySize, "max_age", cur.HistoryTTL, "store_max", o.history.storeMax, "sync", o.history.sync.String())
		return
	}
	log.Info("history store", "mode", "jetstream", "nats", redactURLs(o.cluster.url), "stream", history.DefaultStream,
		"subjects", o.cluster.prefix+".h.>", "replicas", o.history.replicas,
		"per_room", cur.HistorySize, "max_age", cur.HistoryTTL, "max_bytes", o.history.storeMax)
}

// Close closes the Log, then its connection.
func (h *historyStore) Close() error {
	err := h.Log.Close()
	if h.nc != nil {
		h.nc.Close()
	}
	return err
}

// HistoryStatus implements server.HistoryReporter: "ok" while the store
// is connected and delivering, and the store's figures as
// wsd_history_store_* (the Hub's side, joins from the ring or the
// store and failed writes, is exported by the admin server itself).
func (h *historyStore) HistoryStatus() admin.HistoryStatus {
	s := h.Stats()
	state := "ok"
	switch {
	case !s.Connected:
		state = "disconnected"
	case !s.Consuming:
		state = "not consuming"
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g := func(name, help string, v float64) admin.HistoryMetric {
		return admin.HistoryMetric{Name: "store_" + name, Help: help, Value: v}
	}
	c := func(name, help string, v uint64) admin.HistoryMetric {
		return admin.HistoryMetric{Name: "store_" + name + "_total", Help: help, Counter: true, Value: float64(v)}
	}
	return admin.HistoryStatus{State: state, Metrics: []admin.HistoryMetric{
		g("connected", "1 while the history store's NATS connection is up.", b(s.Connected)),
		g("consuming", "1 while this box's consumer of the history stream runs.", b(s.Consuming)),
		g("lag", "Stream messages this box knows were stored and has not delivered yet.", float64(s.Lag)),
		g("pending", "Messages queued for the store or in flight now.", float64(s.Pending)),
		g("read_seconds_max", "The slowest read of the store for a join.", s.ReadMax.Seconds()),
		c("submitted", "Messages handed to the store.", s.Submitted),
		c("stored", "Messages the store took with a new seq.", s.Stored),
		c("conflicts", "Publishes refused because another box moved the room on first (each retried).", s.Conflicts),
		c("unavailable", "Messages the store could not take in time (unreachable, no JetStream, queue full).", s.Unavailable),
		c("failed", "Messages the store refused for another reason (a limit, too many conflicts).", s.Failed),
		c("foreign", "Stored messages dropped as not written by wsd.", s.Foreign),
		c("gaps", "Deliveries that skipped seqs of their room.", s.Gaps),
		c("consumer_resets", "Times this box's consumer of the stream was interrupted and recreated.", s.ConsumerResets),
		c("reads", "Reads of the store for joins.", s.Reads),
		{Name: "store_read_seconds_total", Help: "Time spent in reads of the store.", Counter: true, Value: s.ReadDuration.Seconds()},
	}}
}
