package server_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
)

// TestNewReportsEachPart: server.New (what wsd -t runs) names every part
// it could not build, and builds nothing that binds.
func TestNewReportsEachPart(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.pem")
	for _, tc := range []struct {
		name  string
		cfg   server.Config
		parts []string
	}{
		{"nothing to build", server.Config{Addr: "256.0.0.1:1"}, nil}, // bad address: only Start binds
		{"tls files missing", server.Config{TLSCert: missing, TLSKey: missing}, []string{server.PartTLS}},
		{"cluster and tls", server.Config{TLSCert: missing, TLSKey: missing, Cluster: &cluster.Config{URL: "nats://127.0.0.1:1", Prefix: "bad prefix"}},
			[]string{server.PartTLS, server.PartCluster}},
	} {
		app, err := server.New(tc.cfg)
		var got []string
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				var be *server.BuildError
				if errors.As(e, &be) {
					got = append(got, be.Part)
				}
			}
		}
		if len(got) != len(tc.parts) || (err == nil) != (tc.parts == nil) {
			t.Errorf("%s: New: %v (parts %q), want parts %q", tc.name, err, got, tc.parts)
			continue
		}
		for i := range got {
			if got[i] != tc.parts[i] {
				t.Errorf("%s: parts %q, want %q", tc.name, got, tc.parts)
			}
		}
		if app != nil {
			app.Close()
		}
	}
}

// TestAppServesAdminAndDrains: the admin server App starts answers for the
// client listener it started, and Drain then Close take both down.
func TestAppServesAdminAndDrains(t *testing.T) {
	cert, key := wstest.ValidCertFiles(t, t.TempDir(), "app")
	app := testserver.App(t, server.Config{Workers: 1, TLSCert: cert, TLSKey: key,
		Admin: server.AdminConfig{Addr: "127.0.0.1:0"}})
	if app.Certificate() == nil {
		t.Fatal("no certificate loaded from TLSCert/TLSKey")
	}
	url := "http://" + app.AdminAddr().String()
	get := func(path string) int {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/readyz"); code != 200 {
		t.Fatalf("GET /readyz before the drain: %d", code)
	}
	if err := app.Drain(context.Background(), server.DrainConfig{Timeout: time.Second}); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if code := get("/readyz"); code != 503 {
		t.Errorf("GET /readyz after the drain: %d, want 503", code)
	}
	app.Close()
	if code := get("/healthz"); code != 0 {
		t.Errorf("GET /healthz after Close: %d, want no answer", code)
	}
}
