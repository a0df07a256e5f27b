package client

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/wsd-chat/wsd/chat"
)

// Subprotocol is the WebSocket subprotocol of chat protocol v1; the client
// offers it and refuses a server that does not choose it.
const Subprotocol = "wsd.v1"

// closeTooBig is the close code of a message over the server's
// -max-message.
const closeTooBig = 1009

// Defaults of Options.
const (
	DefaultBackoffMin   = 100 * time.Millisecond
	DefaultBackoffMax   = 10 * time.Second
	DefaultQueueSize    = 1024
	DefaultMaxPending   = 1024
	DefaultMaxFrame     = 1<<20 + 4<<10 // wsd's -max-message default and an envelope around it
	DefaultWriteTimeout = 10 * time.Second
	DefaultDialTimeout  = 10 * time.Second
)

// Options is how a Client connects. Key is required; everything else has
// a default.
type Options struct {
	// Key is the specialKey: the client's name. A second connection with
	// the same key replaces this one (close 4001, ErrReplaced).
	Key string
	// Token is a JWT, sent as Authorization: Bearer.
	Token string
	// Gzip asks for support_gzip=1: envelopes arrive gzip'd in binary
	// frames (and commands go the same way).
	Gzip bool
	// Deflate offers permessage-deflate (no context takeover either way).
	Deflate bool
	// Rooms are joined by Dial, the first one in the handshake; none: the
	// global room "".
	Rooms []string
	// History is the last K messages asked for each of Rooms at Dial.
	History int
	// Positions resume rooms of Rooms where the app left them (kept
	// across a restart of the app, say): Dial joins them with since and
	// epoch, and the server replays what came after, or answers
	// recovered:false.
	Positions map[string]Position
	// DialContext, when set, makes the TCP connections (source address,
	// socket options); nil: net.Dialer's.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// URLs are more servers (ws:// or wss://, other boxes of a cluster);
	// every reconnect tries the next one of Dial's url and these in turn.
	URLs []string
	// TLSConfig is for wss:// (nil: the system's roots).
	TLSConfig *tls.Config
	// Header holds extra handshake headers (Origin …).
	Header http.Header
	// Backoff bounds the waits between reconnects.
	Backoff Backoff
	// QueueSize is the capacity of Events (DefaultQueueSize).
	QueueSize int
	// MaxPending bounds the commands waiting for an answer at once
	// (DefaultMaxPending).
	MaxPending int
	// MaxFrame is the largest server frame accepted, also after gunzip
	// (DefaultMaxFrame); a larger one is a *ProtocolError.
	MaxFrame int64
	// WriteTimeout bounds one command's write (DefaultWriteTimeout).
	WriteTimeout time.Duration
	// DialTimeout bounds one handshake (DefaultDialTimeout).
	DialTimeout time.Duration
}

// Backoff is full-jitter exponential back-off: before reconnect attempt n
// (0, 1, 2 …) the client waits a uniform random time in
// [0, min(Max, Min·2^n)]. The attempt count restarts after a connection
// that reached Connected.
type Backoff struct{ Min, Max time.Duration }

