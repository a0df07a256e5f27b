package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/internal/memlog"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// A room order kept outside the process (session.Config.Log), proven with
// internal/memlog: several boxes sharing one Log deliver each room in its
// order, acks carry its stamp, its dedup spans boxes, cold joins read it
// exactly, and a failing Log leaves each box going alone under an epoch of
// its own.

// startLogged runs a box on store's Log, with the delivery limits lifted.
func startLogged(t *testing.T, store *memlog.Store, cfg session.Config) (string, *session.Stats, *memlog.Box) {
	t.Helper()
	box := store.Box()
	t.Cleanup(func() { box.Close() }) // after the server's own cleanup
	cfg.Log = box
	cfg.MaxDeliveryRate = -1
	cfg.MaxHandshakesPerIP = -1
	_, addr, st := start(t, cfg)
	return addr, st, box
}

// TestLogBoxesShareOneOrder: two boxes' senders into one room, and every
// member on either box gets the same sequence, seq 1..N in the Log's epoch.
func TestLogBoxesShareOneOrder(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{})
	addrB, _, _ := startLogged(t, store, session.Config{})
	ra := v1Dial(t, addrA, "specialKey=ra&room=r")
	rb := v1Dial(t, addrB, "specialKey=rb&room=r")
	ra.expect("joined", "epoch", store.Epoch())
	rb.expect("joined", "epoch", store.Epoch())
	seed := wstest.Dial(t, addrB, "specialKey=seed&room=r")
	const each = 200
	var wg sync.WaitGroup
	for i, addr := range []string{addrA, addrB} {
		s := wstest.Dial(t, addr, fmt.Sprintf("specialKey=s%d&room=r", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				s.WriteText(fmt.Sprintf("%d-%d", i, k))
			}
		}()
	}
	wg.Wait()
	var got [2][]string
	for i, c := range []*v1Client{ra, rb} {
		for want := 1; want <= 2*each; want++ {
			m := c.expect("message", "seq", want, "epoch", store.Epoch())
			got[i] = append(got[i], m["text"].(string))
		}
	}
	for k := range got[0] {
		if got[0][k] != got[1][k] {
			t.Fatalf("seq %d: box A delivered %q, box B %q", k+1, got[0][k], got[1][k])
		}
	}
	// The seed member sees the same order, as bare text frames.
	for k := range got[0] {
		expectText(t, seed, "seed", got[0][k])
	}
	if n := len(store.Messages("r")); n != 2*each {
		t.Fatalf("the Log holds %d, want %d", n, 2*each)
	}
}

// TestLogAckAndDedupAcrossBoxes: a send is acked with the Log's stamp; the
// same key retrying the same id through the other box gets the original
// stamp as a duplicate ack, and the room gets the message once.
func TestLogAckAndDedupAcrossBoxes(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, stA, _ := startLogged(t, store, session.Config{})
	addrB, _, _ := startLogged(t, store, session.Config{})
	watch := v1Dial(t, addrB, "specialKey=w&room=r")
	watch.expect("joined")
	a := v1Dial(t, addrA, "specialKey=k&room=r")
	a.expect("joined")
	a.write(`{"type":"send","room":"r","id":"c1","text":"hello"}`)
	ack, msg := a.ackAndEcho()
	if ack["epoch"] != store.Epoch() || ack["seq"] != float64(1) || ack["duplicate"] != nil || msg["id"] != "c1" || msg["from"] != "k" {
		t.Fatalf("ack %v, message %v", ack, msg)
	}
	watch.expect("message", "seq", 1, "text", "hello")
	a.c.Close(1000)

	b := v1Dial(t, addrB, "specialKey=k&room=r")
	b.expect("joined")
	b.write(`{"type":"send","room":"r","id":"c1","text":"hello"}`)
	dup := b.expect("ack", "duplicate", true, "seq", 1, "epoch", store.Epoch())
	if dup["ts"] != ack["ts"] {
		t.Fatalf("duplicate ack %v, original %v", dup, ack)
	}
	// The same box again: its own dedup answers, without the Log.
	b.write(`{"type":"send","room":"r","id":"c1","text":"hello"}`)
	b.expect("ack", "duplicate", true, "seq", 1)
	b.write(`{"type":"send","room":"r","id":"c2","text":"next"}`)
	b.ackAndEcho()
	watch.expect("message", "seq", 2, "text", "next") // and nothing between
	if _, dups, _ := store.Counts(); dups != 1 {
		t.Fatalf("the Log answered %d duplicates, want 1", dups)
	}
	if stA.LogDuplicates.Load() != 0 {
		t.Fatalf("box A counted duplicates")
	}
}

