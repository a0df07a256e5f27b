package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// fakeChat is the least of a chat protocol v1 server that the chat
// scenarios' checks need, so they can be tested apart from wsd: rooms with
// a gap-free seq in one epoch and their whole history, send/ack/message,
// join with since+epoch (in the query too), leave, a coalesced count-only
// presence per room every interval, seed clients' text as envelopes and v1
// text bare to seed members, gzip members. One lock serialises it all.
type fakeChat struct {
	ln       net.Listener
	interval time.Duration
	mu       sync.Mutex
	rooms    map[string]*fakeRoom
	done     chan struct{}
}

type fakeRoom struct {
	seq     uint64
	log     []string
	members map[*fakeConn]bool
	dirty   bool
}

type fakeConn struct {
	c     net.Conn
	w     *bufio.Writer
	key   string
	gz    bool
	v1    bool
	rooms map[string]bool
}

const fakeEpochV1 = "fakeepch"

func startFakeChat(t *testing.T) *fakeChat {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeChat{ln: ln, interval: 100 * time.Millisecond, rooms: map[string]*fakeRoom{}, done: make(chan struct{})}
	go f.accept()
	go f.presence()
	t.Cleanup(func() { close(f.done); ln.Close() })
	return f
}

func (f *fakeChat) addr() string { return f.ln.Addr().String() }

func (f *fakeChat) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.serve(c)
	}
}

func (f *fakeChat) room(name string) *fakeRoom {
	r := f.rooms[name]
	if r == nil {
		r = &fakeRoom{members: map[*fakeConn]bool{}}
		f.rooms[name] = r
	}
	return r
}

// write sends one envelope (or seed text) to fc; f.mu is held.
func (fc *fakeConn) write(s string) {
	p, op := []byte(s), ws.OpText
	if fc.gz {
		p, op = wstest.Gzip(s), ws.OpBinary
	}
	fc.c.SetWriteDeadline(time.Now().Add(time.Second))
	ws.WriteFrame(fc.w, ws.NewFrame(op, true, p))
	fc.w.Flush()
}

func (f *fakeChat) join(fc *fakeConn, room string, since uint64, epoch string) {
	r := f.room(room)
	rec := epoch == fakeEpochV1 && since <= r.seq
	fc.write(fmt.Sprintf(`{"type":"joined","room":%q,"seq":%d,"epoch":%q,"recovered":%t,"count":%d}`,
		room, r.seq, fakeEpochV1, rec, len(r.members)+1))
	if rec {
		for _, m := range r.log[since:] {
			fc.write(m)
		}
	}
	r.members[fc], r.dirty, fc.rooms[room] = true, true, true
}

func (f *fakeChat) send(fc *fakeConn, room, id, text string) {
	r := f.room(room)
	r.seq++
	env := fmt.Sprintf(`{"type":"message","room":%q,"seq":%d,"epoch":%q,"ts":%d,"from":%q,"text":%q}`,
		room, r.seq, fakeEpochV1, time.Now().UnixMilli(), fc.key, text)
	r.log = append(r.log, env)
	if fc.v1 {
		fc.write(fmt.Sprintf(`{"type":"ack","id":%q,"room":%q,"seq":%d,"epoch":%q,"ts":1}`, id, room, r.seq, fakeEpochV1))
	}
	for m := range r.members {
		if m.v1 {
			m.write(env)
		} else {
			m.write(text)
		}
	}
}

func (f *fakeChat) serve(c net.Conn) {
	fc := &fakeConn{c: c, w: bufio.NewWriter(c), rooms: map[string]bool{}}
	var room, epoch string
	var since uint64
	u := ws.Upgrader{
		Protocol:  func(p []byte) bool { fc.v1 = string(p) == "wsd.v1"; return fc.v1 },
		Negotiate: func(httphead.Option) (httphead.Option, error) { return httphead.Option{}, nil },
		OnRequest: func(uri []byte) error {
			q := string(uri)
			if _, after, ok := strings.Cut(q, "?"); ok {
				q = after
			}
			for _, kv := range strings.Split(q, "&") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "specialKey":
					fc.key = v
				case "room":
					room = v
				case "support_gzip":
					fc.gz = v == "1"
				case "since":
					since, _ = strconv.ParseUint(v, 10, 64)
				case "epoch":
					epoch = v
				}
			}
			return nil
		},
	}
	if _, err := u.Upgrade(c); err != nil {
		c.Close()
		return
	}
	if room == "" {
		room = "global"
	}
	f.mu.Lock()
	if fc.v1 {
		f.join(fc, room, since, epoch)
	} else {
		r := f.room(room)
		r.members[fc], fc.rooms[room] = true, true
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		for name := range fc.rooms {
			r := f.rooms[name]
			delete(r.members, fc)
			r.dirty = true
		}
		f.mu.Unlock()
		c.Close()
	}()
	for {
		p, op, err := wsutil.ReadClientData(c)
		if err != nil {
			return
		}
		if op == ws.OpBinary {
			s, err := wstest.Gunzip(p)
			if err != nil {
				return
			}
			p = []byte(s)
		}
		f.mu.Lock()
		if !fc.v1 {
			f.send(fc, room, "", string(p))
			f.mu.Unlock()
			continue
		}
		var cmd struct {
			Type, Room, ID, Text, Epoch string
			Since                       uint64
		}
		if err := json.Unmarshal(p, &cmd); err != nil {
			fc.write(`{"type":"error","code":100,"reason":"malformed"}`)
		}
		switch cmd.Type {
		case "send":
			f.send(fc, cmd.Room, cmd.ID, cmd.Text)
		case "join":
			f.join(fc, cmd.Room, cmd.Since, cmd.Epoch)
		case "leave":
			delete(f.room(cmd.Room).members, fc)
			delete(fc.rooms, cmd.Room)
			fc.write(fmt.Sprintf(`{"type":"left","room":%q}`, cmd.Room))
		}
		f.mu.Unlock()
	}
}

func (f *fakeChat) presence() {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		f.mu.Lock()
		for name, r := range f.rooms {
			if !r.dirty {
				continue
			}
			r.dirty = false
			env := fmt.Sprintf(`{"type":"presence","room":%q,"count":%d}`, name, len(r.members))
			for m := range r.members {
				if m.v1 {
					m.write(env)
				}
			}
		}
		f.mu.Unlock()
	}
}