// delay is the wait before attempt n.
func (b Backoff) delay(n int) time.Duration {
	d := b.Max
	if n < 30 && b.Min<<n < b.Max && b.Min<<n > 0 {
		d = b.Min << n
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
}

// Position is a place in a room: the last seq the app has, in epoch.
type Position struct {
	Seq   uint64
	Epoch string
}

// JoinOptions say where a Join starts: with History > 0, the room's last
// History messages are replayed before live ones; with From (an epoch
// set), the messages after From.Seq, if the server still holds them. A
// room the client already has a position in resumes from that one.
type JoinOptions struct {
	History int
	From    Position
}

// Client is one chat protocol v1 connection that outlives its sockets:
// it reconnects, rejoins its rooms where it left them, and resends
// unacknowledged sends. Its methods are safe for concurrent use.
type Client struct {
	o      Options
	urls   []string
	ctx    context.Context
	cancel context.CancelFunc
	httpc  *http.Client
	events chan Event
	done   chan struct{}
	prefix string // makes command ids unique to this Client

	mu     sync.Mutex
	conn   *websocket.Conn // nil while down
	gen    uint64          // connections so far; rooms and calls remember theirs
	rooms  map[string]*roomState
	order  []string // rooms in join order; the first goes in the handshake
	calls  map[string]*call
	nextID uint64
	state  State
	first  chan error // Dial waits on it until the first room is joined
	qroom  string     // the handshake's room of the current connection
	stats  Stats
}

// roomState is the client's position in one room.
type roomState struct {
	name     string
	last     uint64 // the last seq delivered
	epoch    string
	known    bool   // last and epoch hold a position
	history  int    // asked on the next join while no position is known
	hist     bool   // a history replay up to top is under way
	top      uint64 // joined's seq for a history replay
	readyGen uint64 // the connection on which the room is joined
	resync   bool   // a rejoin is under way: messages wait for its joined
	since    uint64 // what that join asked, with sinceOK
	sinceOK  bool
	asked    int    // history asked by that join
	joinCall string // id of a Join waiting
}

// call is a command waiting for its answer.
type call struct {
	id, kind, room string
	cmd            []byte
	done           chan result // nil: the client's own (a rejoin)
	writtenGen     uint64
	seq            uint64
}

type result struct {
	v   any
	err error
}

// Dial connects to url (ws://host:port/ or wss://…) as o.Key, joins
// o.Rooms and returns once they are joined. A failure of this first
// connection is returned (a *HandshakeError for a refusal); after it, the
// client reconnects by itself until Close, a 4001 or a permanent refusal.
func Dial(ctx context.Context, url string, o Options) (*Client, error) {
	if o.Key == "" {
		return nil, errors.New("client: Options.Key is required")
	}
	for _, r := range o.Rooms {
		if r != "" && !chat.ValidRoom(r) {
			return nil, fmt.Errorf("client: bad room name %q", r)
		}
	}
	setDefault(&o.Backoff.Min, DefaultBackoffMin)
	setDefault(&o.Backoff.Max, DefaultBackoffMax)
	setDefault(&o.QueueSize, DefaultQueueSize)
	setDefault(&o.MaxPending, DefaultMaxPending)
	setDefault(&o.MaxFrame, DefaultMaxFrame)
	setDefault(&o.WriteTimeout, DefaultWriteTimeout)
	setDefault(&o.DialTimeout, DefaultDialTimeout)
	c := &Client{
		o:      o,
		urls:   append([]string{url}, o.URLs...),
		events: make(chan Event, o.QueueSize),
		done:   make(chan struct{}),
		prefix: randomPrefix(),
		rooms:  map[string]*roomState{},
		calls:  map[string]*call{},
		first:  make(chan error, 1),
		httpc:  &http.Client{Transport: &http.Transport{TLSClientConfig: o.TLSConfig, DialContext: o.DialContext}},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	firstRoom := ""
	if len(o.Rooms) > 0 {
		firstRoom = o.Rooms[0]
	}
	r := c.addRoomLocked(firstRoom, o.History)
	if p := o.Positions[firstRoom]; p.Epoch != "" {
		r.last, r.epoch, r.known = p.Seq, p.Epoch, true
	}
	first := c.first
	go c.run()
	select {
	case err := <-first:
		if err != nil {
			c.Close()
			return nil, err
		}
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
	for _, r := range o.Rooms[min(1, len(o.Rooms)):] {
		if _, err := c.Join(ctx, r, JoinOptions{History: o.History, From: o.Positions[r]}); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func randomPrefix() string {
	var b [5]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// Events delivers what happens, in order, to one reader. The client never
// waits for the app: when Events is full (the app is QueueSize events
// behind), the client drops the connection and reconnects, resuming each
// room after its last queued message; what the server no longer holds is
// reported as Joined{Recovered: false}. A StateChange that does not fit is
// dropped (State tells the current one). Events is closed after Close.
func (c *Client) Events() <-chan Event { return c.events }

// State is the connection's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Position returns the last seq delivered in room and its epoch; ok false
// when the client has no position there.
func (c *Client) Position(room string) (seq uint64, epoch string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rooms[room]
	if r == nil || !r.known {
		return 0, "", false
	}
	return r.last, r.epoch, true
}

// Done is closed when the client is closed for good; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection (1000) and the client; commands waiting
// fail with ErrClosed.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// Send sends text to room and returns the server's Ack. The command has an
// id of the client's: if the connection drops before the ack, the client
// resends it with the same id after reconnecting, and the server's dedup
// answers with the original Ack (Duplicate true) instead of broadcasting
// it twice. An error is a *ServerError (the refusal), ErrNotJoined,
// ErrTooManyPending, ErrClosed, a *CloseError with 1009 when the
// connection it was written on was closed for a message too big (the
// sends written on it are not resent), or ctx's (then the message may or
// may not have been sent). Sends from one goroutine are written in order;
// concurrent ones are not ordered against each other.
func (c *Client) Send(ctx context.Context, room, text string) (Ack, error) {
	return c.SendID(ctx, room, "", text)
}

// SendID is Send with the app's own id (1–64 bytes), e.g. one it kept
// across a restart of the app; "" makes one.
func (c *Client) SendID(ctx context.Context, room, id, text string) (Ack, error) {
	if len(id) > maxIDLen {
		return Ack{}, fmt.Errorf("client: id of %d bytes (at most %d)", len(id), maxIDLen)
	}
	v, err := c.do(ctx, "send", room, id, func(id string) any {
		return struct {
			Type string `json:"type"`
			Room string `json:"room"`
			ID   string `json:"id"`
			Text string `json:"text"`
		}{"send", room, id, text}
	})
	if err != nil {
		return Ack{}, err
	}
	return v.(Ack), nil
}

// Members asks who is in room.
func (c *Client) Members(ctx context.Context, room string) (Members, error) {
	v, err := c.do(ctx, "members", room, "", func(id string) any {
		return struct {
			Type string `json:"type"`
			Room string `json:"room"`
			ID   string `json:"id"`
		}{"members", room, id}
	})
	if err != nil {
		return Members{}, err
	}
	return v.(Members), nil
}

// do registers a command for a joined room, writes it if the room is
// joined on the current connection (else the room's joined writes it), and
// waits for its answer.
func (c *Client) do(ctx context.Context, kind, room, id string, build func(id string) any) (any, error) {
	c.mu.Lock()
	if c.state == Closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	r := c.rooms[room]
	if r == nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrNotJoined, room)
	}
	if len(c.calls) >= c.o.MaxPending {
		c.mu.Unlock()
		return nil, ErrTooManyPending
	}
	if id == "" {
		id = c.newIDLocked(kind[:1])
	} else if _, dup := c.calls[id]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("client: id %q is already waiting for its answer", id)
	}
	cmd, err := json.Marshal(build(id))
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	cl := c.addCallLocked(id, kind, room, cmd, true)
	conn := c.conn
	if conn != nil && r.readyGen == c.gen {
		cl.writtenGen = c.gen
	} else {
		conn = nil
	}
	c.mu.Unlock()
	if conn != nil {
		c.write(conn, cmd) // a failed write ends the connection; the reconnect resends
	}
	return c.wait(ctx, cl)
}

func (c *Client) wait(ctx context.Context, cl *call) (any, error) {
	select {
	case res := <-cl.done:
		return res.v, res.err
	case <-ctx.Done():
		c.mu.Lock()
		if c.calls[cl.id] == cl {
			delete(c.calls, cl.id)
		}
		c.mu.Unlock()
		select {
		case res := <-cl.done: // answered meanwhile
			return res.v, res.err
		default:
		}
		return nil, ctx.Err()
	}
}

func (c *Client) newIDLocked(kind string) string {
	c.nextID++
	return kind + "-" + c.prefix + "-" + strconv.FormatUint(c.nextID, 10)
}

func (c *Client) addCallLocked(id, kind, room string, cmd []byte, wait bool) *call {
	c.nextID++
	cl := &call{id: id, kind: kind, room: room, cmd: cmd, seq: c.nextID}
	if wait {
		cl.done = make(chan result, 1)
	}
	c.calls[id] = cl
	return cl
}

// completeLocked answers a call (never blocks: done holds one).
func (c *Client) completeLocked(cl *call, v any, err error) {
	delete(c.calls, cl.id)
	if cl.done != nil {
		cl.done <- result{v, err}
	}
}

func (c *Client) addRoomLocked(name string, history int) *roomState {
	r := c.rooms[name]
	if r == nil {
		r = &roomState{name: name, history: history}
		c.rooms[name] = r
		c.order = append(c.order, name)
	}
	return r
}

// removeRoomLocked forgets a room; its sends and members calls fail.
func (c *Client) removeRoomLocked(name string) {
	delete(c.rooms, name)
	c.order = slices.DeleteFunc(c.order, func(s string) bool { return s == name })
	for _, cl := range c.calls {
		if cl.room == name && (cl.kind == "send" || cl.kind == "members") {
			c.completeLocked(cl, nil, fmt.Errorf("%w: %q (left)", ErrNotJoined, name))
		}
	}
}

// Join joins room (again: a resync from the client's position) and returns
// the server's joined. The client rejoins it after every reconnect until
// Leave. A refusal is a *ServerError (forbidden, too_many_rooms …) and the
// room is not kept.
func (c *Client) Join(ctx context.Context, room string, jo JoinOptions) (Joined, error) {
	if room != "" && !chat.ValidRoom(room) {
		return Joined{}, &ServerError{Code: CodeBadRoom, Reason: "bad room name (checked by the client)"}
	}
	c.mu.Lock()
	if c.state == Closed {
		c.mu.Unlock()
		return Joined{}, ErrClosed
	}
	if len(c.calls) >= c.o.MaxPending {
		c.mu.Unlock()
		return Joined{}, ErrTooManyPending
	}
	r := c.addRoomLocked(room, jo.History)
	if !r.known {
		r.history = jo.History
		if jo.From.Epoch != "" {
			r.last, r.epoch, r.known = jo.From.Seq, jo.From.Epoch, true
		}
	}
	id := c.newIDLocked("j")
	cl := c.addCallLocked(id, "join", room, nil, true)
	r.joinCall = id
	var conn *websocket.Conn
	var cmd []byte
	if c.conn != nil {
		conn, cmd = c.conn, c.joinCmdLocked(r, id)
		cl.writtenGen = c.gen
	}
	c.mu.Unlock()
	if conn != nil {
		c.write(conn, cmd)
	}
	v, err := c.wait(ctx, cl)
	if err != nil {
		if ctx.Err() != nil {
			c.mu.Lock()
			if r := c.rooms[room]; r != nil && !r.known && r.readyGen == 0 {
				c.removeRoomLocked(room)
			}
			c.mu.Unlock()
		}
		return Joined{}, err
	}
	return v.(Joined), nil
}

// Leave leaves room; no Message of it is delivered after Leave returns.
func (c *Client) Leave(ctx context.Context, room string) error {
	c.mu.Lock()
	if c.rooms[room] == nil {
		c.mu.Unlock()
		return nil
	}
	c.removeRoomLocked(room)
	if c.conn == nil {
		c.mu.Unlock()
		return nil // not joined anywhere; the reconnect will not join it
	}
	id := c.newIDLocked("l")
	cmd := leaveCmd(room, id)
	cl := c.addCallLocked(id, "leave", room, cmd, true)
	conn := c.conn
	c.mu.Unlock()
	c.write(conn, cmd)
	_, err := c.wait(ctx, cl)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

func leaveCmd(room, id string) []byte {
	p, _ := json.Marshal(struct {
		Type string `json:"type"`
		Room string `json:"room"`
		ID   string `json:"id"`
	}{"leave", room, id})
	return p
}

// joinCmdLocked is the join command for r from the client's position:
// since+epoch when it has one, else history. id "" makes the client's own.
func (c *Client) joinCmdLocked(r *roomState, id string) []byte {
	if id == "" {
		id = c.newIDLocked("j")
		c.addCallLocked(id, "join", r.name, nil, false)
	}
	j := struct {
		Type    string  `json:"type"`
		Room    string  `json:"room"`
		ID      string  `json:"id"`
		Since   *uint64 `json:"since,omitempty"`
		Epoch   string  `json:"epoch,omitempty"`
		History int     `json:"history,omitempty"`
	}{Type: "join", Room: r.name, ID: id}
	r.sinceOK, r.since, r.asked = r.known, r.last, 0
	if r.known {
		since := r.last
		j.Since, j.Epoch = &since, r.epoch
	} else {
		j.History, r.asked = r.history, r.history
	}
	p, _ := json.Marshal(j)
	return p
}

// write writes one command, gzip'd in a binary frame for a gzip client.
func (c *Client) write(conn *websocket.Conn, p []byte) error {
	typ := websocket.MessageText
	if c.o.Gzip {
		p, typ = gzipBytes(p), websocket.MessageBinary
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.o.WriteTimeout)
	defer cancel()
	err := conn.Write(ctx, typ, p)
	if err != nil {
		conn.CloseNow() // the reader sees it and the client reconnects
	}
	return err
}

var gzipWriters = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed); return w }}

func gzipBytes(p []byte) []byte {
	var b bytes.Buffer
	w := gzipWriters.Get().(*gzip.Writer)
	w.Reset(&b)
	w.Write(p)
	w.Close()
	gzipWriters.Put(w)
	return b.Bytes()
}

// gunzip inflates a gzip frame, refusing more than limit bytes (a gzip
// bomb is a *ProtocolError like any oversized frame).
func gunzip(p []byte, limit int64) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, protoErr(p, "binary frame is not gzip: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, protoErr(p, "binary frame is not gzip: %v", err)
	}
	if int64(len(out)) > limit {
		return nil, protoErr(nil, "gzip frame inflates past %d bytes", limit)
	}
	return out, nil
}

