package wstest

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// V1Subprotocol is the WebSocket subprotocol a chat protocol v1 client
// offers.
const V1Subprotocol = "wsd.v1"

// V1Deflate is the permessage-deflate offer a V1 client makes with
// V1Options.Deflate. With no context takeover either way, every server
// message inflates on its own.
const V1Deflate = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// V1Via says how a V1 client opts in to v1.
type V1Via int

const (
	ViaSubprotocol V1Via = iota // Sec-WebSocket-Protocol: wsd.v1 (what a browser does)
	ViaQuery                    // proto=v1 in the query
	ViaBoth                     // both at once
)

// V1Options is how TryDialV1 connects.
type V1Options struct {
	// Query is the handshake's query without the leading '?', e.g.
	// "specialKey=alice&room=lobby&since=41&epoch=k3q7zt2a".
	Query string
	Via   V1Via
	// Gzip adds support_gzip=1: the server sends envelopes gzip'd in binary
	// frames and the client sends its commands the same way.
	Gzip bool
	// Deflate offers V1Deflate. Commands still go uncompressed (RFC 7692
	// lets a client leave RSV1 clear); server frames with RSV1 are inflated.
	Deflate bool
	// Header holds extra request headers (Origin, Authorization …).
	Header http.Header
	// Dialer, when set, makes the TCP connection (socket options).
	Dialer *net.Dialer
}

// V1 is a chat protocol v1 client on a raw Client: it writes commands as
// JSON and reads server frames as decoded Envelopes, one at a time.
type V1 struct {
	*Client
	// Gzip: commands are sent gzip'd in binary frames.
	Gzip bool
	// Deflate: permessage-deflate was agreed.
	Deflate bool
}

// Envelope is one server frame of v1, decoded. A field the frame does not
// carry is its zero value; Raw tells absent from zero when that matters
// (Has does it for a top-level key).
type Envelope struct {
	Type      string   `json:"type"`
	Room      string   `json:"room"`
	Seq       uint64   `json:"seq"`
	Epoch     string   `json:"epoch"`
	TS        int64    `json:"ts"`
	From      string   `json:"from"`
	ID        string   `json:"id"`
	Text      string   `json:"text"`
	Recovered bool     `json:"recovered"`
	Count     int      `json:"count"`
	Members   []string `json:"members"`
	Truncated bool     `json:"truncated"`
	Joined    []string `json:"joined"`
	Left      []string `json:"left"`
	Code      int      `json:"code"`
	Reason    string   `json:"reason"`
	Duplicate bool     `json:"duplicate"`

	// Raw is the JSON text as received (after gunzip or inflate).
	Raw string `json:"-"`
	// Op is the frame's opcode: text, or binary for a gzip client.
	Op ws.OpCode `json:"-"`
}

