package main

import (
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/server"
)

// TestScenariosAgainstWSDInProcess runs tiny versions of every scenario
// against wsd started in this process (no binary needed): the bench's own
// checks — every delivery intact, in order, none missing — then hold for
// wsd too.
func TestScenariosAgainstWSDInProcess(t *testing.T) {
	srv := testserver.Start(t, server.Config{})
	p := &serverProc{addr: srv.Addr().String()}

	o := tinyOptions(t, p)
	o.n, o.hold = 60, 100*time.Millisecond
	r, err := runIdle(o)
	if err != nil {
		t.Fatal(err)
	}
	must(t, r, "open after hold", 60)
	noErrors(t, r)

	o = tinyOptions(t, p)
	o.n, o.messages = 40, 5
	if r, err = runFanout(o); err != nil {
		t.Fatal(err)
	}
	must(t, r, "deliveries received", 200)
	must(t, r, "deliveries wrong", 0)
	noErrors(t, r)

	o = tinyOptions(t, p)
	o.n, o.senders, o.duration = 20, 3, 300*time.Millisecond
	if r, err = runStorm(o); err != nil {
		t.Fatal(err)
	}
	sent, _ := r.get("messages sent")
	must(t, r, "deliveries received", sent*20)
	must(t, r, "deliveries wrong", 0)
	noErrors(t, r)

	o = tinyOptions(t, p)
	o.duration = 200 * time.Millisecond
	if r, err = runConnect(o); err != nil {
		t.Fatal(err)
	}
	must(t, r, "failures", 0)
	noErrors(t, r)
}
