package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/session"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// Every framing the protocol has: a send is acked and reaches every
// member once, the sender included, with the ack's seq.
func TestSendAckMessage(t *testing.T) {
	u := startWsd(t, session.Config{})
	for _, tc := range []struct {
		name          string
		gzip, deflate bool
	}{{"text", false, false}, {"gzip", true, false}, {"deflate", false, true}, {"gzip+deflate", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			room := "lobby-" + tc.name
			if tc.name == "gzip+deflate" {
				room = "lobby-both"
			}
			o := Options{Rooms: []string{room}, Gzip: tc.gzip, Deflate: tc.deflate}
			o.Key = "alice-" + tc.name
			a := dial(t, u, o)
			o.Key = "bob-" + tc.name
			b := dial(t, u, o)
			ra, rb := record(a), record(b)
			text := strings.Repeat("hello ", 40) // over the deflate threshold
			ack, err := a.Send(ctxT(t), room, text)
			if err != nil {
				t.Fatal(err)
			}
			if ack.Seq != 1 || ack.Room != room || ack.Duplicate || ack.Epoch == "" {
				t.Fatalf("ack %+v", ack)
			}
			for _, r := range []*recorder{ra, rb} {
				waitFor(t, "the message", func() bool { return len(r.messages(room)) == 1 })
				m := r.messages(room)[0]
				if m.Text != text || m.Seq != ack.Seq || m.From != "alice-"+tc.name || m.ID != ack.ID {
					t.Fatalf("message %+v, ack %+v", m, ack)
				}
			}
		})
	}
}

func TestJoinMembersLeave(t *testing.T) {
	u := startWsd(t, session.Config{MaxRoomsPerConn: 2})
	a := dial(t, u, Options{Key: "alice", Rooms: []string{"lobby"}})
	b := dial(t, u, Options{Key: "bob", Rooms: []string{"lobby", "support"}})
	rb := record(b)
	ctx := ctxT(t)
	for i := range 3 {
		if _, err := b.Send(ctx, "support", fmt.Sprint("s", i)); err != nil {
			t.Fatal(err)
		}
	}
	j, err := a.Join(ctx, "support", JoinOptions{History: 2})
	if err != nil {
		t.Fatal(err)
	}
	if j.Seq != 3 || j.Recovered || j.Count != 2 || j.Rejoin {
		t.Fatalf("joined %+v", j)
	}
	ra := record(a)
	waitFor(t, "the history", func() bool { return len(ra.messages("support")) == 2 })
	if h := ra.messages("support"); h[0].Text != "s1" || h[1].Text != "s2" {
		t.Fatalf("history %+v %+v", h[0], h[1])
	}
	// Live after the history: no gap is seen at the seam.
	if _, err := b.Send(ctx, "support", "live"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the live message", func() bool { return len(ra.messages("support")) == 3 })
	if st := a.Stats(); st.Gaps != 0 || st.Duplicates != 0 {
		t.Fatalf("stats %+v", st)
	}
	m, err := a.Members(ctx, "support")
	if err != nil {
		t.Fatal(err)
	}
	if m.Count != 2 || strings.Join(m.Members, ",") != "alice,bob" || m.Truncated {
		t.Fatalf("members %+v", m)
	}
	// The server's refusal is a typed error with its code.
	_, err = a.Join(ctx, "third", JoinOptions{})
	var se *ServerError
	if !errors.As(err, &se) || se.Code != CodeTooManyRooms || !errors.Is(err, &ServerError{Code: CodeTooManyRooms}) {
		t.Fatalf("join over the limit: %v", err)
	}
	if _, err := a.Send(ctx, "third", "x"); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("send to a refused room: %v", err)
	}
	if err := a.Leave(ctx, "support"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, "support", "x"); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("send after leave: %v", err)
	}
	b.Send(ctx, "support", "after")
	waitFor(t, "bob's copy", func() bool { return len(rb.messages("support")) == 5 })
	time.Sleep(50 * time.Millisecond)
	if n := len(ra.messages("support")); n != 3 {
		t.Fatalf("%d support messages after leave, want 3", n)
	}
}

