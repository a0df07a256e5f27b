package chat

import (
	"strconv"
	"unicode/utf8"
)

// Stamp is where and when a room's log put a message: its seq in the
// room's epoch and the server time in Unix milliseconds. An ack reports it;
// a message envelope carries it.
type Stamp struct {
	Seq   uint64
	Epoch string
	TS    int64
}

// Message is one chat message as a message envelope carries it.
type Message struct {
	Room string
	Stamp
	From string // the sender's key; empty for the admin API
	ID   []byte // the sender's client message id; omitted when empty
	Text []byte // valid UTF-8 (ParseCommand and the codec checked it)
}

// AppendMessage appends the message envelope
// {"type":"message","room":R,"seq":N,"epoch":E,"ts":MS,"from":KEY,"id":CID,"text":T}
// to dst ("id" only when m.ID is not empty). It does not allocate beyond
// growing dst.
func AppendMessage(dst []byte, m *Message) []byte {
	dst = append(dst, `{"type":"message","room":`...)
	dst = appendString(dst, m.Room)
	dst = appendStamp(dst, &m.Stamp)
	dst = append(dst, `,"from":`...)
	dst = appendString(dst, m.From)
	if len(m.ID) > 0 {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, m.ID)
	}
	dst = append(dst, `,"text":`...)
	dst = appendString(dst, m.Text)
	return append(dst, '}')
}

// AppendDirect appends the direct envelope
// {"type":"direct","ts":MS,"from":KEY,"text":T} to dst: a message to one
// key rather than a room (POST /publish with "key"), so it has no room and
// no seq. from is empty for the admin API.
func AppendDirect(dst []byte, ts int64, from string, text []byte) []byte {
	dst = append(dst, `{"type":"direct","ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"from":`...)
	dst = appendString(dst, from)
	dst = append(dst, `,"text":`...)
	dst = appendString(dst, text)
	return append(dst, '}')
}

func appendStamp(dst []byte, s *Stamp) []byte {
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, s.Seq, 10)
	dst = append(dst, `,"epoch":`...)
	dst = appendString(dst, s.Epoch)
	dst = append(dst, `,"ts":`...)
	return strconv.AppendInt(dst, s.TS, 10)
}

// Ack is what a send was given: its room and stamp. Dedup keeps it so a
// repeated send is answered with the original.
type Ack struct {
	Room string
	Stamp
}

// AppendAck appends {"type":"ack","id":CID,"room":R,"seq":N,"epoch":E,"ts":MS}
// to dst, with "duplicate":true when the send repeated one already
// accepted. "id" is omitted when empty.
func AppendAck(dst []byte, id []byte, a *Ack, duplicate bool) []byte {
	dst = append(dst, `{"type":"ack"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"room":`...)
	dst = appendString(dst, a.Room)
	dst = appendStamp(dst, &a.Stamp)
	if duplicate {
		dst = append(dst, `,"duplicate":true`...)
	}
	return append(dst, '}')
}

func appendID(dst, id []byte) []byte {
	if len(id) == 0 {
		return dst
	}
	dst = append(dst, `,"id":`...)
	return appendString(dst, id)
}

// Joined is the answer to a join (and what a v1 connection gets for its
// first room): the room's latest seq and epoch, whether the asked-for
// messages follow exactly (Recovered), and the member count.
type Joined struct {
	ID        []byte // the join's id, echoed; omitted when empty
	Room      string
	Seq       uint64
	Epoch     string
	Recovered bool
	Count     int
}

// AppendJoined appends
// {"type":"joined","id":CID,"room":R,"seq":N,"epoch":E,"recovered":B,"count":C}.
func AppendJoined(dst []byte, j *Joined) []byte {
	dst = append(dst, `{"type":"joined"`...)
	dst = appendID(dst, j.ID)
	dst = append(dst, `,"room":`...)
	dst = appendString(dst, j.Room)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, j.Seq, 10)
	dst = append(dst, `,"epoch":`...)
	dst = appendString(dst, j.Epoch)
	dst = append(dst, `,"recovered":`...)
	dst = strconv.AppendBool(dst, j.Recovered)
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendInt(dst, int64(j.Count), 10)
	return append(dst, '}')
}

