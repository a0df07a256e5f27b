// wsd's /metrics (Prometheus text format): scraping, parsing, and the
// server-side figures computed from two scrapes — gzip encodings per
// broadcast and write syscalls per delivered frame.

package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics reads the Prometheus text format and sums every sample of
// a metric over its labels, by name; a histogram or a summary gives
// NAME_count and NAME_sum, as its own lines are named.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(fams))
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch {
			case m.Counter != nil:
				out[name] += m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] += m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[name] += m.GetUntyped().GetValue()
			case m.Histogram != nil:
				out[name+"_count"] += float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"] += m.GetHistogram().GetSampleSum()
			case m.Summary != nil:
				out[name+"_count"] += float64(m.GetSummary().GetSampleCount())
				out[name+"_sum"] += m.GetSummary().GetSampleSum()
			}
		}
	}
	return out, nil
}

var metricsClient = &http.Client{Timeout: 5 * time.Second}

// scrape reads http://admin/metrics.
func scrape(admin string) (map[string]float64, error) {
	resp, err := metricsClient.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// addServerCounters adds what wsd counted during a scenario.
func addServerCounters(r *Result, before, after map[string]float64) {
	delta := func(name string) float64 { return after[name] - before[name] }
	b := delta("wsd_broadcasts_total")
	frames := delta("wsd_sent_frames_total")
	if b > 0 {
		r.add("server broadcasts", "", "", b)
		r.add("server gzip encodings per broadcast", "", "lower", ratio(delta("wsd_gzip_encodings_total"), b))
		if _, ok := after["wsd_deflate_encodings_total"]; ok && r.Settings["deflate"] == "true" {
			r.add("server deflate compressions per broadcast", "", "lower", ratio(delta("wsd_deflate_encodings_total"), b))
		}
	}
	if frames > 0 {
		r.add("server frames out", "", "", frames)
		r.add("server write syscalls per frame", "", "lower", ratio(delta("wsd_write_syscalls_total"), frames))
		if r.Settings["deflate"] == "true" {
			r.add("server deflate bytes saved per frame", "B", "higher", ratio(delta("wsd_deflate_bytes_saved_total"), frames))
		}
	}
	if hs := delta("wsd_handshakes_total"); hs > 0 && r.Scenario == "connect" {
		r.add("server handshakes", "", "", hs)
	}
}