// A member drops while the room goes on; it reconnects by itself with
// since and gets exactly what it missed, reported as recovered.
func TestRecoveryAfterDrop(t *testing.T) {
	u := startWsd(t, session.Config{})
	px := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(u, "ws://"), "/"))
	a := dial(t, u, Options{Key: "alice", Rooms: []string{"lobby"}})
	b := dial(t, px.url(), Options{Key: "bob", Rooms: []string{"lobby"}, Backoff: Backoff{Min: 200 * time.Millisecond, Max: 200 * time.Millisecond}})
	rb := record(b)
	ctx := ctxT(t)
	for i := range 5 {
		a.Send(ctx, "lobby", fmt.Sprint(i))
	}
	waitFor(t, "five", func() bool { return len(rb.messages("lobby")) == 5 })
	px.cut()
	for i := 5; i < 10; i++ {
		a.Send(ctx, "lobby", fmt.Sprint(i))
	}
	waitFor(t, "ten", func() bool { return len(rb.messages("lobby")) == 10 })
	for i, m := range rb.messages("lobby") {
		if m.Seq != uint64(i+1) || m.Text != fmt.Sprint(i) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	var rejoin *Joined
	for _, ev := range rb.all() {
		if j, ok := ev.(*Joined); ok && j.Rejoin {
			rejoin = j
		}
	}
	if rejoin == nil || !rejoin.Recovered || rejoin.Missed == 0 || rejoin.Seq > 10 {
		t.Fatalf("rejoin %+v", rejoin)
	}
	if st := b.Stats(); st.Connects != 2 || st.Duplicates != 0 || st.Unrecovered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The ack of a send is lost with the connection; the client resends it
// with the same id, the server answers duplicate:true, and the other
// member has the message once.
func TestRetriedSendBroadcastOnce(t *testing.T) {
	u := startWsd(t, session.Config{})
	px := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(u, "ws://"), "/"))
	a := dial(t, px.url(), Options{Key: "alice", Rooms: []string{"lobby"}})
	b := dial(t, u, Options{Key: "bob", Rooms: []string{"lobby"}})
	rb := record(b)
	px.setMute(true) // alice's commands reach wsd, nothing comes back
	type sent struct {
		ack Ack
		err error
	}
	res := make(chan sent, 1)
	go func() {
		ack, err := a.Send(ctxT(t), "lobby", "once")
		res <- sent{ack, err}
	}()
	waitFor(t, "bob's copy", func() bool { return len(rb.messages("lobby")) == 1 })
	px.setMute(false)
	px.cut()
	r := <-res
	if r.err != nil || !r.ack.Duplicate || r.ack.Seq != 1 {
		t.Fatalf("ack %+v err %v", r.ack, r.err)
	}
	// Anything doubled would come right behind: send one more and check
	// bob has exactly two.
	if _, err := a.Send(ctxT(t), "lobby", "twice?"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second", func() bool { return len(rb.messages("lobby")) >= 2 })
	time.Sleep(50 * time.Millisecond)
	if ms := rb.messages("lobby"); len(ms) != 2 || ms[0].Text != "once" || ms[1].Seq != 2 {
		t.Fatalf("bob got %d messages: %+v", len(ms), ms)
	}
	if st := a.Stats(); st.Resent != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Connections are cut again and again while members send: every send is
// acked, every member ends with every message exactly once, in one order.
func TestReconnectStorm(t *testing.T) {
	u := startWsd(t, session.Config{})
	px := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(u, "ws://"), "/"))
	const members, perSender = 6, 60
	var cs []*Client
	var rs []*recorder
	for i := range members {
		c := dial(t, px.url(), Options{Key: fmt.Sprint("m", i), Rooms: []string{"storm"}, Gzip: i%2 == 1})
		cs = append(cs, c)
		rs = append(rs, record(c))
	}
	stop := make(chan struct{})
	var cuts sync.WaitGroup
	cuts.Add(1)
	cutsDone := 0
	go func() {
		defer cuts.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
				px.cut()
				cutsDone++
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, members*perSender)
	for i, c := range cs[:3] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perSender {
				if _, err := c.Send(ctxT(t), "storm", fmt.Sprintf("%d/%d", i, k)); err != nil {
					errs <- err
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(stop)
	cuts.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("send: %v", err)
	}
	want := 3 * perSender
	for i, r := range rs {
		waitFor(t, fmt.Sprint("member ", i, "'s messages"), func() bool { return len(r.messages("storm")) >= want })
	}
	time.Sleep(50 * time.Millisecond)
	first := rs[0].messages("storm")
	for i, r := range rs {
		ms := r.messages("storm")
		if len(ms) != want {
			t.Fatalf("member %d: %d messages, want %d", i, len(ms), want)
		}
		seen := map[string]bool{}
		for k, m := range ms {
			if seen[m.Text] || m.Seq != uint64(k+1) || m.Text != first[k].Text {
				t.Fatalf("member %d message %d: %+v (first member: %+v)", i, k, m, first[k])
			}
			seen[m.Text] = true
		}
		if st := cs[i].Stats(); st.Unrecovered != 0 {
			t.Errorf("member %d: %+v", i, st)
		}
	}
	t.Logf("%d cuts; member 0 stats %+v", cutsDone, cs[0].Stats())
	if cutsDone < 3 {
		t.Fatalf("only %d cuts", cutsDone)
	}
}

