package main

import (
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/server"
)

// TestChatScenariosAgainstWSDInProcess runs the chat scenarios small
// against wsd started in this process, with its default presence interval.
func TestChatScenariosAgainstWSDInProcess(t *testing.T) {
	srv := testserver.Start(t, server.Config{})
	chatScenarios(t, &serverProc{addr: srv.Addr().String()}, chat.DefaultPresenceInterval)
}

// TestChatScenariosAgainstFake runs tiny chat protocol v1 scenarios against
// fakeChat: the scenarios' own counting (missing, duplicated, gaps, frames
// per member) is right apart from wsd.
func TestChatScenariosAgainstFake(t *testing.T) {
	f := startFakeChat(t)
	chatScenarios(t, &serverProc{addr: f.addr()}, f.interval)
}

// chatScenarios runs every chat scenario small against p, whose presence
// interval is interval, and checks what each of them measures holds.
func chatScenarios(t *testing.T, p *serverProc, interval time.Duration) {
	logResult := func(t *testing.T, r *Result) {
		if testing.Verbose() {
			var b strings.Builder
			r.print(&b)
			t.Log("\n" + b.String())
		}
	}
	t.Run("fanout-v1", func(t *testing.T) {
		o := tinyOptions(t, p)
		o.n, o.messages, o.proto = 30, 5, "v1"
		r, err := runFanout(o)
		if err != nil {
			t.Fatal(err)
		}
		logResult(t, r)
		for _, pass := range []string{"seed ", "v1 "} {
			must(t, r, pass+"deliveries received", float64(o.n*o.messages))
			must(t, r, pass+"deliveries wrong", 0)
		}
		noErrors(t, r)
	})
	t.Run("recover", func(t *testing.T) {
		o := tinyOptions(t, p)
		o.n, o.messages = 25, 10
		r, err := runRecover(o)
		if err != nil {
			t.Fatal(err)
		}
		logResult(t, r)
		must(t, r, "connections", 25)
		must(t, r, "live deliveries", 25*10)
		must(t, r, "messages while away", 10)
		must(t, r, "recovered messages", 25*10)
		for _, zero := range []string{"missing", "duplicated", "gaps", "not recovered"} {
			must(t, r, zero, 0)
		}
		if _, ok := r.get("time to caught up p99"); !ok {
			t.Error("no time to caught up")
		}
		noErrors(t, r)
	})
	t.Run("presence", func(t *testing.T) {
		o := tinyOptions(t, p)
		// Three intervals at least, so that the window's edges (a frame
		// just inside each end) weigh little.
		dur := max(time.Second, 3*interval)
		o.n, o.joins, o.churnHold, o.duration, o.interval, o.messages = 20, 40, 100*time.Millisecond, dur, interval, 5
		r, err := runPresence(o)
		if err != nil {
			t.Fatal(err)
		}
		logResult(t, r)
		must(t, r, "members", 20)
		must(t, r, "deliveries missing", 0)
		must(t, r, "deliveries wrong", 0)
		joins, _ := r.get("joins")
		frames, _ := r.get("presence frames")
		perInterval, _ := r.get("presence frames per member per interval")
		// 40 joins a second to 20 members would be 800 frames a second one
		// per join; coalesced it is at most one per member per interval,
		// and one more in a window that starts just before a tick.
		limit := 1 + interval.Seconds()/dur.Seconds() + 0.05
		if joins < 0.75*40*dur.Seconds() || frames == 0 || perInterval > limit {
			var b strings.Builder
			r.print(&b)
			t.Fatalf("joins %v, frames %v, per member per interval %v (limit %.2f)\n%s", joins, frames, perInterval, limit, b.String())
		}
		noErrors(t, r)
	})
	t.Run("rooms", func(t *testing.T) {
		o := tinyOptions(t, p)
		o.n, o.levels, o.roomPool, o.messages = 20, []int{1, 3, 5}, 10, 10
		r, err := runRooms(o)
		if err != nil {
			t.Fatal(err)
		}
		logResult(t, r)
		must(t, r, "connections", 20)
		for _, lv := range []string{"1", "3", "5"} {
			must(t, r, lv+" rooms: deliveries missing", 0)
			if got, _ := r.get(lv + " rooms: deliveries/s"); got <= 0 {
				t.Errorf("%s rooms: no deliveries", lv)
			}
		}
		must(t, r, "deliveries wrong", 0)
		noErrors(t, r)
	})
}
