package main

import (
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// The rolling restart, small: NATS with JetStream, three real boxes, 30
// v1 clients in 3 rooms on the Go client; each box drained (or killed)
// and restarted in turn. Every send is acked (the client retries across
// the restarts), members reconnect, and the figures the scenario reports
// are there; losses and duplicates are reported as measured (per-box seq
// today: recovered:false when a client moves boxes).
func TestRollingScenario(t *testing.T) {
	bin := wstest.BuildBinary(t)
	for _, kill := range []bool{false, true} {
		name := "sigterm"
		if kill {
			name = "sigkill"
		}
		t.Run(name, func(t *testing.T) {
			ro := defaultRollOptions()
			ro.bin, ro.kill = bin, kill
			ro.n, ro.rooms, ro.rate, ro.size = 30, 3, 30, 8
			ro.steady, ro.settle, ro.tail, ro.drain = time.Second, 500*time.Millisecond, 500*time.Millisecond, 5*time.Second
			ro.lameDuck, ro.lease, ro.timeout = 200*time.Millisecond, time.Second, 20*time.Second
			ro.progress = nil
			if testing.Verbose() {
				ro.progress = testWriter{t}
			}
			r, err := runRolling(ro)
			if err != nil {
				t.Fatal(err)
			}
			if testing.Verbose() {
				r.print(testWriter{t})
			}
			sent, _ := r.get("messages sent")
			acked, _ := r.get("messages acked")
			errs, _ := r.get("send errors")
			// A send written as its box closes may be reported failed
			// (the client cannot know whether it was kept) rather than
			// retried; it is never doubled. Each one is accounted for.
			if sent < 50 || acked+errs != sent || errs > sent/50 {
				t.Errorf("sent %v acked %v send errors %v", sent, acked, errs)
			}
			if v, _ := r.get("deliveries"); v < acked {
				t.Errorf("%v deliveries for %v acked messages in rooms of 10", v, acked)
			}
			// Every client on a restarted box came back: at least n
			// reconnects over the roll.
			if v, _ := r.get("reconnects"); v < float64(ro.n) {
				t.Errorf("%v reconnects", v)
			}
			for _, f := range []string{"lost (acked, never delivered to a member)", "duplicated (a member got one message twice)",
				"members whose order differs", "publish→delivery steady p99", "publish→delivery roll p99"} {
				if _, ok := r.get(f); !ok {
					t.Errorf("no figure %q", f)
				}
			}
			if kill {
				if _, ok := r.get("box0 kill: room size"); !ok {
					t.Error("no lease probe")
				}
			} else if v, ok := r.get("presence: left for a key back within the grace"); !ok || v != 0 {
				// Drained clients reconnect within the 5 s grace: no one
				// is announced gone.
				t.Errorf("presence flapped: %v left (reported %v)", v, ok)
			}
			if r.Errors["client-closed"] > 0 {
				t.Errorf("errors %v", r.Errors)
			}
		})
	}
}

// The rolling restart with the cluster's history (-history-jetstream),
// each box SIGKILLed in turn: one order per room, so a member that moves
// boxes recovers exactly. Nothing acked is lost, nothing is doubled, every
// member of a room has its messages in one order and no rejoin is
// answered recovered:false (the rooms keep far more than a reconnect can
// miss at this rate). Presence: the ghost left on each killed box leaves
// the probed room within -presence-lease (2 s here) and two intervals,
// and no member that moved is announced gone.
func TestRollingClusteredHistory(t *testing.T) {
	ro := defaultRollOptions()
	ro.bin, ro.kill = wstest.BuildBinary(t), true
	ro.boxFlags = []string{"-history-jetstream", "-history-size", "1000", "-history-store-max", "67108864",
		"-presence-lease", "2s", "-presence-interval", "200ms"}
	ro.n, ro.rooms, ro.rate, ro.size = 30, 3, 30, 8
	ro.steady, ro.settle, ro.tail, ro.drain = time.Second, 500*time.Millisecond, 500*time.Millisecond, 5*time.Second
	ro.lameDuck, ro.lease, ro.timeout = 200*time.Millisecond, 3500*time.Millisecond, 20*time.Second
	ro.progress = nil
	r, err := runRolling(ro)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		r.print(testWriter{t})
	}
	if v, _ := r.get("messages acked"); v < 50 {
		t.Errorf("%v acked", v)
	}
	for _, f := range []string{"lost (acked, never delivered to a member)", "duplicated (a member got one message twice)",
		"members whose order differs", "rejoins recovered:false", "presence: left for a key back within the grace"} {
		if v, ok := r.get(f); !ok || v != 0 {
			t.Errorf("%s: %v (reported %v)", f, v, ok)
		}
	}
	// The ghost is counted after the kill where the probe's box had
	// members of the room all along (box0's kill, probed on box1); a box
	// that starts following the room after a kill never hears of it.
	for _, box := range []string{"box0", "box1", "box2"} {
		size, _ := r.get(box + " kill: room size")
		most, _ := r.get(box + " kill: room count max")
		v, ok := r.get(box + " kill: room at size within lease + 2 intervals")
		if !ok || v != 1 || most > size+1 || (box == "box0" && most != size+1) {
			t.Errorf("%s: room of %v, count up to %v, back to size in time: %v (reported %v)", box, size, most, v, ok)
		}
	}
}

