// Results: an ordered list of named figures per scenario, printed as a
// table and written as JSON; latency percentiles from an HDR histogram.

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Figure is one measured number.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
	// Better is "higher" or "lower" when one direction is an improvement.
	Better string `json:"better,omitempty"`
}

// Result is what one scenario measured.
type Result struct {
	Scenario string            `json:"scenario"`
	Server   string            `json:"server,omitempty"`
	Addr     string            `json:"addr"`
	Settings map[string]string `json:"settings"`
	Figures  []Figure          `json:"figures"`
	Errors   map[string]int64  `json:"errors,omitempty"`
	Error    string            `json:"error,omitempty"` // the scenario did not complete
	Started  time.Time         `json:"started"`
	Elapsed  float64           `json:"elapsed_s"`
}

// newResult opens a scenario's Result with the settings it reports, by
// name (printed with fmt.Sprint).
func newResult(scenario string, o *options, settings map[string]any) *Result {
	r := &Result{Scenario: scenario, Addr: o.addr, Settings: make(map[string]string, len(settings)), Started: time.Now()}
	if o.deflate {
		r.Settings["deflate"] = "true"
	}
	if o.tls {
		r.Settings["tls"] = "true"
	}
	for k, v := range settings {
		r.Settings[k] = fmt.Sprint(v)
	}
	return r
}

// add appends a figure; better is "higher", "lower" or "".
func (r *Result) add(name, unit, better string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	r.Figures = append(r.Figures, Figure{name, v, unit, better})
}

// get returns a figure's value.
func (r *Result) get(name string) (float64, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

func (r *Result) finish(errs *errCount) {
	r.Errors = errs.snapshot()
	r.Elapsed = time.Since(r.Started).Seconds()
}

// addLatency adds the percentiles of a histogram of microseconds, in ms.
func (r *Result) addLatency(prefix string, h *hdrhistogram.Histogram) {
	if h.TotalCount() == 0 {
		return
	}
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}} {
		r.add(prefix+" "+q.name, "ms", "lower", float64(h.ValueAtQuantile(q.q))/1000)
	}
	r.add(prefix+" max", "ms", "lower", float64(h.Max())/1000)
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// formatNum prints a figure readably: whole numbers in full with thousands
// separators, others with three significant digits or at least two
// decimals.
func formatNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return thousands(int64(v))
	case math.Abs(v) >= 1000:
		return thousands(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 0.01:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// settingsLine is "k=v k=v" in key order.
func settingsLine(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

// print writes the result as a table.
func (r *Result) print(w io.Writer) {
	fmt.Fprintf(w, "%s against %s", r.Scenario, r.Addr)
	if r.Server != "" {
		fmt.Fprintf(w, " (%s)", r.Server)
	}
	fmt.Fprintf(w, " in %.1fs\n  %s\n", r.Elapsed, settingsLine(r.Settings))
	width := 0
	for _, f := range r.Figures {
		width = max(width, len(f.Name))
	}
	for _, f := range r.Figures {
		fmt.Fprintf(w, "  %-*s %16s %s\n", width, f.Name, formatNum(f.Value), f.Unit)
	}
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprint(w, "  errors:")
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%d", k, r.Errors[k])
		}
		fmt.Fprintln(w)
	}
}

// writeJSON writes v as indented JSON to path ("-" for stdout, "" for
// nowhere).
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
