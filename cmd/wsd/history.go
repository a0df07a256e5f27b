package main

import (
	"errors"
	"flag"
	"strings"
	"time"
)

// The history store's flags: where a room's order and history are kept
// when not only in memory (docs/protocol.md, "Order and history by mode").

// Defaults of the history store's flags.
const (
	DefaultHistoryStoreMax       = 1 << 30  // disk the embedded store may use (1 GiB)
	DefaultHistoryMemMax         = 64 << 20 // memory the embedded server may use (64 MiB)
	DefaultHistorySync           = 2 * time.Minute
	DefaultHistoryPublishTimeout = 2 * time.Second
)

// historyOptions are the -history-* flags of the store (the per-room
// limits, -history-size, -ttl and -bytes, are session's).
type historyOptions struct {
	dir            string
	storeMax       int64
	memMax         int64
	sync           syncFlag
	jetstream      bool
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
	fs.Int64Var(&h.storeMax, "history-store-max", DefaultHistoryStoreMax, "bytes of disk the embedded history store may use (-history-dir)")
	fs.Int64Var(&h.memMax, "history-mem-max", DefaultHistoryMemMax, "bytes of memory the embedded history server may use (-history-dir)")
	h.sync.every = DefaultHistorySync
	fs.Var(&h.sync, "history-sync", `how often the embedded history store fsyncs (a duration), or "always": every write before its ack (-history-dir)`)
	fs.BoolVar(&h.jetstream, "history-jetstream", false, "keep rooms' order and history in the JetStream of the -nats-url cluster: one order per room for every box")
	fs.DurationVar(&h.publishTimeout, "history-publish-timeout", DefaultHistoryPublishTimeout, "how long a message waits for the history store; past it the box delivers it alone under a box-local epoch")
}