// run connects and reconnects until Close, a 4001 or a permanent refusal.
func (c *Client) run() {
	defer func() {
		c.httpc.CloseIdleConnections()
		close(c.events)
		close(c.done)
	}()
	attempt, next := 0, 0
	for {
		u := c.urls[next%len(c.urls)]
		next++
		up, err := c.connect(u)
		if c.ctx.Err() != nil {
			c.finish(ErrClosed, u)
			return
		}
		c.mu.Lock()
		first := c.first
		c.first = nil
		c.mu.Unlock()
		if first != nil && !up {
			first <- err
			c.finish(err, u)
			return
		}
		var he *HandshakeError
		if errors.Is(err, ErrReplaced) || (errors.As(err, &he) && he.permanent()) {
			c.finish(err, u)
			return
		}
		if up {
			attempt = 0
		}
		c.setState(Disconnected, err, u)
		t := time.NewTimer(c.o.Backoff.delay(attempt))
		attempt++
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			c.finish(ErrClosed, u)
			return
		}
		c.setState(Connecting, nil, c.urls[next%len(c.urls)])
	}
}

// finish closes the client for good: every waiting command fails with err.
func (c *Client) finish(err error, u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = Closed
	if c.first != nil {
		c.first <- err
		c.first = nil
	}
	for _, cl := range c.calls {
		c.completeLocked(cl, nil, errors.Join(ErrClosed, err))
	}
	c.pushStateLocked(&StateChange{State: Closed, Err: err, URL: u})
}

