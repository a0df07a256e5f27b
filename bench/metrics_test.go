package main

import (
	"strings"
	"testing"
)

const sampleMetrics = `# HELP wsd_connections Open WebSocket connections (in the session table).
# TYPE wsd_connections gauge
wsd_connections 5000
# TYPE wsd_broadcasts_total counter
wsd_broadcasts_total 51
wsd_gzip_encodings_total 51
wsd_sent_frames_total 2.55e+06
wsd_write_syscalls_total 255000
# TYPE wsd_close_frames_sent_total counter
wsd_close_frames_sent_total{code="1000"} 3
wsd_close_frames_sent_total{code="4001",reason="a b}c"} 4
# TYPE wsd_fanout_seconds histogram
wsd_fanout_seconds_bucket{le="0.001"} 2
wsd_fanout_seconds_bucket{le="+Inf"} 3
wsd_fanout_seconds_sum 0.5
wsd_fanout_seconds_count 3

# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 1.5e-05
go_gc_duration_seconds_sum 0.25
go_gc_duration_seconds_count 7
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(sampleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"wsd_connections": 5000, "wsd_broadcasts_total": 51, "wsd_sent_frames_total": 2.55e6,
		"wsd_close_frames_sent_total": 7, "wsd_fanout_seconds_count": 3, "wsd_fanout_seconds_sum": 0.5,
		"go_gc_duration_seconds_count": 7, "go_gc_duration_seconds_sum": 0.25,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	for _, bad := range []string{"garbage line\n", "wsd_bad_value abc\n"} {
		if _, err := parseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestServerCounters(t *testing.T) {
	before := map[string]float64{"wsd_broadcasts_total": 1, "wsd_gzip_encodings_total": 1, "wsd_sent_frames_total": 100, "wsd_write_syscalls_total": 100}
	after := map[string]float64{"wsd_broadcasts_total": 11, "wsd_gzip_encodings_total": 11, "wsd_sent_frames_total": 1100, "wsd_write_syscalls_total": 350}
	r := &Result{Scenario: "fanout"}
	addServerCounters(r, before, after)
	for name, want := range map[string]float64{
		"server broadcasts": 10, "server gzip encodings per broadcast": 1, "server frames out": 1000, "server write syscalls per frame": 0.25,
	} {
		if got, ok := r.get(name); !ok || got != want {
			t.Errorf("%s = %v (%v), want %v", name, got, ok, want)
		}
	}
	idle := &Result{Scenario: "idle"}
	addServerCounters(idle, before, before)
	if len(idle.Figures) != 0 {
		t.Errorf("no traffic should add no figures: %v", idle.Figures)
	}
}

func TestLogField(t *testing.T) {
	line := `time=2026-11-25T06:00:00Z level=INFO msg="admin listening" admin_addr=127.0.0.1:9090`
	if got := logField(line, "admin_addr"); got != "127.0.0.1:9090" {
		t.Errorf("admin_addr = %q", got)
	}
	if got := logField(line, "addr"); got != "" {
		t.Errorf("addr must not match admin_addr: %q", got)
	}
	if got := logField("level=INFO msg=listening addr=127.0.0.1:8888 workers=2", "addr"); got != "127.0.0.1:8888" {
		t.Errorf("addr = %q", got)
	}
}