// AppendLeft appends {"type":"left","id":CID,"room":R}.
func AppendLeft(dst []byte, id []byte, room string) []byte {
	dst = append(dst, `{"type":"left"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"room":`...)
	dst = appendString(dst, room)
	return append(dst, '}')
}

// AppendMembers appends
// {"type":"members","id":CID,"room":R,"count":C,"members":[…],"truncated":B}:
// count is the room's whole member count, members the keys listed
// (truncated when they are fewer than count).
func AppendMembers(dst []byte, id []byte, room string, count int, members []string) []byte {
	dst = append(dst, `{"type":"members"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"room":`...)
	dst = appendString(dst, room)
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendInt(dst, int64(count), 10)
	dst = append(dst, `,"members":`...)
	dst = appendList(dst, members)
	dst = append(dst, `,"truncated":`...)
	dst = strconv.AppendBool(dst, len(members) < count)
	return append(dst, '}')
}

func appendList(dst []byte, keys []string) []byte {
	dst = append(dst, '[')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
	}
	return append(dst, ']')
}

// AppendPresence appends {"type":"presence","room":R,"count":C,"joined":[…],"left":[…]};
// when e.Lists is false (a room above the list threshold) the lists are
// left out and the frame carries the count only.
func AppendPresence(dst []byte, e *PresenceEvent) []byte {
	dst = append(dst, `{"type":"presence","room":`...)
	dst = appendString(dst, e.Room)
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendInt(dst, int64(e.Count), 10)
	if e.Lists {
		dst = append(dst, `,"joined":`...)
		dst = appendList(dst, e.Joined)
		dst = append(dst, `,"left":`...)
		dst = appendList(dst, e.Left)
	}
	return append(dst, '}')
}

// AppendError appends {"type":"error","id":CID,"code":N,"reason":S}; "id"
// is omitted when the refused command had none (or it was unreadable).
func AppendError(dst []byte, id []byte, code Code, reason string) []byte {
	dst = append(dst, `{"type":"error"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"code":`...)
	dst = strconv.AppendUint(dst, uint64(code), 10)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, reason)
	return append(dst, '}')
}

// plain marks the ASCII bytes a JSON string carries as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Quotes, backslashes and control
// characters are escaped (\n \r \t short, the rest as \u00XX), U+2028 and
// U+2029 are escaped so the frame is also safe as JavaScript source, and
// each byte of invalid UTF-8 becomes \ufffd, as encoding/json does: the
// output is always valid JSON and valid UTF-8, whatever s holds (keys come
// from query strings and are not checked).
func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, n := decodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += n
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// decodeRune decodes the first UTF-8 character of s as utf8.DecodeRune
// does (RuneError, 1 for any invalid or cut-off encoding), for strings and
// byte slices alike without converting one into the other.
func decodeRune[T string | []byte](s T) (rune, int) {
	c0 := s[0]
	var n int
	var lo, hi byte = 0x80, 0xBF
	switch {
	case c0 >= 0xC2 && c0 <= 0xDF:
		n = 2
	case c0 >= 0xE0 && c0 <= 0xEF:
		n = 3
		if c0 == 0xE0 {
			lo = 0xA0
		} else if c0 == 0xED {
			hi = 0x9F // no surrogates
		}
	case c0 >= 0xF0 && c0 <= 0xF4:
		n = 4
		if c0 == 0xF0 {
			lo = 0x90
		} else if c0 == 0xF4 {
			hi = 0x8F
		}
	default:
		return utf8.RuneError, 1
	}
	if len(s) < n {
		return utf8.RuneError, 1
	}
	if c := s[1]; c < lo || c > hi {
		return utf8.RuneError, 1
	}
	for k := 2; k < n; k++ {
		if c := s[k]; c < 0x80 || c > 0xBF {
			return utf8.RuneError, 1
		}
	}
	r := rune(c0) & (0x7F >> n)
	for k := 1; k < n; k++ {
		r = r<<6 | rune(s[k]&0x3F)
	}
	return r, n
}