func (c *Client) setState(s State, err error, u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = s
	c.pushStateLocked(&StateChange{State: s, Err: err, URL: u})
}

func (c *Client) pushStateLocked(ev *StateChange) {
	select {
	case c.events <- ev:
	default:
		c.stats.StatesDropped++
	}
}

// push queues an event; false when Events is full.
func (c *Client) push(ev Event) bool {
	select {
	case c.events <- ev:
		return true
	default:
		return false
	}
}

// connect makes one connection and serves it until it ends; up reports
// whether its first room was joined.
func (c *Client) connect(u string) (up bool, err error) {
	conn, err := c.dial(u)
	if err != nil {
		return false, err
	}
	defer conn.CloseNow()
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.conn = conn
	c.stats.Connects++
	var cmds [][]byte
	if c.rooms[c.qroom] == nil {
		// The handshake had to name a room: leave it if it is not wanted.
		id := c.newIDLocked("l")
		cmd := leaveCmd(c.qroom, id)
		c.addCallLocked(id, "leave", c.qroom, cmd, false)
		cmds = append(cmds, cmd)
	}
	for _, name := range c.order {
		if name == c.qroom {
			continue
		}
		r := c.rooms[name]
		cmds = append(cmds, c.joinCmdLocked(r, r.joinCall))
		if cl := c.calls[r.joinCall]; cl != nil {
			cl.writtenGen = gen
		}
	}
	c.mu.Unlock()
	readErr := make(chan error, 1)
	go func() { readErr <- c.read(conn, gen) }()
	for _, p := range cmds {
		if c.write(conn, p) != nil {
			break
		}
	}
	err = <-readErr
	c.mu.Lock()
	c.conn = nil
	var ce *CloseError
	if errors.As(err, &ce) && ce.Code == closeTooBig {
		// One of the sends written here was over the server's limit:
		// resending them would close the next connection the same way.
		for _, cl := range c.calls {
			if cl.kind == "send" && cl.writtenGen == gen {
				c.completeLocked(cl, nil, err)
			}
		}
	}
	up = false
	for _, r := range c.rooms {
		if r.readyGen == gen {
			up = true
		}
		r.resync = false
	}
	c.mu.Unlock()
	if errors.Is(err, errSlowApp) {
		conn.Close(websocket.StatusNormalClosure, "client catching up")
	}
	return up, err
}

