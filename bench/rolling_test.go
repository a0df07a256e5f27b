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
// miss at this rate).
func TestRollingClusteredHistory(t *testing.T) {
	ro := defaultRollOptions()
	ro.bin, ro.kill = wstest.BuildBinary(t), true
	ro.boxFlags = []string{"-history-jetstream", "-history-size", "1000", "-history-store-max", "67108864"}
	ro.n, ro.rooms, ro.rate, ro.size = 30, 3, 30, 8
	ro.steady, ro.settle, ro.tail, ro.drain = time.Second, 500*time.Millisecond, 500*time.Millisecond, 5*time.Second
	ro.lameDuck, ro.lease, ro.timeout = 200*time.Millisecond, time.Second, 20*time.Second
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
		"members whose order differs", "rejoins recovered:false"} {
		if v, ok := r.get(f); !ok || v != 0 {
			t.Errorf("%s: %v (reported %v)", f, v, ok)
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
