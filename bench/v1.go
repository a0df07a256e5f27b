// Chat protocol v1 on the bench's connections: the opt-in at the
// handshake, commands written as JSON, and server envelopes read without
// allocating (a top-level scan of the object, which is all the scenarios
// need: type, seq, epoch, text, count).

package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/gobwas/ws"
)

const (
	v1Subprotocol = "wsd.v1"
	// v1Overhead bounds what an envelope adds around a message's text: the
	// keys, a 64-byte room, the seq, epoch, ts, a key and a 64-byte id.
	v1Overhead = 512
	// ctrlSender marks a decoded v1 frame that is not a message (joined,
	// ack, presence …): never a delivery.
	ctrlSender = 0xfffe
)

var errNotV1 = errors.New("server did not choose the wsd.v1 subprotocol")

// envelope kinds a decoded v1 frame may carry.
const (
	kindMessage byte = iota + 1
	kindJoined
	kindOther
)

// jsonValue returns the raw value of key in the top-level JSON object p
// (a string's value without its quotes, still escaped), or nil. It scans
// only as far as the key: a malformed object may be reported as lacking it.
func jsonValue(p []byte, key string) []byte {
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return nil
	}
	i++
	for {
		i = skipSpace(p, i)
		if i >= len(p) || p[i] != '"' {
			return nil
		}
		ks := i + 1
		ke := skipString(p, i)
		if ke < 0 {
			return nil
		}
		k := p[ks : ke-1]
		i = skipSpace(p, ke)
		if i >= len(p) || p[i] != ':' {
			return nil
		}
		i = skipSpace(p, i+1)
		ve := skipValue(p, i)
		if ve < 0 {
			return nil
		}
		if string(k) == key {
			if p[i] == '"' {
				return p[i+1 : ve-1]
			}
			return p[i:ve]
		}
		i = skipSpace(p, ve)
		if i >= len(p) || p[i] != ',' {
			return nil
		}
		i++
	}
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at p[i] ('"').
func skipString(p []byte, i int) int {
	for i++; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at p[i].
func skipValue(p []byte, i int) int {
	if i >= len(p) {
		return -1
	}
	switch p[i] {
	case '"':
		return skipString(p, i)
	case '{', '[':
		depth := 0
		for ; i < len(p); i++ {
			switch p[i] {
			case '"':
				j := skipString(p, i)
				if j < 0 {
					return -1
				}
				i = j - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(p) && p[j] != ',' && p[j] != '}' && p[j] != ']' && p[j] != ' ' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// jsonUint is key's value as an unsigned integer.
func jsonUint(p []byte, key string) (uint64, bool) {
	v := jsonValue(p, key)
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseV1 checks one v1 envelope (already gunzipped or inflated). A
// message's text must be a payload of the run; any other type decodes as
// a frame of ctrlSender, with its kind and (joined) seq.
func parseV1(p []byte, run uint32, size int) decoded {
	switch string(jsonValue(p, "type")) {
	case "message":
		seq, ok := jsonUint(p, "seq")
		if !ok {
			return decoded{}
		}
		d := parsePayload(jsonValue(p, "text"), run, size)
		d.kind, d.envSeq = kindMessage, seq
		return d
	case "joined":
		seq, ok := jsonUint(p, "seq")
		return decoded{ok: ok, sender: ctrlSender, kind: kindJoined, envSeq: seq}
	case "error":
		return decoded{} // no scenario expects one
	case "":
		return decoded{}
	}
	return decoded{ok: true, sender: ctrlSender, kind: kindOther}
}

func gunzipCheckV1(p []byte, run uint32, size int) decoded {
	g := gunzippers.Get().(*gunzipper)
	defer gunzippers.Put(g)
	out, err := g.gunzip(p, size+v1Overhead)
	if err != nil {
		return decoded{}
	}
	return parseV1(out, run, size)
}

func inflateCheckV1(p []byte, run uint32, size int) decoded {
	return inflateWith(p, run, size, size+v1Overhead, parseV1)
}

// v1Decode decodes one data message of a v1 connection: through the memo
// for gzip and deflate frames, as the seed path does.
func (s *swarm) v1Decode(c *wsConn, op ws.OpCode, p []byte) decoded {
	size := s.o.size
	switch {
	case c.gzip && op == ws.OpBinary:
		if s.memo == nil || len(p) < 18 {
			return gunzipCheckV1(p, s.run, size)
		}
		return s.memo.lookupV1(p, s.run, size)
	case c.compressed && op == ws.OpText:
		if s.zmemo == nil {
			return inflateCheckV1(p, s.run, size)
		}
		return s.zmemo.lookupDeflateV1(p, s.run, size)
	case !c.gzip && op == ws.OpText:
		return parseV1(p, s.run, size)
	}
	return decoded{}
}

// appendSend and appendJoin append one command (the payloads the scenarios
// send are printable ASCII without quotes or backslashes, so they need no
// escaping; rooms and epochs follow the room rule).
func appendSend(b []byte, room string, text []byte) []byte {
	b = append(b, `{"type":"send","room":"`...)
	b = append(b, room...)
	b = append(b, `","text":"`...)
	b = append(b, text...)
	return append(b, `"}`...)
}

func appendJoin(b []byte, room string, since uint64, epoch string) []byte {
	b = append(b, `{"type":"join","room":"`...)
	b = append(b, room...)
	b = append(b, '"')
	if epoch != "" {
		b = append(b, `,"since":`...)
		b = strconv.AppendUint(b, since, 10)
		b = append(b, `,"epoch":"`...)
		b = append(b, epoch...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// sendText sends one chat message: the bare text on a seed connection, a
// v1 send to its first room on a v1 one.
func (c *wsConn) sendText(p []byte) error {
	if !c.v1 {
		return c.writeFrame(ws.OpText, p)
	}
	c.cmd = appendSend(c.cmd[:0], c.room, p)
	return c.writeFrame(ws.OpText, c.cmd)
}

// command writes one v1 command frame.
func (c *wsConn) command(p []byte) error { return c.writeFrame(ws.OpText, p) }

// readEnvelope reads the next data message of a v1 connection and returns
// its JSON text: gunzipped or inflated into c.ebuf, valid until the next
// read. limit bounds the text.
func (c *wsConn) readEnvelope(limit int) ([]byte, error) {
	op, p, err := c.readMessage(nil)
	if err != nil {
		return nil, err
	}
	switch {
	case c.gzip && op == ws.OpBinary:
		if env, ok := c.envs.get(p); ok {
			c.ebuf = append(c.ebuf[:0], env...)
			return c.ebuf, nil
		}
		g := gunzippers.Get().(*gunzipper)
		out, err := g.gunzip(p, limit)
		if err == nil {
			c.ebuf = append(c.ebuf[:0], out...)
			c.envs.put(p, c.ebuf)
		}
		gunzippers.Put(g)
		return c.ebuf, err
	case c.compressed && op == ws.OpText:
		var out []byte
		inflateWith(p, 0, 0, limit, func(b []byte, _ uint32, _ int) decoded {
			out = append(c.ebuf[:0], b...)
			return decoded{ok: true}
		})
		if out == nil {
			return nil, errors.New("bad deflate payload")
		}
		c.ebuf = out
		return out, nil
	case op == ws.OpText:
		return p, nil
	}
	return nil, fmt.Errorf("v1: unexpected opcode %d", op)
}

// envMemo maps gzip'd frames to their envelopes, so a swarm of clients
// that all receive one shared frame (wsd gzips a broadcast, or a retained
// message for replays, once) gunzips it once: a client slower than the
// server it measures would pace the server, and a paced server spends CPU
// waking up that the figures would charge to the work. Equal bytes gunzip
// to equal envelopes, so a hit is exact. Bounded by envMemoMax entries.
type envMemo struct {
	mu sync.RWMutex
	m  map[string][]byte
}

const envMemoMax = 10000

func newEnvMemo() *envMemo { return &envMemo{m: make(map[string][]byte)} }

func (e *envMemo) get(frame []byte) ([]byte, bool) {
	if e == nil {
		return nil, false
	}
	e.mu.RLock()
	env, ok := e.m[string(frame)]
	e.mu.RUnlock()
	return env, ok
}

func (e *envMemo) put(frame, env []byte) {
	if e == nil {
		return
	}
	e.mu.Lock()
	if len(e.m) < envMemoMax {
		e.m[string(frame)] = bytes.Clone(env)
	}
	e.mu.Unlock()
}

// lookupV1 and lookupDeflateV1 are check and checkDeflate for v1
// envelopes. The gzip memo hashes with the trailer's CRC as check does.
func (g *gzipMemo) lookupV1(p []byte, run uint32, size int) decoded {
	return g.lookup(p, crcOf(p), run, size, gunzipCheckV1)
}

func (g *gzipMemo) lookupDeflateV1(p []byte, run uint32, size int) decoded {
	return g.lookup(p, hashOf(p), run, size, inflateCheckV1)
}

var errV1Refused = errors.New("v1 error envelope")

// v1Error reports an error envelope's code and reason as an error.
func v1Error(env []byte) error {
	code, _ := jsonUint(env, "code")
	return fmt.Errorf("%w %d: %s", errV1Refused, code, bytes.TrimSpace(jsonValue(env, "reason")))
}