// dial upgrades one connection to u, with the client's position in the
// handshake's room.
func (c *Client) dial(u string) (*websocket.Conn, error) {
	q := url.Values{"specialKey": {c.o.Key}}
	c.mu.Lock()
	c.qroom = ""
	if len(c.order) > 0 {
		c.qroom = c.order[0]
	}
	if r := c.rooms[c.qroom]; r != nil {
		r.sinceOK, r.since, r.asked = r.known, r.last, 0
		if r.known {
			q.Set("since", strconv.FormatUint(r.last, 10))
			q.Set("epoch", r.epoch)
		} else if r.history > 0 {
			q.Set("history", strconv.Itoa(r.history))
			r.asked = r.history
		}
	}
	if c.qroom != "" {
		q.Set("room", c.qroom)
	}
	c.mu.Unlock()
	if c.o.Gzip {
		q.Set("support_gzip", "1")
	}
	target := u
	if strings.Contains(u, "?") {
		target += "&" + q.Encode()
	} else {
		target += "?" + q.Encode()
	}
	h := http.Header{}
	for k, vs := range c.o.Header {
		h[k] = append([]string(nil), vs...)
	}
	if c.o.Token != "" {
		h.Set("Authorization", "Bearer "+c.o.Token)
	}
	mode := websocket.CompressionDisabled
	if c.o.Deflate {
		mode = websocket.CompressionNoContextTakeover
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.o.DialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, target, &websocket.DialOptions{
		HTTPClient: c.httpc, HTTPHeader: h, Subprotocols: []string{Subprotocol}, CompressionMode: mode,
	})
	if err != nil {
		he := &HandshakeError{Err: err}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			he.Status = resp.StatusCode
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				he.Reason = strings.TrimSpace(string(b))
				resp.Body.Close()
			}
		}
		return nil, he
	}
	if conn.Subprotocol() != Subprotocol {
		conn.CloseNow()
		return nil, &HandshakeError{Status: http.StatusSwitchingProtocols, Reason: "server did not choose " + Subprotocol,
			Err: errors.New("subprotocol " + strconv.Quote(conn.Subprotocol()))}
	}
	conn.SetReadLimit(c.o.MaxFrame)
	return conn, nil
}

