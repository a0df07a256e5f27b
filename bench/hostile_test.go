package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latencies is a histogram of the given milliseconds.
func latencies(ms ...int64) *hdrhistogram.Histogram {
	h := hdrhistogram.New(1, maxHonestLat, 3)
	for _, v := range ms {
		h.RecordValue(v * 1000)
	}
	return h
}

func TestAttackHarm(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    attackOutcome
		want []string
	}{
		{"unharmed", attackOutcome{honestSent: 10, honestWant: 20, honestGot: 20, lat: latencies(1, 2, 3)}, nil},
		{"closed", attackOutcome{honestSent: 10, honestWant: 20, honestGot: 20, honestClosed: []string{"close-1008"}, lat: latencies(1)},
			[]string{"closed close-1008"}},
		{"missing", attackOutcome{honestSent: 10, honestWant: 20, honestGot: 17, lat: latencies(1)}, []string{"3 of 20 missing"}},
		{"slow", attackOutcome{honestSent: 10, honestWant: 20, honestGot: 20, lat: latencies(5, 1500, 1500)}, []string{"p99 1.5s"}},
		{"nothing", attackOutcome{honestSent: 10, honestWant: 20, lat: latencies()}, []string{"20 of 20 missing", "nothing received"}},
		{"check passed", attackOutcome{honestSent: 10, honestWant: 20, honestGot: 20, lat: latencies(1),
			checks: []honestCheck{{name: "newcomer"}}}, nil},
		{"check failed", attackOutcome{honestSent: 10, honestWant: 20, honestGot: 20, lat: latencies(1),
			checks: []honestCheck{{name: "newcomer", failure: "http-503"}}}, []string{"newcomer: http-503"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.harm(time.Second); !slices.Equal(got, tc.want) {
				t.Errorf("harm = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAttackFigures(t *testing.T) {
	a := &attackOutcome{name: "bomb", rssBefore: 10 << 20, rssPeak: 30 << 20, attackers: 1, frames: 100,
		got: map[string]int{"1009": 1}, members: 20, membersClosed: 3, honestSent: 50, honestWant: 100, honestGot: 100,
		lat: latencies(1, 2, 3)}
	r := &Result{}
	a.figures(r, time.Second)
	for name, want := range map[string]float64{
		"bomb: server rss before": 10, "bomb: server peak rss": 30, "bomb: server died": 0, "bomb: attackers got 1009": 1,
		"bomb: members closed": 3, "bomb: honest received": 100, "bomb: honest missing": 0, "bomb: honest harmed": 0,
	} {
		if got, ok := r.get(name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if _, ok := r.get("bomb: stopped at -max-rss"); ok {
		t.Error("not capped, yet reported as stopped at -max-rss")
	}

	unknown := &attackOutcome{name: "ping", rssBefore: -1, rssPeak: -1, got: map[string]int{}, capped: true, honestSent: 1, honestWant: 2}
	r = &Result{}
	unknown.figures(r, time.Second)
	if _, ok := r.get("ping: server peak rss"); ok {
		t.Error("an unknown RSS must not be reported")
	}
	if v, _ := r.get("ping: stopped at -max-rss"); v != 1 {
		t.Error("capped attack not reported")
	}
	if v, _ := r.get("ping: honest harmed"); v != 1 {
		t.Error("honest clients that received nothing must count as harmed")
	}

	skipped := &attackOutcome{name: "flood", skipped: "the server died", died: true}
	r = &Result{}
	skipped.figures(r, time.Second)
	if v, _ := r.get("flood: server died"); v != 1 || len(r.Figures) != 2 {
		t.Errorf("skipped attack figures %+v", r.Figures)
	}
}

func TestHostileTable(t *testing.T) {
	wsd := &Result{Scenario: "hostile"}
	(&attackOutcome{name: "partial", rssBefore: 1 << 20, rssPeak: 140 << 20, got: map[string]int{"1013": 128, "open": 128},
		honestSent: 10, honestWant: 20, honestGot: 20, lat: latencies(1, 2)}).figures(wsd, time.Second)
	(&attackOutcome{name: "bomb", rssBefore: 1 << 20, rssPeak: 20 << 20, got: map[string]int{"1009": 1}, members: 20,
		honestSent: 10, honestWant: 20, honestGot: 20, lat: latencies(1, 2)}).figures(wsd, time.Second)
	base := &Result{Scenario: "hostile"}
	(&attackOutcome{name: "partial", rssBefore: 1 << 20, rssPeak: 1600 << 20, died: true, capped: true, got: map[string]int{"closed by bench": 256},
		honestSent: 10, honestWant: 20, honestGot: 12, honestClosed: []string{"reset", "reset"}, lat: latencies(1)}).figures(base, time.Second)
	(&attackOutcome{name: "inflate", skipped: "the server died", died: true}).figures(base, time.Second)
	(&attackOutcome{name: "bomb", rssBefore: 1 << 20, rssPeak: 90 << 20, got: map[string]int{"open": 1}, members: 20, membersClosed: 20,
		honestSent: 10, honestWant: 20, honestGot: 20, lat: latencies(1, 2)}).figures(base, time.Second)

	if c := hostileCells(base, "partial"); !slices.Equal(c, []string{"DIED (peak 1600) (hit -max-rss)", "1", "YES (2 closed, 8 missing)", "closed by bench×256"}) {
		t.Errorf("baseline partial cells %q", c)
	}
	if c := hostileCells(wsd, "partial"); !slices.Equal(c, []string{"140", "2", "no", "1013×128 open×128"}) {
		t.Errorf("wsd partial cells %q", c)
	}
	(&attackOutcome{name: "presock", rssBefore: 1 << 20, rssPeak: 20 << 20, got: map[string]int{"open": 100},
		checks:     []honestCheck{{name: "newcomer", failure: "http-503"}},
		honestSent: 10, honestWant: 20, honestGot: 20, lat: latencies(1, 2)}).figures(base, time.Second)
	if c := hostileCells(base, "presock"); !slices.Equal(c, []string{"20", "2", "YES (newcomer failed)", "open×100"}) {
		t.Errorf("baseline presock cells %q", c)
	}
	if c := hostileCells(base, "inflate"); c[0] != "died before" {
		t.Errorf("baseline inflate cells %q", c)
	}
	if c := hostileCells(base, "bomb"); c[2] != "no; 20 of 20 members closed" {
		t.Errorf("baseline bomb cells %q", c)
	}
	if hostileCells(wsd, "flood") != nil || hostileCells(nil, "bomb") != nil {
		t.Error("an attack that was not asked for has cells")
	}
	if c := hostileCells(&Result{Scenario: "hostile", Error: "boom"}, "bomb"); c[0] != "FAILED" {
		t.Errorf("failed result cells %q", c)
	}

	var b strings.Builder
	printHostile(&b, []*Result{wsd}, []*Result{base})
	out := b.String()
	for _, want := range []string{"hostile attack", "partial", "DIED (peak 1600)", "inflate", "not run", "died before", "bomb", "1009×1"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "flood") {
		t.Errorf("flood ran on neither server yet has a row:\n%s", out)
	}
	b.Reset()
	printHostile(&b, nil, nil)
	if b.Len() != 0 {
		t.Errorf("no hostile results, yet a table: %q", b.String())
	}
	// The generic table leaves hostile to its own.
	b.Reset()
	printCompare(&b, []*Result{wsd}, []*Result{base})
	if strings.Contains(b.String(), "hostile") {
		t.Errorf("generic table shows hostile:\n%s", b.String())
	}
}

func TestSplitSources(t *testing.T) {
	for _, tc := range []struct {
		src, attack, honest []string
	}{
		{[]string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, []string{"127.0.0.1"}, []string{"127.0.0.2", "127.0.0.3"}},
		{[]string{"127.0.0.1"}, []string{"127.0.0.1"}, []string{"127.0.0.2"}},
		{[]string{"127.0.0.254"}, []string{"127.0.0.254"}, []string{"127.0.0.1"}},
	} {
		a, h := splitSources(tc.src)
		if !slices.Equal(a, tc.attack) || !slices.Equal(h, tc.honest) {
			t.Errorf("splitSources(%q) = %q, %q; want %q, %q", tc.src, a, h, tc.attack, tc.honest)
		}
	}
}