// TestLogColdJoin: a box started after the room's messages were ordered
// has none of them in its Ring; a join with since reads the Log and gets
// exactly the messages after since, then live ones; history=K the last K.
func TestLogColdJoin(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{HistorySize: 50})
	s := v1Dial(t, addrA, "specialKey=s&room=r")
	s.expect("joined")
	for i := 1; i <= 30; i++ {
		s.write(fmt.Sprintf(`{"type":"send","room":"r","text":"m%d"}`, i))
		s.ackAndEcho()
	}
	addrC, stC, _ := startLogged(t, store, session.Config{HistorySize: 50})
	j := v1Dial(t, addrC, "specialKey=j&room=r&since=25&epoch="+store.Epoch())
	j.expect("joined", "recovered", true, "seq", 30)
	for i := 26; i <= 30; i++ {
		j.expect("message", "seq", i, "text", fmt.Sprintf("m%d", i))
	}
	s.write(`{"type":"send","room":"r","text":"live"}`)
	s.ackAndEcho()
	j.expect("message", "seq", 31, "text", "live")
	if stC.LogReads.Load() != 1 {
		t.Fatalf("%d Log reads, want 1", stC.LogReads.Load())
	}
	// Now C's Ring holds 31 only: history=4 reads the Log again, and the
	// seam with the Ring is exact.
	h := v1Dial(t, addrC, "specialKey=h&room=r&history=4")
	h.expect("joined", "seq", 31)
	for i := 28; i <= 31; i++ {
		h.expect("message", "seq", i)
	}
	// A since the Ring covers is served from it.
	hits := stC.LogRingHits.Load()
	k := v1Dial(t, addrC, "specialKey=k&room=r&since=30&epoch="+store.Epoch())
	k.expect("joined", "recovered", true)
	k.expect("message", "seq", 31, "text", "live")
	if stC.LogRingHits.Load() != hits+1 {
		t.Fatalf("a join the Ring covers was not served from it")
	}
	// Another epoch, or since past the top: recovered false, nothing replayed.
	for _, q := range []string{"since=3&epoch=zzzzzzzz", "since=99&epoch=" + store.Epoch()} {
		x := v1Dial(t, addrC, "specialKey=x&room=r&"+q)
		x.expect("joined", "recovered", false, "seq", 31, "epoch", store.Epoch())
		x.c.Close(1000)
	}
}

// joinedWithAll reads j's answer to a join with since=0, recovered, and
// then the messages sendAtFullRate sent, "1" … "total", each once in seq
// order.
func joinedWithAll(j *v1Client, total int) error {
	if m := j.next(); m["type"] != "joined" || m["recovered"] != true {
		return fmt.Errorf("%v, want joined with recovered:true", m)
	}
	for want := 1; want <= total; want++ {
		m := j.next()
		if m["type"] != "message" || m["seq"] != float64(want) || m["text"] != fmt.Sprint(want) {
			return fmt.Errorf("got %v, want seq %d", m, want)
		}
	}
	return nil
}

// sendAtFullRate has a v1 client of box addr send "1" … "n" to room as
// fast as the socket takes them, without waiting for acks, in the
// background.
func sendAtFullRate(t *testing.T, addr, room string, n int) {
	t.Helper()
	sender := v1Dial(t, addr, "specialKey=s&room="+room)
	sender.expect("joined")
	go func() {
		for i := 1; i <= n; i++ {
			if sender.c.WriteText(fmt.Sprintf(`{"type":"send","room":"%s","text":"%d"}`, room, i)) != nil {
				return
			}
		}
	}()
}

