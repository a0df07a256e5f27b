package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// counters reads wsd's unlabelled metrics from its admin endpoint.
func counters(admin string) (map[string]float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads "name value" lines of the Prometheus text format,
// skipping comments and labelled series.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[f[0]] = v
	}
	return out, sc.Err()
}

// addServerCounters fills the wsd-only figures from two scrapes.
func addServerCounters(r *Result, before, after map[string]float64) {
	if before == nil || after == nil {
		return
	}
	d := func(k string) float64 { return after[k] - before[k] }
	r.Broadcasts = d("wsd_broadcasts_total")
	r.ServerFramesOut = d("wsd_frames_out_total")
	r.ServerWriteSyscalls = d("wsd_write_syscalls_total")
	if r.Broadcasts > 0 {
		r.GzipPerBroadcast = d("wsd_gzip_encodings_total") / r.Broadcasts
	}
	if r.ServerFramesOut > 0 {
		r.WritesPerFrame = r.ServerWriteSyscalls / r.ServerFramesOut
	}
}
