// wsd's /metrics (Prometheus text format): scraping, parsing, and the
// server-side figures computed from two scrapes — gzip encodings per
// broadcast and write syscalls per delivered frame.
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

// parseMetrics sums every sample of a metric over its labels, by name.
// Comments, blank lines and unparsable lines are skipped.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ \t"); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
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
	frames := delta("wsd_frames_out_total")
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
