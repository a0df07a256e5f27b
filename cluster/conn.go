package cluster

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/session"
)

// State describes the NATS connection: "connected", "reconnecting",
// "connecting", "closed".
func (b *Bridge) State() string {
	nc := b.ncp.Load()
	if nc == nil {
		return "connecting"
	}
	switch nc.Status() {
	case nats.CONNECTED:
		return "connected"
	case nats.RECONNECTING:
		return "reconnecting"
	case nats.CLOSED:
		return "closed"
	case nats.DRAINING_PUBS, nats.DRAINING_SUBS:
		return "draining"
	}
	return "connecting"
}

// Server returns the URL of the NATS server connected to, without
// credentials, or "".
func (b *Bridge) Server() string {
	nc := b.ncp.Load()
	if nc == nil || !nc.IsConnected() {
		return ""
	}
	return nc.ConnectedUrlRedacted()
}

// Start connects to NATS and starts delivering. NATS being unreachable is
// not an error: the bridge keeps trying in the background while local
// chat goes on. A bad credentials or CA file is.
func (b *Bridge) Start(hub *session.Hub) error {
	b.hub = hub
	opts := []nats.Option{
		nats.Name("wsd " + b.cfg.BoxID),
		nats.NoEcho(),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1), // a publish reaches a server or is counted as dropped
		nats.CustomReconnectDelay(b.backoff),
		nats.PingInterval(10 * time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) { b.connected(nc, false) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { b.connected(nc, true) }),
		nats.DisconnectErrHandler(b.disconnected),
		nats.ErrorHandler(b.asyncError),
	}
	if b.cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(b.cfg.Creds))
	}
	if b.cfg.Token != "" {
		opts = append(opts, nats.Token(b.cfg.Token))
	}
	if b.cfg.User != "" || b.cfg.Password != "" {
		opts = append(opts, nats.UserInfo(b.cfg.User, b.cfg.Password))
	}
	if b.cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(b.cfg.CAFile))
	}
	opts = append(opts, b.cfg.Options...)
	nc, err := nats.Connect(b.cfg.URL, opts...)
	if err != nil {
		// Never echo the URL: it may hold credentials, and a URL that
		// does not parse comes back inside a *url.Error.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("-nats-url does not parse: %w", ue.Err)
		}
		return fmt.Errorf("cluster: nats: %w", err)
	}
	b.nc = nc
	b.ncp.Store(nc)
	if nc.IsConnected() {
		b.connected(nc, false)
	}
	if _, err := nc.ChanSubscribe(b.subj.all(), b.inbox); err != nil {
		nc.Close()
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	b.stats.Subscriptions.Add(1)
	if err := b.presenceStart(); err != nil {
		nc.Close()
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	b.mu.Lock()
	b.started = true
	b.mu.Unlock()
	go b.loop()
	go b.confirmer()
	b.signal()
	return nil
}

// Close unsubscribes from everything, flushes what is queued and closes
// the NATS connection. Call it after the Hub's Shutdown.
func (b *Bridge) Close() {
	if b.nc == nil || !b.closing.CompareAndSwap(false, true) {
		return
	}
	close(b.quit)
	<-b.done
	// The last batch: toConfirm holds one, so this waits at most for
	// the confirmer to take the one before.
	if b.open.n > 0 {
		b.toConfirm <- b.open
	}
	close(b.toConfirm)
	<-b.confirmed
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(time.Second)
	}
	b.nc.Close()
	b.stats.Connected.Store(false)
	b.stats.Subscriptions.Store(0)
	b.stats.RoomSubscriptions.Store(0)
	b.stats.KeySubscriptions.Store(0)
	b.stats.PresenceSubscriptions.Store(0)
	b.stats.PresenceBoxes.Store(0)
}

func (b *Bridge) backoff(attempts int) time.Duration {
	d := b.cfg.ReconnectMin
	for i := 1; i < attempts && d < b.cfg.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, b.cfg.ReconnectMax)
	var r [1]byte
	_, _ = rand.Read(r[:])
	return d + d*time.Duration(r[0])/1024 // up to 25% jitter
}

func (b *Bridge) connected(nc *nats.Conn, again bool) {
	if b.stats.Connected.Swap(true) {
		return
	}
	if again {
		b.stats.Reconnects.Add(1)
		b.log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
	} else {
		b.log.Info("nats connected", "server", nc.ConnectedUrlRedacted())
	}
	// Claims published while NATS was away were dropped: say again which
	// keys this box holds (see claim.go).
	select {
	case b.announce <- struct{}{}:
	default:
	}
	mp := int(nc.MaxPayload())
	b.maxPayload(mp)
	if over := b.cfg.MaxMessage + 512; mp > 0 && over > mp && !b.warnedPayload.Swap(true) {
		b.log.Warn("texts near -max-message cannot cross: NATS max_payload is smaller; they are refused and counted (too_large). Raise max_payload in the NATS server or lower -max-message",
			"max_payload", mp, "max_message", b.cfg.MaxMessage)
	}
}

func (b *Bridge) disconnected(_ *nats.Conn, err error) {
	if !b.stats.Connected.Swap(false) {
		return
	}
	b.stats.Disconnects.Add(1)
	if b.closing.Load() {
		return
	}
	if err != nil {
		b.log.Warn("nats connection lost; local chat goes on, cross-box messages are dropped until it is back", "err", err)
	} else {
		b.log.Warn("nats connection lost; local chat goes on, cross-box messages are dropped until it is back")
	}
}

func (b *Bridge) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		if sub != nil {
			b.scMu.Lock()
			if b.scSubs == nil {
				b.scSubs = make(map[*nats.Subscription]int)
			}
			if _, ok := b.scSubs[sub]; !ok {
				b.scSubs[sub] = 0
			}
			b.scMu.Unlock()
		}
		if !b.slowEpisode.Swap(true) {
			b.stats.SlowConsumer.Add(1)
			b.log.Warn("nats slow consumer: the bridge cannot keep up, messages from other boxes are being dropped",
				"inbox", len(b.inbox), "inbox_cap", cap(b.inbox))
		}
		return
	}
	// The same error again and again (a refused password on every
	// reconnect attempt) is logged once.
	msg := err.Error()
	if prev := b.lastErr.Swap(&msg); prev == nil || *prev != msg {
		b.log.Warn("nats error", "err", err)
	}
}

func (b *Bridge) maxPayload(n int) {
	if n > 0 {
		b.maxPay.Store(int64(n))
	}
}
