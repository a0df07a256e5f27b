// The hostile scenario's figures: what each attack did to the server,
// to the honest clients and to the attackers, and when that is harm.

package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// attackOutcome is what one attack did to the server and to the honest
// clients.
type attackOutcome struct {
	name               string
	skipped            string // why the attack did not run ("" if it did)
	rssBefore, rssPeak int64  // -1: not known (no -server-pid)
	died, capped       bool
	attackers          int
	frames             int64          // frames the attackers wrote
	got                map[string]int // per attacker: close code, open, eof, reset, …
	honestSent         int64
	honestGot          int64
	honestWant         int64
	honestClosed       []string // how each closed honest client ended
	lat                *hdrhistogram.Histogram
	members            int // bystanders (bomb)
	membersClosed      int
	checks             []honestCheck // what honest clients had to get through (presock, partialip)
}

// harm lists what the attack did to the honest clients; empty: nothing.
func (a *attackOutcome) harm(p99Bound time.Duration) []string {
	var h []string
	if len(a.honestClosed) > 0 {
		h = append(h, "closed "+strings.Join(a.honestClosed, ","))
	}
	for _, c := range a.checks {
		if c.failure != "" {
			h = append(h, c.name+": "+c.failure)
		}
	}
	if miss := a.honestWant - a.honestGot; miss > 0 {
		h = append(h, fmt.Sprintf("%d of %d missing", miss, a.honestWant))
	}
	if a.lat != nil && a.lat.TotalCount() > 0 {
		if p99 := time.Duration(a.lat.ValueAtQuantile(99)) * time.Microsecond; p99 > p99Bound {
			h = append(h, fmt.Sprintf("p99 %v", p99.Round(time.Millisecond)))
		}
	} else if a.honestWant > 0 || a.honestSent == 0 {
		h = append(h, "nothing received")
	}
	return h
}

// figures adds the outcome to r, each figure named "ATTACK: what".
func (a *attackOutcome) figures(r *Result, p99Bound time.Duration) {
	f := func(name, unit, better string, v float64) { r.add(a.name+": "+name, unit, better, v) }
	if a.skipped != "" {
		if a.died {
			f("server died", "", "lower", 1)
		}
		f("not run", "", "lower", 1)
		return
	}
	if a.rssBefore >= 0 {
		f("server rss before", "MiB", "", float64(a.rssBefore)/(1<<20))
	}
	if a.rssPeak >= 0 {
		f("server peak rss", "MiB", "lower", float64(a.rssPeak)/(1<<20))
	}
	f("server died", "", "lower", b2f(a.died))
	if a.capped {
		f("stopped at -max-rss", "", "lower", 1)
	}
	f("attackers", "", "", float64(a.attackers))
	f("attack frames sent", "", "", float64(a.frames))
	for _, k := range sortedKeys(a.got) {
		f("attackers got "+k, "", "", float64(a.got[k]))
	}
	if a.members > 0 {
		f("members", "", "", float64(a.members))
		f("members closed", "", "lower", float64(a.membersClosed))
	}
	for _, c := range a.checks {
		f("honest "+c.name+" passed", "", "higher", b2f(c.failure == ""))
	}
	f("honest sent", "", "", float64(a.honestSent))
	f("honest received", "", "higher", float64(a.honestGot))
	f("honest missing", "", "lower", float64(max(a.honestWant-a.honestGot, 0)))
	f("honest closed", "", "lower", float64(len(a.honestClosed)))
	if a.lat != nil && a.lat.TotalCount() > 0 {
		f("honest p50", "ms", "lower", float64(a.lat.ValueAtQuantile(50))/1000)
		f("honest p99", "ms", "lower", float64(a.lat.ValueAtQuantile(99))/1000)
		f("honest max", "ms", "lower", float64(a.lat.Max())/1000)
	}
	f("honest harmed", "", "lower", b2f(len(a.harm(p99Bound)) > 0))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
