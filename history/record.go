package history

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/chat"
)

// The headers of a stored message. Everything that orders it is a header
// (JetStream headers are ASCII lines); everything a client wrote is the
// body, which can hold any bytes.
const (
	hdrVersion = "Wsd-V"     // recordVersion
	hdrSeq     = "Wsd-Seq"   // the room seq, decimal, from 1
	hdrEpoch   = "Wsd-Epoch" // the room's epoch
	hdrTS      = "Wsd-Ts"    // Unix ms, the submitting box's clock
	hdrPrev    = "Wsd-Prev"  // stream seq of the room's previous message, 0 for none
)

// recordVersion is the one record format this package writes and reads.
const recordVersion = "1"

// Bounds of a record's parts, beyond cfg.MaxText for the text.
const (
	// MaxFromLen bounds a stored sender key. Keys come from the handshake;
	// this only stops a foreign writer from making a box copy megabytes.
	MaxFromLen   = 1024
	maxEpochLen  = 64
	maxHeaderLen = 512 // the headers wsd writes are < 200 bytes
)

// record is a parsed stored message; its slices alias the NATS message.
type record struct {
	seq   uint64
	epoch string
	ts    int64
	prev  uint64
	from  []byte
	id    []byte
	text  []byte
}

var (
	errVersion = errors.New("history: not a wsd record (version header)")
	errHeader  = errors.New("history: malformed record header")
	errBody    = errors.New("history: malformed record body")
	errSize    = errors.New("history: record over the size bounds")
)

// appendBody appends the body of m: uvarint len(From), From, uvarint
// len(ID), ID, then Text to the end.
func appendBody(dst []byte, m *chat.Message) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m.From)))
	dst = append(dst, m.From...)
	dst = binary.AppendUvarint(dst, uint64(len(m.ID)))
	dst = append(dst, m.ID...)
	return append(dst, m.Text...)
}

// header builds the ordering headers of a record.
func header(seq uint64, epoch string, ts int64, prev uint64) nats.Header {
	h := make(nats.Header, 8)
	h[hdrVersion] = []string{recordVersion}
	h[hdrSeq] = []string{strconv.FormatUint(seq, 10)}
	h[hdrEpoch] = []string{epoch}
	h[hdrTS] = []string{strconv.FormatInt(ts, 10)}
	h[hdrPrev] = []string{strconv.FormatUint(prev, 10)}
	return h
}

// one returns the single value of key, refusing a repeated header (a
// writer that is not wsd).
func one(h nats.Header, key string) (string, bool) {
	v := h[key]
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// parseStamp reads the ordering headers: what a conflict's re-read and a
// Read's walk need, without the body.
func parseStamp(h nats.Header) (r record, err error) {
	if v, ok := one(h, hdrVersion); !ok || v != recordVersion {
		return r, errVersion
	}
	s, ok1 := one(h, hdrSeq)
	e, ok2 := one(h, hdrEpoch)
	t, ok3 := one(h, hdrTS)
	p, ok4 := one(h, hdrPrev)
	if !ok1 || !ok2 || !ok3 || !ok4 || len(s)+len(e)+len(t)+len(p) > maxHeaderLen {
		return r, errHeader
	}
	if r.seq, err = strconv.ParseUint(s, 10, 64); err != nil || r.seq == 0 {
		return r, errHeader
	}
	if r.ts, err = strconv.ParseInt(t, 10, 64); err != nil || r.ts < 0 {
		return r, errHeader
	}
	if r.prev, err = strconv.ParseUint(p, 10, 64); err != nil {
		return r, errHeader
	}
	if !validEpoch(e) {
		return r, errHeader
	}
	r.epoch = e
	return r, nil
}

// validEpoch accepts what chat.NewEpoch makes, and any other short
// printable token (another wsd version may make longer ones).
func validEpoch(e string) bool {
	if e == "" || len(e) > maxEpochLen {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseRecord reads a whole stored message: headers, then a body bounded
// by maxText (and MaxFromLen, chat.MaxIDLen), text valid UTF-8.
func parseRecord(h nats.Header, data []byte, maxText int) (record, error) {
	r, err := parseStamp(h)
	if err != nil {
		return r, err
	}
	if len(data) > MaxFromLen+chat.MaxIDLen+maxText+2*binary.MaxVarintLen64 {
		return r, errSize
	}
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)-k) {
		return r, errBody
	}
	if n > MaxFromLen {
		return r, errSize
	}
	r.from, data = data[k:k+int(n)], data[k+int(n):]
	n, k = binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)-k) {
		return r, errBody
	}
	if n > chat.MaxIDLen {
		return r, errSize
	}
	r.id, r.text = data[k:k+int(n)], data[k+int(n):]
	if len(r.text) > maxText {
		return r, errSize
	}
	if !utf8.Valid(r.text) {
		return r, errBody
	}
	return r, nil
}

// msgID is the Nats-Msg-Id of a send with client id id from key from:
// a hash, since keys are free text and headers are not. JetStream keeps
// it for the dedup window and answers a repeat, from any box, with the
// original's stream seq.
func msgID(from string, id []byte) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(from)))])
	h.Write([]byte(from))
	h.Write(id)
	var sum [sha256.Size]byte
	return "wsd1-" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}
