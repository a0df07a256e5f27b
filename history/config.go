package history

import (
	"errors"
	"fmt"
	"time"

	"github.com/wsd-chat/wsd/chat"
)

// Defaults of Config. The limits bound what a box (or the NATS cluster)
// spends on history: every stored byte is charged to MaxBytes, and the
// embedded server's own memory and disk to MaxMemory and MaxStore, never
// to nats-server's defaults of 75 % of the machine's RAM and free disk.
const (
	DefaultStream         = "WSD_HISTORY"
	DefaultPrefix         = "wsd"
	DefaultMaxMsgsPerRoom = 100
	DefaultMaxAge         = 24 * time.Hour
	DefaultMaxBytes       = 1 << 30 // 1 GiB of stored messages, all rooms
	DefaultMaxStore       = DefaultMaxBytes + DefaultMaxBytes/4
	DefaultMaxMemory      = 64 << 20
	DefaultDuplicates     = 2 * time.Minute // JetStream's own default window
	MinDuplicates         = 2 * time.Minute // at least chat's dedup window
	DefaultMaxText        = 64 << 10
	DefaultPublishTimeout = 2 * time.Second
	DefaultStartTimeout   = 10 * time.Second
	DefaultReadTimeout    = 5 * time.Second
	DefaultMaxRetries     = 32
	DefaultMaxInflight    = 256
	DefaultMaxPending     = 16384
	DefaultMaxRooms       = 100000
	// DefaultSyncInterval is nats-server's own: the file store is fsynced
	// every 2 minutes (doc.go: what is on disk when).
	DefaultSyncInterval = 2 * time.Minute
)

// Config is a Log's. Zero fields take the defaults.
type Config struct {
	// Dir is the embedded server's store directory (OpenEmbedded only;
	// required). Open ignores it.
	Dir string
	// Stream and Prefix name the JetStream stream and its subjects,
	// <Prefix>.h.<room token>. Every box of a cluster must agree.
	Stream string
	Prefix string
	// MaxMsgsPerRoom is the history kept per room (MaxMsgsPerSubject).
	MaxMsgsPerRoom int
	// MaxAge drops messages older than this.
	MaxAge time.Duration
	// MaxBytes bounds the whole stream; the oldest messages go first.
	MaxBytes int64
	// Duplicates is the dedup window of (From, ID); at least MinDuplicates.
	Duplicates time.Duration
	// MaxText bounds a message's text, on Submit and on everything read
	// back (what is longer was not written by this wsd and is dropped).
	MaxText int
	// Replicas of the stream (Open on a NATS cluster; embedded: 1).
	Replicas int

	// The embedded server's limits (OpenEmbedded only).
	MaxMemory    int64         // JetStreamMaxMemory
	MaxStore     int64         // JetStreamMaxStore; at least MaxBytes
	SyncInterval time.Duration // fsync period; DefaultSyncInterval
	SyncAlways   bool          // fsync every message before its ack

	PublishTimeout time.Duration // a Submit's whole life, queue and retries
	StartTimeout   time.Duration // the embedded server's start
	ReadTimeout    time.Duration // one Read
	MaxRetries     int           // re-reads after a conflict, per Submit
	MaxInflight    int           // publishes in flight, all rooms
	MaxPending     int           // Submits queued or in flight; beyond: refused
	MaxRooms       int           // rooms whose position a Log keeps in memory

	// Logf, if set, gets the Log's rare events (a degraded start, a
	// consumer reset). The embedded server itself is silent.
	Logf func(format string, args ...any)
}

// Validate reports what Open would refuse in c, without connecting.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

func (c Config) withDefaults() (Config, error) {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxMsgsPerRoom <= 0 {
		c.MaxMsgsPerRoom = DefaultMaxMsgsPerRoom
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.MaxText <= 0 {
		c.MaxText = DefaultMaxText
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxMemory <= 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	if c.MaxStore <= 0 {
		c.MaxStore = max(DefaultMaxStore, c.MaxBytes+c.MaxBytes/4)
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = DefaultMaxRooms
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	switch {
	case !validName(c.Stream):
		return c, fmt.Errorf("history: stream name %q: want 1-64 of A-Z a-z 0-9 _ -", c.Stream)
	case !chat.ValidSubjectPrefix(c.Prefix):
		return c, fmt.Errorf("history: subject prefix %q: want NATS tokens without wildcards or spaces", c.Prefix)
	case c.Duplicates < MinDuplicates:
		return c, fmt.Errorf("history: dedup window %v is under %v", c.Duplicates, MinDuplicates)
	case c.MaxAge < c.Duplicates:
		return c, fmt.Errorf("history: max age %v is under the dedup window %v (JetStream refuses it)", c.MaxAge, c.Duplicates)
	case c.MaxStore < c.MaxBytes:
		return c, fmt.Errorf("history: max store %d is under the stream's max bytes %d", c.MaxStore, c.MaxBytes)
	}
	return c, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

var errClosed = errors.New("history: closed")