// read reads and handles frames until the connection ends.
func (c *Client) read(conn *websocket.Conn, gen uint64) error {
	for {
		typ, p, err := conn.Read(c.ctx)
		if err != nil {
			return readError(err, c.o.MaxFrame)
		}
		if typ == websocket.MessageBinary {
			if !c.o.Gzip {
				return protoErr(p, "binary frame to a client without gzip")
			}
			if p, err = gunzip(p, c.o.MaxFrame); err != nil {
				return err
			}
		}
		if err := c.handle(conn, gen, p); err != nil {
			return err
		}
	}
}

func readError(err error, limit int64) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: int(ce.Code), Reason: ce.Reason}
	}
	if strings.Contains(err.Error(), "read limited at") {
		return protoErr(nil, "frame over %d bytes", limit)
	}
	return err
}

// handle acts on one server frame.
func (c *Client) handle(conn *websocket.Conn, gen uint64, p []byte) error {
	if t := bytes.TrimLeft(p, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		if !c.push(&Direct{Text: string(p)}) {
			return errSlowApp
		}
		return nil
	}
	f, err := DecodeFrame(p)
	if err != nil {
		return err
	}
	c.mu.Lock()
	writes, err := c.applyLocked(gen, &f, p)
	c.mu.Unlock()
	for _, w := range writes {
		if c.write(conn, w) != nil {
			break
		}
	}
	return err
}