// Has reports whether the envelope's JSON object has the top-level key.
func (e *Envelope) Has(key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(e.Raw), &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

// String is the raw JSON, for test failure messages.
func (e Envelope) String() string { return e.Raw }

// CloseError is what V1's reads return when the server closes: its code.
type CloseError struct{ Code int }

func (e *CloseError) Error() string { return fmt.Sprintf("closed with %d", e.Code) }

// DialV1 connects a v1 client to ws://addr/?query offering the wsd.v1
// subprotocol, checks that the server chose it, and closes it when the
// test ends. It fails the test on error.
func DialV1(t testing.TB, addr, query string) *V1 {
	t.Helper()
	return DialV1With(t, addr, V1Options{Query: query})
}

// DialV1With is DialV1 with options.
func DialV1With(t testing.TB, addr string, o V1Options) *V1 {
	t.Helper()
	c, status, err := TryDialV1(addr, o)
	if err != nil {
		t.Fatalf("v1 dial %s/?%s: %v (status %d)", addr, o.Query, err, status)
	}
	t.Cleanup(func() { c.Conn.Close() })
	return c
}

// TryDialV1 is DialV1With without a test: it returns the HTTP status on
// refusal, and an error when the server upgrades without agreeing to what
// was offered (the subprotocol, or deflate).
func TryDialV1(addr string, o V1Options) (*V1, int, error) {
	q := o.Query
	add := func(kv string) {
		if q != "" {
			q += "&"
		}
		q += kv
	}
	if o.Via == ViaQuery || o.Via == ViaBoth {
		add("proto=v1")
	}
	if o.Gzip {
		add("support_gzip=1")
	}
	h := http.Header{}
	for k, vs := range o.Header {
		h[k] = append([]string(nil), vs...)
	}
	if o.Via == ViaSubprotocol || o.Via == ViaBoth {
		h.Set("Sec-WebSocket-Protocol", V1Subprotocol)
	}
	if o.Deflate {
		h.Set("Sec-WebSocket-Extensions", V1Deflate)
	}
	d := o.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: DefaultTimeout}
	}
	c, status, err := TryDialWith(d, addr, "/?"+q, h)
	if err != nil {
		return nil, status, err
	}
	if h.Get("Sec-WebSocket-Protocol") != "" && c.Protocol != V1Subprotocol {
		c.Conn.Close()
		return nil, status, fmt.Errorf("server chose subprotocol %q, not %q", c.Protocol, V1Subprotocol)
	}
	deflate := strings.HasPrefix(c.Extensions, "permessage-deflate")
	if o.Deflate && !deflate {
		c.Conn.Close()
		return nil, status, fmt.Errorf("deflate offered, server answered extensions %q", c.Extensions)
	}
	return &V1{Client: c, Gzip: o.Gzip, Deflate: deflate}, status, nil
}

// Command writes one command frame: v marshalled as JSON (a string or
// []byte is sent as it is, to send malformed commands), gzip'd in a binary
// frame when the client is a gzip one.
func (c *V1) Command(v any) error {
	var p []byte
	switch v := v.(type) {
	case string:
		p = []byte(v)
	case []byte:
		p = v
	default:
		var err error
		if p, err = json.Marshal(v); err != nil {
			return err
		}
	}
	if c.Gzip {
		return c.WriteFrame(true, ws.OpBinary, Gzip(string(p)))
	}
	return c.WriteFrame(true, ws.OpText, p)
}

type v1Send struct {
	Type string `json:"type"`
	Room string `json:"room"`
	ID   string `json:"id,omitempty"`
	Text string `json:"text"`
}

type v1Join struct {
	Type    string  `json:"type"`
	Room    string  `json:"room"`
	ID      string  `json:"id,omitempty"`
	Since   *uint64 `json:"since,omitempty"`
	Epoch   string  `json:"epoch,omitempty"`
	History *int    `json:"history,omitempty"`
}

type v1Room struct {
	Type string `json:"type"`
	Room string `json:"room"`
	ID   string `json:"id,omitempty"`
}

// Send sends text to room; id "" sends no id (a send that is not
// idempotent).
func (c *V1) Send(room, id, text string) error {
	return c.Command(v1Send{Type: "send", Room: room, ID: id, Text: text})
}

// Join joins room from since in epoch; epoch "" is a join without a
// position (live only, recovered:false).
func (c *V1) Join(room string, since uint64, epoch string) error {
	j := v1Join{Type: "join", Room: room}
	if epoch != "" {
		j.Since, j.Epoch = &since, epoch
	}
	return c.Command(j)
}

// JoinHistory joins room asking for its last k messages.
func (c *V1) JoinHistory(room string, k int) error {
	return c.Command(v1Join{Type: "join", Room: room, History: &k})
}

// Leave leaves room.
func (c *V1) Leave(room string) error { return c.Command(v1Room{Type: "leave", Room: room}) }

// Members asks for room's member list.
func (c *V1) Members(room string) error { return c.Command(v1Room{Type: "members", Room: room}) }

