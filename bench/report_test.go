package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func TestFormatNum(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {7, "7"}, {-7, "-7"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-1234567, "-1,234,567"},
		{1234.6, "1,235"}, {123.45, "123.5"}, {12.345, "12.35"}, {0.5, "0.50"}, {0.012, "0.01"}, {0.001234, "0.00123"},
	} {
		if got := formatNum(tc.v); got != tc.want {
			t.Errorf("formatNum(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestLatencyFigures(t *testing.T) {
	h := hdrhistogram.New(1, histMaxUs, 3)
	for v := int64(1); v <= 1000; v++ {
		h.RecordValue(v * 1000) // 1 ms … 1000 ms
	}
	r := &Result{}
	r.addLatency("latency", h)
	want := map[string]float64{"latency p50": 500, "latency p90": 900, "latency p99": 990, "latency p99.9": 999, "latency max": 1000}
	for name, w := range want {
		got, ok := r.get(name)
		if !ok || got < w*0.99 || got > w*1.01 {
			t.Errorf("%s = %v (present %v), want ≈%v", name, got, ok, w)
		}
	}
	empty := &Result{}
	empty.addLatency("latency", hdrhistogram.New(1, histMaxUs, 3))
	if len(empty.Figures) != 0 {
		t.Errorf("an empty histogram gave figures %v", empty.Figures)
	}
}

func TestResultPrintAndJSON(t *testing.T) {
	r := &Result{Scenario: "fanout", Addr: "127.0.0.1:1", Settings: map[string]string{"n": "5", "m": "2"}}
	r.add("deliveries/s", "/s", "higher", 12345.6)
	r.add("ratio", "", "", math.Inf(1)) // stored as 0: JSON cannot hold Inf
	r.Errors = map[string]int64{"timeout": 2, "eof": 1}
	var b strings.Builder
	r.print(&b)
	out := b.String()
	for _, want := range []string{"fanout against 127.0.0.1:1", "m=2 n=5", "deliveries/s", "12,346 /s", "errors: eof=1 timeout=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := writeJSON(path, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if v, _ := back.get("deliveries/s"); v != 12345.6 || back.Errors["timeout"] != 2 || back.Settings["n"] != "5" {
		t.Fatalf("round trip lost data: %s", data)
	}
	if writeJSON("", r) != nil {
		t.Fatal("no path must write nothing")
	}
}

func TestPrintCompare(t *testing.T) {
	w := &Result{Scenario: "storm", Errors: map[string]int64{}}
	w.add("deliveries/s", "/s", "higher", 2000)
	w.add("server gzip encodings per broadcast", "", "lower", 1)
	b := &Result{Scenario: "storm", Errors: map[string]int64{"read-timeout": 3}}
	b.add("deliveries/s", "/s", "higher", 1000)
	failed := &Result{Scenario: "idle", Error: "boom"}
	var sb strings.Builder
	printCompare(&sb, []*Result{w}, []*Result{b, failed})
	out := sb.String()
	for _, re := range []string{"deliveries/s", "2,000", "1,000", "2.00", "server gzip encodings per broadcast", "FAILED", "not run"} {
		if !strings.Contains(out, re) {
			t.Errorf("compare table lacks %q:\n%s", re, out)
		}
	}
	sb.Reset()
	printErrors(&sb, map[string][]*Result{"wsd": {w}, "baseline": {b, failed}})
	if got := sb.String(); got != "baseline storm errors: read-timeout=3\nbaseline idle did not complete: boom\n" {
		t.Errorf("error lines: %q", got)
	}
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if strings.Contains(l, "storm") && strings.Contains(l, "errors") && !strings.HasSuffix(strings.TrimRight(l, " "), "3") {
			t.Errorf("storm errors row should end with the baseline's 3: %q", l)
		}
	}
}

func TestPrintNotes(t *testing.T) {
	short := &Result{Scenario: "connect"}
	short.add("cpu window", "s", "", 0.2)
	short.add("other cpu share", "cores", "", 1.5)
	quiet := &Result{Scenario: "fanout"}
	quiet.add("cpu window", "s", "", 10)
	quiet.add("server cpu share", "cores", "", 0.5)
	quiet.add("client cpu share", "cores", "", 0.4)
	quiet.add("other cpu share", "cores", "", 0.01)
	busy := &Result{Scenario: "storm"}
	busy.add("cpu window", "s", "", 10)
	busy.add("server cpu share", "cores", "", 0.9)
	busy.add("client cpu share", "cores", "", 0.8)
	busy.add("other cpu share", "cores", "", 0.3)
	var b strings.Builder
	printNotes(&b, map[string][]*Result{"wsd": {short, quiet, busy}}, 2)
	out := b.String()
	if strings.Contains(out, "fanout") || strings.Contains(out, "connect") || !strings.Contains(out, "wsd storm: other processes used 0.30 cores") ||
		!strings.Contains(out, "wsd storm: all 2 cores busy") {
		t.Errorf("notes:\n%s", out)
	}
}