// applyLocked updates the client for frame f of connection gen, queues
// its events and answers its calls; it returns the commands to write.
func (c *Client) applyLocked(gen uint64, f *Frame, p []byte) ([][]byte, error) {
	switch f.Type {
	case TypeMessage:
		return c.messageLocked(gen, f)
	case TypeJoined:
		return c.joinedLocked(gen, f, p)
	case TypeAck:
		cl := c.calls[f.ID]
		if cl == nil || cl.kind != "send" {
			return nil, nil // a late answer to a send given up on
		}
		if cl.room != f.Room {
			return nil, protoErr(p, "ack for room %q answers a send to %q", f.Room, cl.room)
		}
		c.completeLocked(cl, Ack{ID: f.ID, Room: f.Room, Seq: f.Seq, Epoch: f.Epoch, TS: f.TS, Duplicate: f.Duplicate}, nil)
	case TypeMembers:
		if cl := c.calls[f.ID]; cl != nil && cl.kind == "members" {
			c.completeLocked(cl, Members{Room: f.Room, Count: f.Count, Members: f.Members, Truncated: f.Truncated}, nil)
		}
	case TypeLeft:
		if cl := c.calls[f.ID]; cl != nil && cl.kind == "leave" {
			c.completeLocked(cl, nil, nil)
			return nil, nil
		}
		if c.rooms[f.Room] != nil {
			c.removeRoomLocked(f.Room)
			if !c.push(&Left{Room: f.Room}) {
				return nil, errSlowApp
			}
		}
	case TypeDirect:
		if !c.push(&Direct{TS: f.TS, From: f.From, Text: f.Text}) {
			return nil, errSlowApp
		}
	case TypePresence:
		if r := c.rooms[f.Room]; r != nil && r.readyGen == gen {
			if !c.push(&Presence{Room: f.Room, Count: f.Count, Joined: f.Joined, Left: f.Left}) {
				return nil, errSlowApp
			}
		}
	case TypeError:
		se := &ServerError{Code: f.Code, Reason: f.Reason, ID: f.ID}
		cl := c.calls[f.ID]
		if cl == nil {
			c.push(&Warning{Err: se})
			return nil, nil
		}
		if cl.kind == "join" {
			r := c.rooms[cl.room]
			if r != nil && r.readyGen == gen {
				r.resync = false // a refused resync: the next gap tries again
			} else if r != nil {
				if f.Code == CodeUnavailable {
					return nil, se // try again on another connection
				}
				c.removeRoomLocked(cl.room)
			}
			if cl.done == nil {
				c.push(&Warning{Room: cl.room, Err: se})
			}
		}
		c.completeLocked(cl, nil, se)
	}
	return nil, nil
}

func (c *Client) messageLocked(gen uint64, f *Frame) ([][]byte, error) {
	r := c.rooms[f.Room]
	if r == nil || r.readyGen != gen || r.resync {
		return nil, nil // not (yet) joined here, or waiting for a rejoin's replay
	}
	if r.hist {
		if f.Seq <= r.top && f.Epoch == r.epoch {
			if f.Seq <= r.last {
				return nil, c.duplicateLocked(r, f)
			}
			return nil, c.deliverLocked(r, f, f.Seq == r.top)
		}
		r.hist = false
		r.last = max(r.last, r.top)
	}
	if r.epoch == "" && r.last == 0 && f.Seq == 1 {
		r.epoch = f.Epoch // a room with no epoch yet: its first message starts one
	}
	switch {
	case f.Epoch != r.epoch:
		// The room's history restarted: rejoin from here (answered
		// recovered:false) rather than guess.
		c.stats.Gaps++
		return [][]byte{c.resyncLocked(r)}, nil
	case f.Seq <= r.last:
		return nil, c.duplicateLocked(r, f)
	case f.Seq > r.last+1:
		c.stats.Gaps++
		return [][]byte{c.resyncLocked(r)}, nil
	}
	return nil, c.deliverLocked(r, f, false)
}

