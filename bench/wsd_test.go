package main

import (
	"testing"
	"time"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
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

// TestScenariosDeflate: fanout and storm with permessage-deflate (and gzip)
// clients against wsd with the extension on: compressed messages both
// ways, every delivery checked after inflating, and the server counters
// the compare table shows.
func TestScenariosDeflate(t *testing.T) {
	srv := testserver.Start(t, server.Config{Session: session.Config{Deflate: codec.DeflateConfig{Enabled: true}}})
	p := &serverProc{addr: srv.Addr().String()}
	st := srv.Hub().Stats()

	o := tinyOptions(t, p)
	o.n, o.messages, o.deflate, o.size = 40, 5, true, 400
	r, err := runFanout(o)
	if err != nil {
		t.Fatal(err)
	}
	must(t, r, "deliveries received", 200)
	must(t, r, "deliveries wrong", 0)
	must(t, r, "deliveries compressed", 100) // the half without gzip
	noErrors(t, r)
	if st.DeflateEncodings.Load() == 0 || st.DeflateEncodings.Load() > st.Broadcasts.Load() {
		t.Fatalf("%d compressions for %d broadcasts", st.DeflateEncodings.Load(), st.Broadcasts.Load())
	}
	wstest.Eventually(t, 5*time.Second, "deflate connections gone", func() bool { return st.DeflateConns.Load() == 0 })

	o = tinyOptions(t, p)
	o.n, o.senders, o.duration, o.deflate = 20, 3, 300*time.Millisecond, true
	if r, err = runStorm(o); err != nil {
		t.Fatal(err)
	}
	sent, _ := r.get("messages sent")
	must(t, r, "deliveries received", sent*20)
	must(t, r, "deliveries wrong", 0)
	noErrors(t, r)
	if st.InflateErrors.Load() != 0 {
		t.Fatalf("%d inflate errors", st.InflateErrors.Load())
	}

	o = tinyOptions(t, p)
	o.duration, o.deflate = 200*time.Millisecond, true
	if r, err = runConnect(o); err != nil {
		t.Fatal(err)
	}
	must(t, r, "failures", 0)
	noErrors(t, r)
}