// A second connection with the same key: the first client reports
// ErrReplaced and closes for good, without reconnecting.
func TestReplacedIsFinal(t *testing.T) {
	u := startWsd(t, session.Config{})
	a := dial(t, u, Options{Key: "alice"})
	ra := record(a)
	dial(t, u, Options{Key: "alice"})
	select {
	case <-a.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the replaced client is not done")
	}
	<-ra.done
	evs := ra.all()
	last, ok := evs[len(evs)-1].(*StateChange)
	if !ok || last.State != Closed || !errors.Is(last.Err, ErrReplaced) {
		t.Fatalf("last event %#v", evs[len(evs)-1])
	}
	var ce *CloseError
	if !errors.As(last.Err, &ce) || ce.Code != CloseReplaced {
		t.Fatalf("err %v", last.Err)
	}
	if st := a.Stats(); st.Connects != 1 {
		t.Fatalf("reconnected after 4001: %+v", st)
	}
	if _, err := a.Send(context.Background(), "", "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after 4001: %v", err)
	}
}

// A refusal before the upgrade is a *HandshakeError with wsd's reason, and
// Dial does not retry it.
func TestHandshakeRefusal(t *testing.T) {
	u := startWsd(t, session.Config{})
	_, err := Dial(ctxT(t), u, Options{Key: strings.Repeat("k", 300)})
	var he *HandshakeError
	if !errors.As(err, &he) || he.Status != 400 || !strings.Contains(he.Reason, "specialKey") {
		t.Fatalf("err %v", err)
	}
}

// Positions kept by the app across its own restart: a new Client resumes
// the rooms after them, the first room by the handshake, the others by
// join.
func TestResumeFromPositions(t *testing.T) {
	u := startWsd(t, session.Config{})
	a := dial(t, u, Options{Key: "alice", Rooms: []string{"one", "two"}})
	ctx := ctxT(t)
	for _, room := range []string{"one", "two"} {
		for i := range 3 {
			if _, err := a.Send(ctx, room, fmt.Sprint(room, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	pos := map[string]Position{}
	for _, room := range []string{"one", "two"} {
		j, err := a.Join(ctx, room, JoinOptions{}) // a resync answers the room's position
		if err != nil {
			t.Fatal(err)
		}
		pos[room] = Position{Seq: 1, Epoch: j.Epoch}
	}
	b := dial(t, u, Options{Key: "bob", Rooms: []string{"one", "two"}, Positions: pos})
	rb := record(b)
	for _, room := range []string{"one", "two"} {
		waitFor(t, room+"'s replay", func() bool { return len(rb.messages(room)) == 2 })
		if ms := rb.messages(room); ms[0].Seq != 2 || ms[1].Text != room+"2" {
			t.Fatalf("%s: %+v %+v", room, ms[0], ms[1])
		}
	}
	for _, ev := range rb.all() {
		if j, ok := ev.(*Joined); ok && (!j.Recovered || j.Missed != 2) {
			t.Fatalf("joined %+v", j)
		}
	}
}
