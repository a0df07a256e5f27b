package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

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
	fs.BoolVar(&c.carryGzip, "nats-carry-gzip", true, "the box a broadcast starts on gzips it once and sends the frame along, so other boxes gzip nothing")
}

// clusterConfig returns the NATS bridge's configuration the flags ask
// for, or nil for one box.
func clusterConfig(o *options) (*cluster.Config, error) {
	c := &o.cluster
	if c.url == "" {
		for name, v := range map[string]string{"-nats-creds": c.creds, "-nats-token": c.token,
			"-nats-user": c.user, "-nats-password": c.password, "-nats-ca": c.ca, "-box-id": c.boxID} {
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
		CarryGzip:  c.carryGzip,
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

// clusterStarted logs the bridge's settings, never its credentials.
func clusterStarted(log *slog.Logger, b *cluster.Bridge, o *options) {
	log.Info("cluster", "box_id", b.BoxID(), "nats", redactURLs(o.cluster.url),
		"subject_prefix", b.Prefix(), "nats_state", b.State(), "carry_gzip", o.cluster.carryGzip)
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
