package main

import (
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/certfile"
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
	for _, useTLS := range []bool{false, true} {
		name := "ws"
		if useTLS {
			name = "wss"
		}
		t.Run(name, func(t *testing.T) { scenariosAgainstWSD(t, useTLS) })
	}
}

func scenariosAgainstWSD(t *testing.T, useTLS bool) {
	cfg := server.Config{}
	if useTLS {
		cert, key := wstest.ValidCertFiles(t, t.TempDir(), "bench")
		c, err := certfile.Load(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Session.TLS = certfile.ServerConfig(c)
	}
	srv := testserver.Start(t, cfg)
	p := &serverProc{addr: srv.Addr().String()}
	tinyOptions := func(t *testing.T, p *serverProc) *options {
		o := tinyOptions(t, p)
		o.tls = useTLS
		return o
	}

	o := tinyOptions(t, p)
	o.n, o.hold = 60, 100*time.Millisecond
	r, err := runIdle(o)
	if err != nil {
		t.Fatal(err)
	}
	must(t, r, "open after hold", 60)
	noErrors(t, r)

	// v1 in three shared rooms: every join answered, the presence frames
	// they cause dropped by the final check, the warm-up's not counted.
	o = tinyOptions(t, p)
	o.n, o.hold, o.proto, o.idleRooms, o.warmup = 30, 100*time.Millisecond, "v1", 3, 5
	r, err = runIdle(o)
	if err != nil {
		t.Fatal(err)
	}
	must(t, r, "joined", 90)
	must(t, r, "open after hold", 30)
	noErrors(t, r)

	o = tinyOptions(t, p)
	o.n, o.messages = 40, 5
	fanoutIntact(t, o)

	o = tinyOptions(t, p)
	o.n, o.senders, o.duration = 20, 3, 300*time.Millisecond
	stormIntact(t, o)

	o = tinyOptions(t, p)
	o.duration = 200 * time.Millisecond
	connectClean(t, o)
}

// tinyHostile are hostile settings that run in seconds.
func tinyHostile(o *options) {
	o.duration = 300 * time.Millisecond
	h := &o.hostile
	h.partialConns, h.partialSize = 8, 64<<10
	h.inflateMsgs, h.floodMembers, h.floodMsgs = 20, 5, 5000
	h.pingers, h.pings = 2, 30000 // past the default burst of 10,000
	h.bombMembers, h.bombs = 5, 5
	h.contConns, h.contFrames, h.pongers, h.pongs = 2, 30000, 2, 30000 // past the default burst
	h.fanSenders, h.fanRate, h.fanMembers = 3, 2000, 5
	h.deflateMsgs, h.presocks, h.partialIP = 5, 100, 8
	h.honestP99 = 5 * time.Second // -race on a shared box
}

// TestHostileAgainstWSDInProcess runs a tiny hostile scenario against wsd
// in this process, with its default limits: every attack runs, the honest
// clients are not harmed, and the attackers get what the memory model
// promises (gzip messages past the inflation ratio 1009, pings past the
// rate 1008).
func TestHostileAgainstWSDInProcess(t *testing.T) {
	srv := testserver.Start(t, server.Config{})
	o := tinyOptions(t, &serverProc{addr: srv.Addr().String()})
	tinyHostile(o)
	o.hostile.attacks = []string{"partial", "inflate", "flood", "ping", "bomb"}
	r, err := runHostile(o)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	r.print(&b)
	t.Log(b.String())
	for _, a := range o.hostile.attacks {
		must(t, r, a+": server died", 0)
		must(t, r, a+": honest harmed", 0)
		must(t, r, a+": honest closed", 0)
		positive(t, r, a+": attack frames sent", a+": honest received")
	}
	must(t, r, "partial: attackers", 8)
	must(t, r, "inflate: attackers got 1009", 1)
	must(t, r, "bomb: attackers got 1009", 1)
	must(t, r, "bomb: members closed", 0)
	must(t, r, "bomb: attack frames sent", 5)
	must(t, r, "ping: attackers got 1008", 2)
	noErrors(t, r)
}

// TestHostileFairnessAgainstWSDInProcess runs the attacks on what
// connections share, tiny, against wsd in this process with its default
// limits (permessage-deflate on, as cmd/wsd has it; a 16 MiB inbound
// budget so that ten 1 MiB fragments pass one address's 25% share): the
// honest clients are not harmed, the newcomer beside the idle sockets
// upgrades, the 1 MB message beside the held fragments passes, and the
// attackers get what the limits promise (every frame charged: 1008; the
// deflate bomb: 1009; the address past its share: 1013; idle sockets past
// the per-address handshake cap: 429).
func TestHostileFairnessAgainstWSDInProcess(t *testing.T) {
	srv := testserver.Start(t, server.Config{Session: session.Config{Deflate: codec.DeflateConfig{Enabled: true},
		InboundBudget: 16 << 20}})
	o := tinyOptions(t, &serverProc{addr: srv.Addr().String()})
	tinyHostile(o)
	h := &o.hostile
	h.attacks = []string{"cont", "pong", "fanflood", "deflate", "presock", "partialip"}
	h.partialSize, h.partialIP = 1<<20-1, 10
	o.duration = time.Second // time for 10 MiB of fragments to be written on a loaded box
	r, err := runHostile(o)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	r.print(&b)
	t.Log(b.String())
	for _, a := range h.attacks {
		must(t, r, a+": server died", 0)
		must(t, r, a+": honest harmed", 0)
		must(t, r, a+": honest closed", 0)
		positive(t, r, a+": honest received")
	}
	positive(t, r, "cont: attack frames sent", "pong: attack frames sent", "fanflood: attack frames sent",
		"deflate: attack frames sent", "partialip: attack frames sent")
	must(t, r, "cont: attackers got 1008", 2)
	must(t, r, "pong: attackers got 1008", 2)
	must(t, r, "fanflood: attackers", 8)
	must(t, r, "deflate: attackers got 1009", 1)
	must(t, r, "presock: attackers", 100)
	positive(t, r, "presock: attackers got http-429")
	must(t, r, "presock: honest newcomer passed", 1)
	positive(t, r, "partialip: attackers got 1013")
	must(t, r, "partialip: honest 1 MB message passed", 1)
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
	r := fanoutIntact(t, o)
	must(t, r, "deliveries compressed", 100) // the half without gzip
	if st.DeflateEncodings.Load() == 0 || st.DeflateEncodings.Load() > st.Broadcasts.Load() {
		t.Fatalf("%d compressions for %d broadcasts", st.DeflateEncodings.Load(), st.Broadcasts.Load())
	}
	wstest.Eventually(t, 5*time.Second, "deflate connections gone", func() bool { return st.DeflateConns.Load() == 0 })

	o = tinyOptions(t, p)
	o.n, o.senders, o.duration, o.deflate = 20, 3, 300*time.Millisecond, true
	stormIntact(t, o)
	if st.InflateErrors.Load() != 0 {
		t.Fatalf("%d inflate errors", st.InflateErrors.Load())
	}

	o = tinyOptions(t, p)
	o.duration, o.deflate = 200*time.Millisecond, true
	connectClean(t, o)
}