func TestParseRolling(t *testing.T) {
	ro, err := parseRolling([]string{"-boxes", "2", "-n", "100", "-rooms", "10", "-kill", "-box-flags", "-history-jetstream -foo 1"})
	if err != nil {
		t.Fatal(err)
	}
	if ro.boxes != 2 || ro.n != 100 || ro.rooms != 10 || !ro.kill || len(ro.boxFlags) != 3 {
		t.Fatalf("%+v", ro)
	}
	for _, bad := range [][]string{{"-boxes", "9"}, {"-n", "0"}, {"-rooms", "0"}, {"-n", "5", "-rooms", "6"}, {"-rate", "0"},
		{"-steady", "0s"}, {"-n", "20000"}, {"-steady", "20m"}} {
		if _, err := parseRolling(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestRollText(t *testing.T) {
	now := time.Unix(0, 1764650000123456789)
	s := formatRollText(rollMsg{7, 42}, phaseRoll, now, "pad pad")
	m, ph, ts, ok := parseRollText(s)
	if !ok || m != (rollMsg{7, 42}) || ph != phaseRoll || ts != now.UnixNano() {
		t.Fatalf("%q: %v %v %v %v", s, m, ph, ts, ok)
	}
	for _, bad := range []string{"", "1 2 3", "a 2 0 1", "1 2 9 1", "1 2 0 x"} {
		if _, _, _, ok := parseRollText(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A left entry is expected only inside an absence longer than the grace
// (up to slack after it ends); one for a key that was back within the
// grace, or never away, is a flap, counted in the roll it arrived in.
func TestLeftFlaps(t *testing.T) {
	t0 := time.Unix(1764650000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	grace, slack := 5*time.Second, 3*time.Second
	away := [][]rollAway{
		{{from: at(10), to: at(11)}},      // 0: back within the grace
		{{from: at(10), to: at(20)}},      // 1: away past the grace
		nil,                               // 2: never away
		{{from: at(30), to: time.Time{}}}, // 3: never back
	}
	for _, tc := range []struct {
		name string
		left rollLeft
		flap bool
	}{
		{"back within the grace", rollLeft{key: 0, roll: 0, at: at(15)}, true},
		{"away past the grace", rollLeft{key: 1, roll: 1, at: at(15.5)}, false},
		{"away past the grace, frame late within slack", rollLeft{key: 1, roll: 1, at: at(22)}, false},
		{"away past the grace, long after", rollLeft{key: 1, roll: 2, at: at(40)}, true},
		{"before the absence", rollLeft{key: 1, roll: 0, at: at(9)}, true},
		{"never away", rollLeft{key: 2, roll: -1, at: at(5)}, true},
		{"never back", rollLeft{key: 3, roll: 3, at: at(36)}, false},
	} {
		total, per := leftFlaps([]rollLeft{tc.left}, away, grace, slack, at(50), 3)
		want := int64(0)
		if tc.flap {
			want = 1
		}
		if total != want || per[tc.left.roll+1] != want {
			t.Errorf("%s: total %d per roll %v", tc.name, total, per)
		}
	}
}

func TestRollPresenceTimes(t *testing.T) {
	g, i, l := rollPresenceTimes([]string{"-history-jetstream", "-presence-grace", "300ms", "--presence-lease=2s"})
	if g != 300*time.Millisecond || i != time.Second || l != 2*time.Second {
		t.Fatalf("%v %v %v", g, i, l)
	}
}
