package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/wsd-chat/wsd/cluster"
)

// clusterOptions are the flags that join this box to others through NATS.
type clusterOptions struct {
	url       string
	creds     string
	token     string
	user      string
	password  string
	ca        string
	prefix    string
	boxID     string
	carryGzip bool
	keyFile   string // -nats-bus-key-file
	lease     time.Duration

	busKeys [][]byte // loaded by loadBusKeys from keyFile
}

func addClusterFlags(fs *flag.FlagSet, c *clusterOptions) {
	fs.StringVar(&c.url, "nats-url", "", "join other boxes through the NATS server(s) at this `URL` (nats://host:4222, comma-separated for several; empty: one box, no NATS)")
	fs.StringVar(&c.creds, "nats-creds", "", "NATS credentials `file` (user JWT and nkey seed)")
	fs.StringVar(&c.token, "nats-token", "", "NATS authentication token")
	fs.StringVar(&c.user, "nats-user", "", "NATS user name (with -nats-password)")
	fs.StringVar(&c.password, "nats-password", "", "NATS password")
	fs.StringVar(&c.ca, "nats-ca", "", "PEM `file` of the CAs that sign the NATS server's TLS certificate (tls:// URLs)")
	fs.StringVar(&c.prefix, "nats-subject-prefix", cluster.DefaultPrefix, "first token(s) of every subject wsd uses, so several products can share one NATS")
	fs.StringVar(&c.boxID, "box-id", "", "this box's name on the bus, unique per process (default host-pid-random)")
	fs.StringVar(&c.keyFile, "nats-bus-key-file", "", "sign and verify every bus message with the key in this `file` (one line of 32 bytes or more; two lines during a rotation: the first signs, both verify); reloadable")
	fs.DurationVar(&c.lease, "presence-lease", cluster.DefaultPresenceLease, "the other boxes drop this box's room members this long after its last lease renewal (sent every third of it): how soon a crashed box's members leave")
	fs.BoolVar(&c.carryGzip, "nats-carry-gzip", false, "ignored, kept so configurations that set it still parse: only the text crosses the bus and each box gzips it for its own members")
}

// clusterConfig returns the NATS bridge's configuration the flags ask
// for, or nil for one box.
func clusterConfig(o *options) (*cluster.Config, error) {
	c := &o.cluster
	if c.url == "" {
		for name, v := range map[string]string{"-nats-creds": c.creds, "-nats-token": c.token,
			"-nats-user": c.user, "-nats-password": c.password, "-nats-ca": c.ca, "-box-id": c.boxID,
			"-nats-bus-key-file": c.keyFile} {
			if v != "" {
				return nil, fmt.Errorf("%s needs -nats-url", name)
			}
		}
		return nil, nil
	}
	return &cluster.Config{
		URL:        c.url,
		Creds:      c.creds,
		Token:      c.token,
		User:       c.user,
		Password:   c.password,
		CAFile:     c.ca,
		Prefix:     c.prefix,
		BoxID:      c.boxID,
		MaxMessage: o.server.Session.MaxMessage,
		BusKeys:    c.busKeys,

		PresenceLease: c.lease,
	}, nil
}

// redactURLs shows NATS URLs without the passwords or tokens in them.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p // as nats.go reads "token@host:4222"
		}
		u, err := url.Parse(p)
		if err != nil {
			parts[i] = "(unparsable)"
			continue
		}
		if u.User != nil {
			u.User = url.User("redacted")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// loadBusKeys reads -nats-bus-key-file into o.cluster.busKeys.
func loadBusKeys(o *options) error {
	if o.cluster.keyFile == "" {
		o.cluster.busKeys = nil
		return nil
	}
	b, err := os.ReadFile(o.cluster.keyFile)
	if err != nil {
		return fmt.Errorf("-nats-bus-key-file: %w", err)
	}
	keys, err := cluster.ParseBusKeys(b)
	if err != nil {
		return fmt.Errorf("-nats-bus-key-file %s: %w", o.cluster.keyFile, err)
	}
	o.cluster.busKeys = keys
	return nil
}

// reloadBusKeys is the reload of -nats-bus-key-file (reload.go).
func reloadBusKeys(st *state, o *options) (func(), error) {
	if st.bridge == nil {
		return func() {}, nil
	}
	keys := o.cluster.busKeys
	return func() {
		_ = st.bridge.SetBusKeys(keys) // checked by ParseBusKeys
		if keys == nil {
			st.log.Warn("bus keys removed: bus messages are no longer signed nor checked")
		}
	}, nil
}

// clusterStarted logs the bridge's settings, never its credentials, and
// warns when the bus is not authenticated.
func clusterStarted(log *slog.Logger, b *cluster.Bridge, o *options) {
	log.Info("cluster", "box_id", b.BoxID(), "nats", redactURLs(o.cluster.url),
		"subject_prefix", b.Prefix(), "nats_state", b.State(), "bus_keys", len(o.cluster.busKeys))
	if !b.Authenticated() {
		log.Warn("no -nats-bus-key-file: any NATS client that may publish under the subject prefix can kick keys, pose as a box and broadcast (docs/cluster-security.md)",
			"subject_prefix", b.Prefix())
	}
}

// checkClusterURLs parses each NATS URL the way nats.go will, without
// connecting (for -t, which builds the bridge itself through server.New).
// Errors never echo a URL: it may hold credentials.
func checkClusterURLs(o *options) error {
	for _, u := range strings.Split(o.cluster.url, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		if _, err := url.Parse(u); err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("-nats-url: a URL does not parse: %v", err)
		}
	}
	return nil
}
