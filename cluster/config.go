package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/session"
)

// Defaults of Config's bounds.
const (
	DefaultQueueLimit   = 1 << 16  // publishes waiting for the bridge goroutine
	DefaultQueueBytes   = 64 << 20 // their bytes
	DefaultInbox        = 1 << 16  // received messages waiting for the bridge goroutine
	DefaultReconnectMin = 100 * time.Millisecond
	DefaultReconnectMax = 5 * time.Second
)

// Config configures a Bridge.
type Config struct {
	URL      string // nats://host:4222[,nats://…]; required
	Creds    string // NATS credentials file (JWT + nkey seed)
	Token    string
	User     string
	Password string
	CAFile   string // PEM roots to verify the NATS server's TLS certificate
	Prefix   string // first subject token(s); default DefaultPrefix
	// BusKeys sign and verify every bus message (buskey.go): one, or two
	// during a rotation, the first signing. None: the bus is trusted.
	BusKeys [][]byte
	BoxID   string // this box's name on the bus; default defaultBoxID()

	// MaxMessage bounds the text of messages accepted from the bus, like
	// -max-message for clients. 0: session.DefaultMaxMessage.
	MaxMessage int
	// QueueLimit bounds the publishes waiting for the bridge goroutine;
	// more are dropped (counted). Default DefaultQueueLimit.
	QueueLimit int
	// QueueBytes bounds the bytes of those publishes (a stalled NATS
	// connection must not hold QueueLimit large messages). Default
	// DefaultQueueBytes.
	QueueBytes int
	// Inbox is how many received messages may wait before the NATS client
	// drops more as a slow consumer. Default DefaultInbox.
	Inbox int
	// ReconnectMin and ReconnectMax bound the reconnect back-off: it
	// doubles from Min to Max, with up to 25% jitter. Defaults
	// DefaultReconnectMin, DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// PresenceLease is how long another box keeps this box's members
	// after its last lease renewal (sent every PresenceLease/3): a box
	// that crashed has its members leave within it. Default
	// DefaultPresenceLease.
	PresenceLease time.Duration

	Logger *slog.Logger
	// Options are appended to the NATS connection options (tests).
	Options []nats.Option
}

// defaultBoxID names a box after its host and process, plus four random
// hex digits so a restarted process with a reused pid is a new box.
func defaultBoxID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "wsd"
	}
	var r [2]byte
	_, _ = rand.Read(r[:])
	id := host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(r[:])
	if len(id) > maxBoxID {
		id = id[len(id)-maxBoxID:]
	}
	return id
}

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return errors.New("cluster: no NATS URL")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !validPrefix(c.Prefix) {
		return fmt.Errorf("cluster: bad subject prefix %q", c.Prefix)
	}
	if c.BoxID == "" {
		c.BoxID = defaultBoxID()
	}
	if len(c.BoxID) > maxBoxID {
		return fmt.Errorf("cluster: box id longer than %d bytes", maxBoxID)
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = session.DefaultMaxMessage
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.Inbox <= 0 {
		c.Inbox = DefaultInbox
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.PresenceLease <= 0 {
		c.PresenceLease = DefaultPresenceLease
	}
	if c.PresenceLease < 3*time.Millisecond || c.PresenceLease > maxLease {
		return fmt.Errorf("cluster: presence lease %v out of range (3ms..%v)", c.PresenceLease, maxLease)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