func (c *Client) deliverLocked(r *roomState, f *Frame, histDone bool) error {
	if !c.push(&Message{Room: f.Room, Seq: f.Seq, Epoch: f.Epoch, TS: f.TS, From: f.From, ID: f.ID, Text: f.Text}) {
		c.stats.Overflows++
		return errSlowApp // r.last stays: the reconnect resumes at this message
	}
	r.last = f.Seq
	if histDone {
		r.hist = false
	}
	c.stats.Delivered++
	return nil
}

func (c *Client) duplicateLocked(r *roomState, f *Frame) error {
	c.stats.Duplicates++
	c.push(&Warning{Room: r.name, Err: &SequenceError{Room: r.name, Epoch: f.Epoch, Seq: f.Seq, Last: r.last}})
	return nil
}

func (c *Client) resyncLocked(r *roomState) []byte {
	r.resync = true
	return c.joinCmdLocked(r, "")
}

func (c *Client) joinedLocked(gen uint64, f *Frame, p []byte) ([][]byte, error) {
	cl := c.calls[f.ID]
	if cl != nil && cl.kind != "join" {
		return nil, protoErr(p, "joined answers a %s", cl.kind)
	}
	r := c.rooms[f.Room]
	if cl == nil && r != nil && r.joinCall != "" {
		cl = c.calls[r.joinCall] // the handshake's join answers a Join made while down
	}
	if cl != nil && cl.room != f.Room {
		return nil, protoErr(p, "joined for room %q answers a join of %q", f.Room, cl.room)
	}
	if r == nil {
		if cl != nil {
			c.completeLocked(cl, Joined{Room: f.Room}, nil)
		}
		return nil, nil // left meanwhile, or the handshake's unwanted room
	}
	if f.Recovered {
		switch {
		case !r.sinceOK:
			return nil, protoErr(p, "recovered:true answers a join without since")
		case f.Epoch != r.epoch || f.Seq < r.since:
			return nil, protoErr(p, "recovered:true at seq %d epoch %q answers since %d epoch %q", f.Seq, f.Epoch, r.since, r.epoch)
		}
	}
	rejoin := (cl == nil || cl.done == nil) && c.first == nil
	ev := &Joined{Room: f.Room, Seq: f.Seq, Epoch: f.Epoch, Recovered: f.Recovered, Count: f.Count, Rejoin: rejoin}
	if f.Recovered {
		ev.Missed = f.Seq - r.since
	}
	if !c.push(ev) {
		c.stats.Overflows++
		return nil, errSlowApp
	}
	if f.Recovered {
		r.last = r.since
	} else {
		if r.known {
			c.stats.Unrecovered++
		}
		r.epoch, r.last, r.hist = f.Epoch, f.Seq, false
		if r.asked > 0 && f.Seq > 0 {
			r.hist, r.top, r.last = true, f.Seq, 0
		}
	}
	r.known, r.resync, r.readyGen, r.history = true, false, gen, 0
	if cl != nil {
		if r.joinCall == cl.id {
			r.joinCall = ""
		}
		ev2 := *ev
		c.completeLocked(cl, ev2, nil)
	}
	if f.Room == c.qroom && c.state != Connected {
		c.state = Connected
		c.pushStateLocked(&StateChange{State: Connected})
	}
	if f.Room == c.qroom && c.first != nil {
		c.first <- nil
		c.first = nil
	}
	// The commands for this room that wait for it to be joined here, in
	// the order they were made.
	var pend []*call
	for _, cl := range c.calls {
		if cl.room == f.Room && cl.cmd != nil && cl.kind != "leave" && cl.writtenGen != gen {
			pend = append(pend, cl)
		}
	}
	slices.SortFunc(pend, func(a, b *call) int { return cmp.Compare(a.seq, b.seq) })
	var writes [][]byte
	for _, cl := range pend {
		if cl.writtenGen != 0 {
			c.stats.Resent++
		}
		cl.writtenGen = gen
		writes = append(writes, cl.cmd)
	}
	return writes, nil
}