// TestLogJoinSeamAtFullRate: while one box sends into a room as fast as
// it can, joins on another box (started cold, and with its delivery held
// back at times so the Read runs ahead of it) with since=0 get every
// message exactly once, in order.
func TestLogJoinSeamAtFullRate(t *testing.T) {
	store := memlog.New(memlog.Config{MaxMessages: 100000})
	addrA, _, _ := startLogged(t, store, session.Config{HistorySize: 10000})
	const total = 3000
	sendAtFullRate(t, addrA, "r", total)
	// Some messages are ordered before B starts, so B's Ring cannot
	// cover since=0 and a join must read the Log.
	wstest.Eventually(t, 10*time.Second, "messages ordered before B starts", func() bool { return len(store.Messages("r")) >= 50 })
	addrB, stB, boxB := startLogged(t, store, session.Config{HistorySize: 10000})
	const joiners = 6
	var wg sync.WaitGroup
	errs := make(chan error, joiners)
	for n := range joiners {
		if n%2 == 1 {
			boxB.Hold(true) // B's delivery lags the Log: the Read sees more than the Ring
		}
		j := v1Dial(t, addrB, fmt.Sprintf("specialKey=j%d&room=r&since=0&epoch=%s", n, store.Epoch()))
		boxB.Hold(false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := joinedWithAll(j, total); err != nil {
				errs <- fmt.Errorf("joiner %d: %v", n, err)
			}
		}()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("box B: %d ring hits, %d Log reads", stB.LogRingHits.Load(), stB.LogReads.Load())
	if stB.LogReads.Load() == 0 {
		t.Fatal("no join read the Log")
	}
}

// TestLogUnavailable: while the Log fails, a box delivers its rooms alone
// under an epoch of its own (counted), a client that counted in the Log's
// epoch cannot recover into it, and the room returns to the Log's epoch
// once the Log orders again.
func TestLogUnavailable(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addr, st, _ := startLogged(t, store, session.Config{})
	a := v1Dial(t, addr, "specialKey=a&room=r")
	a.expect("joined")
	seed := wstest.Dial(t, addr, "specialKey=seed&room=r")
	a.write(`{"type":"send","room":"r","id":"1","text":"stored"}`)
	a.ackAndEcho()
	expectText(t, seed, "seed", "stored")

	store.SetFail(func(*chat.Message) error { return chat.ErrUnavailable })
	a.write(`{"type":"send","room":"r","id":"2","text":"alone"}`)
	ack, _ := a.ackAndEcho()
	local := ack["epoch"].(string)
	if local == store.Epoch() || ack["seq"] != float64(1) {
		t.Fatalf("ack while the Log fails: %v", ack)
	}
	seed.WriteText("seed alone")
	expectText(t, seed, "seed", "alone")
	expectText(t, seed, "seed", "seed alone") // seed members are unaffected
	a.expect("message", "seq", 2, "epoch", local, "text", "seed alone")
	if st.LogWritesFailed.Load() != 2 || st.LogLocalEpochs.Load() != 1 {
		t.Fatalf("writes failed %d, local epochs %d", st.LogWritesFailed.Load(), st.LogLocalEpochs.Load())
	}
	// A client that counted in the Log's epoch is told it cannot recover.
	r := v1Dial(t, addr, "specialKey=r&room=r&since=1&epoch="+store.Epoch())
	r.expect("joined", "recovered", false, "epoch", local, "seq", 2)

	store.SetFail(nil)
	a.write(`{"type":"send","room":"r","id":"3","text":"back"}`)
	ack, _ = a.ackAndEcho()
	if ack["epoch"] != store.Epoch() || ack["seq"] != float64(2) {
		t.Fatalf("ack once the Log is back: %v", ack)
	}
	r.expect("message", "epoch", store.Epoch(), "seq", 2, "text", "back")
	// And the box-local epoch's clients, rejoining, cannot recover either.
	l := v1Dial(t, addr, "specialKey=l&room=r&since=1&epoch="+local)
	l.expect("joined", "recovered", false, "epoch", store.Epoch())
}

// TestLogAckToAClosedConnection: a sender gone before the Log answers is
// not written to (and the message is still delivered).
func TestLogAckToAClosedConnection(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addr, st, _ := startLogged(t, store, session.Config{})
	w := v1Dial(t, addr, "specialKey=w&room=r")
	w.expect("joined")
	store.SetDelay(200 * time.Millisecond)
	a := v1Dial(t, addr, "specialKey=a&room=r")
	a.expect("joined")
	a.write(`{"type":"send","room":"r","id":"x","text":"bye"}`)
	a.c.Close(1000)
	// Replaced rather than closed: the same key on a new connection.
	b := v1Dial(t, addr, "specialKey=b&room=r")
	b.expect("joined")
	b.write(`{"type":"send","room":"r","id":"y","text":"replaced"}`)
	b2 := v1Dial(t, addr, "specialKey=b&room=r")
	b2.expect("joined")
	w.expect("message", "text", "bye")
	w.expect("message", "text", "replaced")
	b2.expect("message", "text", "bye")
	b2.expect("message", "text", "replaced")
	b2.quiet() // the ack was for the connection it replaced
	deadline := time.Now().Add(wstest.DefaultTimeout)
	for st.LogAcksDropped.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := st.LogAcksDropped.Load(); n != 2 {
		t.Fatalf("%d acks dropped, want 2", n)
	}
}

// TestLogSeedBytes: seed clients get byte for byte the same frames with a
// Log as without one (text and gzip).
func TestLogSeedBytes(t *testing.T) {
	frames := func(addr string) [][]byte {
		plain := wstest.Dial(t, addr, "specialKey=p&room=r")
		gz := wstest.Dial(t, addr, "specialKey=g&room=r&support_gzip=1")
		s := wstest.Dial(t, addr, "specialKey=s&room=r")
		var out [][]byte
		for _, text := range []string{"one", `{"json":true}`, string(make([]byte, 3000))} {
			s.WriteText(text)
			for _, c := range []*wstest.Client{s, plain, gz} {
				f, err := c.ReadFrame(wstest.DefaultTimeout)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, append([]byte{byte(f.Op)}, f.Payload...))
			}
		}
		return out
	}
	_, plainAddr, _ := start(t, session.Config{})
	logAddr, _, _ := startLogged(t, memlog.New(memlog.Config{}), session.Config{})
	want, got := frames(plainAddr), frames(logAddr)
	for i := range want {
		if string(want[i]) != string(got[i]) {
			t.Fatalf("frame %d differs with a Log: %.40q, want %.40q", i, got[i], want[i])
		}
	}
}