// Read reads the next server frame within timeout and decodes it, skipping
// pings and pongs and joining fragments. A close frame is a *CloseError.
func (c *V1) Read(timeout time.Duration) (Envelope, error) {
	deadline := time.Now().Add(timeout)
	var msg []byte
	var op ws.OpCode
	var compressed bool
	for {
		f, err := c.ReadFrame(time.Until(deadline))
		if err != nil {
			return Envelope{}, err
		}
		switch f.Op {
		case ws.OpPing, ws.OpPong:
			continue
		case ws.OpClose:
			return Envelope{}, &CloseError{Code: f.CloseCode()}
		case ws.OpText, ws.OpBinary:
			if msg != nil {
				return Envelope{}, errors.New("data frame inside a fragmented message")
			}
			op, compressed, msg = f.Op, f.Rsv&4 != 0, f.Payload
		case ws.OpContinuation:
			if msg == nil {
				return Envelope{}, errors.New("continuation frame without a message")
			}
			msg = append(msg, f.Payload...)
		default:
			return Envelope{}, fmt.Errorf("opcode %d from the server", f.Op)
		}
		if f.Fin {
			break
		}
	}
	if compressed {
		if !c.Deflate {
			return Envelope{}, errors.New("RSV1 set without permessage-deflate")
		}
		p, err := Inflate(msg)
		if err != nil {
			return Envelope{}, fmt.Errorf("inflating: %w", err)
		}
		msg = p
	}
	if op == ws.OpBinary {
		s, err := Gunzip(msg)
		if err != nil {
			return Envelope{}, fmt.Errorf("binary frame is not gzip: %w", err)
		}
		msg = []byte(s)
	}
	return DecodeEnvelope(msg, op)
}

// DecodeEnvelope decodes one v1 server frame's JSON text; it refuses text
// that is not one JSON object with a type.
func DecodeEnvelope(p []byte, op ws.OpCode) (Envelope, error) {
	e := Envelope{Raw: string(p), Op: op}
	dec := json.NewDecoder(bytes.NewReader(p))
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("envelope %.200q: %w", p, err)
	}
	if dec.More() {
		return e, fmt.Errorf("envelope %.200q: data after the object", p)
	}
	if e.Type == "" {
		return e, fmt.Errorf("envelope %.200q has no type", p)
	}
	return e, nil
}

// ReadUntil reads envelopes until one of type typ, within timeout overall,
// and returns it with the envelopes read before it.
func (c *V1) ReadUntil(typ string, timeout time.Duration) (Envelope, []Envelope, error) {
	deadline := time.Now().Add(timeout)
	var before []Envelope
	for {
		e, err := c.Read(time.Until(deadline))
		if err != nil {
			return e, before, fmt.Errorf("waiting for %q after %d envelopes: %w", typ, len(before), err)
		}
		if e.Type == typ {
			return e, before, nil
		}
		before = append(before, e)
	}
}

// Expect reads the next envelope within DefaultTimeout and fails the test
// unless it is of type typ.
func (c *V1) Expect(t testing.TB, typ string) Envelope {
	t.Helper()
	e, err := c.Read(DefaultTimeout)
	if err != nil {
		t.Fatalf("waiting for %q: %v", typ, err)
	}
	if e.Type != typ {
		t.Fatalf("want a %q envelope, got %s", typ, e.Raw)
	}
	return e
}

// ExpectUntil is ReadUntil within DefaultTimeout that fails the test on
// error; the envelopes skipped are dropped.
func (c *V1) ExpectUntil(t testing.TB, typ string) Envelope {
	t.Helper()
	e, _, err := c.ReadUntil(typ, DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// ExpectNone fails the test if an envelope arrives within d (a read
// timeout is the pass).
func (c *V1) ExpectNone(t testing.TB, d time.Duration) {
	t.Helper()
	e, err := c.Read(d)
	if err == nil {
		t.Fatalf("want nothing for %v, got %s", d, e.Raw)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want nothing for %v, got %v", d, err)
	}
}

// Inflate returns the inflation of one permessage-deflate message (RFC
// 7692 §7.2.2: the payload lacks the final empty block's 00 00 ff ff).
func Inflate(p []byte) ([]byte, error) {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	defer r.Close()
	return io.ReadAll(r)
}
