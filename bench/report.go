package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what one scenario measured. Figures that do not apply are zero
// and are left out of the table.
type Result struct {
	Scenario    string `json:"scenario"`
	Connections int    `json:"connections"`

	ConnectSeconds float64 `json:"connect_seconds,omitempty"`
	ConnectRate    float64 `json:"connects_per_second,omitempty"`
	StillOpen      int     `json:"still_open,omitempty"`

	RSSBefore     int64   `json:"server_rss_before,omitempty"`
	RSSAfter      int64   `json:"server_rss_after,omitempty"`
	BytesPerConn  float64 `json:"server_bytes_per_connection,omitempty"`
	ServerCPU     float64 `json:"server_cpu_seconds,omitempty"`
	ClientCPU     float64 `json:"client_cpu_seconds,omitempty"`
	CPUPerMillion float64 `json:"server_cpu_seconds_per_million_deliveries,omitempty"`

	Sent          int64   `json:"messages_sent,omitempty"`
	Expected      int64   `json:"deliveries_expected,omitempty"`
	Received      int64   `json:"deliveries_received,omitempty"`
	Missing       int64   `json:"deliveries_missing"`
	Wrong         int64   `json:"deliveries_wrong"`
	DeliveryRate  float64 `json:"deliveries_per_second,omitempty"`
	Elapsed       float64 `json:"elapsed_seconds,omitempty"`
	LatencyMillis Latency `json:"latency_ms,omitempty"`

	Handshakes    int64          `json:"handshakes,omitempty"`
	HandshakeRate float64        `json:"handshakes_per_second,omitempty"`
	Errors        map[string]int `json:"errors,omitempty"`

	// From wsd's /metrics, when -metrics is given.
	Broadcasts          float64 `json:"server_broadcasts,omitempty"`
	GzipPerBroadcast    float64 `json:"gzip_encodings_per_broadcast,omitempty"`
	WritesPerFrame      float64 `json:"write_syscalls_per_frame,omitempty"`
	ServerFramesOut     float64 `json:"server_frames_out,omitempty"`
	ServerWriteSyscalls float64 `json:"server_write_syscalls,omitempty"`
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	P50, P90, P99, P999, Max float64
	Count                    int64
}

func newHistogram() *hdrhistogram.Histogram {
	// 1 µs to 60 s at 3 significant digits.
	return hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return Latency{P50: ms(50), P90: ms(90), P99: ms(99), P999: ms(99.9),
		Max: float64(h.Max()) / 1000, Count: h.TotalCount()}
}

// rows returns the table rows of the figures that apply.
func (r *Result) rows() [][2]string {
	var out [][2]string
	add := func(k, v string) { out = append(out, [2]string{k, v}) }
	add("connections", fmt.Sprint(r.Connections))
	if r.ConnectRate > 0 {
		add("connect rate (conn/s)", fmt.Sprintf("%.0f", r.ConnectRate))
	}
	if r.Scenario == "idle" {
		add("still open at the end", fmt.Sprint(r.StillOpen))
	}
	if r.BytesPerConn != 0 {
		add("server RSS before/after (MiB)", fmt.Sprintf("%.1f / %.1f", float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20)))
		add("server RSS per connection (B)", fmt.Sprintf("%.0f", r.BytesPerConn))
	}
	if r.Expected > 0 {
		add("messages sent", fmt.Sprint(r.Sent))
		add("deliveries expected/received", fmt.Sprintf("%d / %d", r.Expected, r.Received))
		add("deliveries missing/wrong", fmt.Sprintf("%d / %d", r.Missing, r.Wrong))
		add("deliveries/s", fmt.Sprintf("%.0f", r.DeliveryRate))
		l := r.LatencyMillis
		add("latency p50/p90/p99 (ms)", fmt.Sprintf("%.2f / %.2f / %.2f", l.P50, l.P90, l.P99))
		add("latency p99.9/max (ms)", fmt.Sprintf("%.2f / %.2f", l.P999, l.Max))
	}
	if r.ServerCPU > 0 {
		add("server / client CPU (s)", fmt.Sprintf("%.2f / %.2f", r.ServerCPU, r.ClientCPU))
	}
	if r.CPUPerMillion > 0 {
		add("server CPU s per 1M deliveries", fmt.Sprintf("%.2f", r.CPUPerMillion))
	}
	if r.Handshakes > 0 {
		add("handshakes", fmt.Sprint(r.Handshakes))
		add("handshakes/s", fmt.Sprintf("%.0f", r.HandshakeRate))
	}
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			add("errors: "+k, fmt.Sprint(r.Errors[k]))
		}
	}
	if r.GzipPerBroadcast > 0 {
		add("gzip encodings per broadcast", fmt.Sprintf("%.3f", r.GzipPerBroadcast))
	}
	if r.WritesPerFrame > 0 {
		add("write syscalls per delivered frame", fmt.Sprintf("%.3f", r.WritesPerFrame))
	}
	return out
}

func (r *Result) print(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n", r.Scenario)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range r.rows() {
		fmt.Fprintf(tw, "  %s\t%s\n", row[0], row[1])
	}
	tw.Flush()
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