// TestLogAdminPublish: POST /publish to a room answers with the Log's
// stamp once the Log ordered it, "local" while the Log fails it, and
// "pending" (no stamp) past the publish timeout.
func TestLogAdminPublish(t *testing.T) {
	store := memlog.New(memlog.Config{})
	box := store.Box()
	t.Cleanup(func() { box.Close() })
	app := testserver.App(t, server.Config{Admin: server.AdminConfig{Addr: "127.0.0.1:0"},
		Session: session.Config{Log: box, LogPublishTimeout: 100 * time.Millisecond}})
	w := v1Dial(t, app.Server().Addr().String(), "specialKey=w&room=r")
	w.expect("joined")
	publish := func() map[string]any {
		t.Helper()
		resp, err := http.Post("http://"+app.AdminAddr().String()+"/publish", "application/json", strings.NewReader(`{"room":"r","text":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST /publish: %d %v", resp.StatusCode, err)
		}
		return m
	}
	if m := publish(); m["history"] != "stored" || m["seq"] != float64(1) || m["epoch"] != store.Epoch() || m["delivered"] != float64(1) {
		t.Fatalf("stored: %v", m)
	}
	w.expect("message", "seq", 1, "from", "")
	store.SetFail(func(*chat.Message) error { return chat.ErrUnavailable })
	if m := publish(); m["history"] != "local" || m["seq"] != float64(1) || m["epoch"] == store.Epoch() {
		t.Fatalf("local: %v", m)
	}
	w.expect("message", "seq", 1)
	store.SetFail(nil)
	store.SetDelay(300 * time.Millisecond)
	if m := publish(); m["history"] != "pending" || m["seq"] != nil {
		t.Fatalf("pending: %v", m)
	}
	w.expect("message", "seq", 2, "epoch", store.Epoch()) // ordered after all
	resp, err := http.Get("http://" + app.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`wsd_history_joins_total{from="store"} 1`, "wsd_history_writes_failed_total 1", "wsd_history_local_epochs_total 1", "wsd_history_up 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
