// Presence during the rolling scenario: the "left" entries members
// receive, against each key's own time away, so that a drain shows
// whether presence flapped for clients that came back within the grace.

package main

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/cluster"
)

// rollLeftMax bounds the left entries the bench keeps, so that a server
// that floods them cannot grow the bench without end; past it they are
// counted, not classified.
const rollLeftMax = 1 << 20

// rollLeft is one key named in a presence frame's left list.
type rollLeft struct {
	key  int // the member's index
	roll int // the roll in progress when it arrived (-1: before, boxes: after)
	at   time.Time
}

// rollAway is one time a member was not connected: from its first state
// other than Connected to its next Connected (zero: never back).
type rollAway struct{ from, to time.Time }

// rollPresence gathers what the members see of presence.
type rollPresence struct {
	prefix   string // member keys are prefix + index
	n        int
	roll     atomic.Int32
	counting atomic.Bool
	mu       sync.Mutex
	lefts    []rollLeft
	frames   atomic.Int64 // presence frames over the roll, all members
	anyLeft  atomic.Int64 // left entries over the roll, any key (the ghosts too)
	received int64        // left entries naming a member, all of them
	overflow int64        // past rollLeftMax
}

// note records a presence frame's left list, received at t.
func (rp *rollPresence) note(left []string, t time.Time) {
	if !rp.counting.Load() {
		return
	}
	rp.frames.Add(1)
	if len(left) == 0 {
		return
	}
	rp.anyLeft.Add(int64(len(left)))
	roll := int(rp.roll.Load())
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for _, k := range left {
		rest, ok := strings.CutPrefix(k, rp.prefix)
		if !ok {
			continue // the probe, or someone else's key
		}
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || i >= rp.n {
			continue
		}
		rp.received++
		if len(rp.lefts) >= rollLeftMax {
			rp.overflow++
			continue
		}
		rp.lefts = append(rp.lefts, rollLeft{key: i, roll: roll, at: t})
	}
}

// leftFlaps counts, per roll, the left entries for a key that was not
// away longer than grace at that time: a key counted gone although it
// came back within the grace (or never went). A left is expected only
// inside an absence longer than grace, up to slack after its end (the
// frame that says so may follow by a presence interval or two).
// perRoll has boxes+2 slots: before the roll, each box's roll, after.
func leftFlaps(lefts []rollLeft, away [][]rollAway, grace, slack time.Duration, end time.Time, boxes int) (total int64, perRoll []int64) {
	perRoll = make([]int64, boxes+2)
	for _, l := range lefts {
		expected := false
		for _, a := range away[l.key] {
			to := a.to
			if to.IsZero() {
				to = end
			}
			if to.Sub(a.from) > grace && !l.at.Before(a.from) && !l.at.After(to.Add(slack)) {
				expected = true
				break
			}
		}
		if !expected {
			total++
			perRoll[min(max(l.roll+1, 0), boxes+1)]++
		}
	}
	return total, perRoll
}

// boxFlagDuration is the value of the wsd flag name in flags (either
// "-name v" or "-name=v", one or two dashes), or def.
func boxFlagDuration(flags []string, name string, def time.Duration) time.Duration {
	v := def
	for i, f := range flags {
		f = strings.TrimPrefix(strings.TrimPrefix(f, "-"), "-")
		var s string
		switch {
		case f == name && i+1 < len(flags):
			s = flags[i+1]
		case strings.HasPrefix(f, name+"="):
			s = f[len(name)+1:]
		default:
			continue
		}
		if d, err := time.ParseDuration(s); err == nil {
			v = d
		}
	}
	return v
}

// rollPresenceTimes are the boxes' presence settings, as -box-flags
// sets them or wsd's defaults.
func rollPresenceTimes(flags []string) (grace, interval, lease time.Duration) {
	return boxFlagDuration(flags, "presence-grace", chat.DefaultPresenceGrace),
		boxFlagDuration(flags, "presence-interval", chat.DefaultPresenceInterval),
		boxFlagDuration(flags, "presence-lease", cluster.DefaultPresenceLease)
}
