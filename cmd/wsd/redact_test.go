package main

import (
	"strings"
	"testing"
)

// The startup line shows NATS URLs without the secrets in them, with or
// without a scheme (nats.go reads "token@host:4222" as a token).
func TestRedactURLs(t *testing.T) {
	for _, in := range []string{
		"nats://alice:s3cret@nats.internal:4222",
		"s3cret@nats.internal:4222",
		"nats://a:s3cret@h1:4222, tls://s3cret@h2:4222",
	} {
		if got := redactURLs(in); strings.Contains(got, "s3cret") {
			t.Errorf("redactURLs(%q) = %q", in, got)
		}
	}
}
