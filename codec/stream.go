package codec

import (
	"sync"

	"github.com/gobwas/ws"
)

// Handler receives what a Stream decodes. The payload slices are only valid
// until the method returns: they point into the caller's read buffer or a
// pooled message buffer.
type Handler interface {
	// OnMessage is called once per complete text or binary message. Text has
	// already been checked to be valid UTF-8.
	OnMessage(op OpCode, payload []byte) error
	// OnControl is called once per ping, pong or close frame. A close
	// payload has already been validated (code and UTF-8 reason).
	OnControl(op OpCode, payload []byte) error
}

// InflateLimiter may be implemented by a Handler to bound how far a
// permessage-deflate message may inflate by its compressed size (a ratio
// rule), below Feed's max: InflateLimit returns the most bytes the
// compressed payload of n bytes may inflate to. Past a limit below max the
// message fails with ErrInflateRatio; past max, with ErrDeflateTooBig.
type InflateLimiter interface {
	InflateLimit(n int) int
}

// Stream decodes client frames incrementally and assembles messages. The
// zero value is ready to use. A Stream is not safe for concurrent use; wsd
// guarantees one reader per connection at a time.
type Stream struct {
	hdr  [maxHeaderSize]byte // a header that arrived in pieces
	nhdr uint8

	inFrame   bool
	inMessage bool
	fin       bool
	op        OpCode // opcode of the current frame
	msgOp     OpCode // opcode of the current message (text or binary)
	maskPos   uint8
	mask      [4]byte
	frames    uint32 // frame headers parsed since TakeFrames (fits the padding: no growth)
	left      int64  // payload bytes of the current frame not yet seen
	msgLen    int64  // payload bytes of the current message so far
	utf8      utf8Validator

	// permessage-deflate, once negotiated (SetDeflate).
	deflate    bool
	compressed bool  // the current message has RSV1 set
	ctxBits    uint8 // the client's window if it takes over its context, else 0
	window     dictWindow

	msg *[]byte // pooled; set only while a message spans frames or reads
	ctl *[]byte // pooled; set only while a control frame spans reads
}

// SetDeflate makes the stream accept messages compressed with the
// negotiated permessage-deflate p (RSV1 on their first frame): they are
// inflated under the message cap before the Handler sees them. A zero p
// turns it off again.
func (s *Stream) SetDeflate(p DeflateParams) {
	s.deflate = p.Enabled
	s.ctxBits = p.ClientWindowBits
	s.window.Reset()
}

// Feed decodes p, calling h for each complete message or control frame.
// Payload bytes in p are unmasked in place. max caps a message's total
// payload; a frame whose declared length would pass it fails with
// ErrMessageTooBig before any of its payload is buffered.
//
// A non-nil error is either a *CloseError from the protocol checks or an
// error returned by h; either way the connection must not be fed again.
func (s *Stream) Feed(p []byte, h Handler, max int64) error {
	for len(p) > 0 {
		if !s.inFrame {
			var (
				hd Header
				n  int
			)
			if s.nhdr == 0 {
				if hd, n = parseHeader(p); n == 0 {
					s.nhdr = uint8(copy(s.hdr[:], p))
					return nil
				}
				p = p[n:]
			} else {
				had := int(s.nhdr)
				took := copy(s.hdr[had:], p)
				if hd, n = parseHeader(s.hdr[:had+took]); n == 0 {
					s.nhdr += uint8(took)
					return nil
				}
				p = p[n-had:]
				s.nhdr = 0
			}
			if err := s.begin(&hd, max); err != nil {
				return err
			}
			if s.left == 0 {
				if err := s.payload(nil, h, max); err != nil {
					return err
				}
				continue
			}
		}
		n := int64(len(p))
		if n > s.left {
			n = s.left
		}
		chunk := p[:n]
		p = p[n:]
		ws.Cipher(chunk, s.mask, int(s.maskPos))
		s.maskPos = uint8((int(s.maskPos) + len(chunk)) & 3)
		s.left -= n
		if err := s.payload(chunk, h, max); err != nil {
			return err
		}
	}
	return nil
}

// begin validates a new frame header against RFC 6455 and the message state.
func (s *Stream) begin(h *Header, max int64) error {
	s.frames++
	switch {
	case h.Rsv != 0 && (!s.deflate || h.Rsv != 4):
		// RSV1 (4 here) is permessage-deflate's; RSV2 and RSV3 are nobody's.
		return ErrReservedBits
	case h.Rsv != 0 && h.Op != OpText && h.Op != OpBinary:
		return ErrCompressedFragment
	case !h.Masked:
		return ErrUnmasked
	case h.Length < 0:
		return ErrBadLength
	}
	switch h.Op {
	case OpClose, OpPing, OpPong:
		if !h.Fin {
			return ErrControlFragment
		}
		if h.Length > MaxControlPayload {
			return ErrControlTooLong
		}
	case OpContinuation:
		if !s.inMessage {
			return ErrUnexpectedCont
		}
		if max > 0 && h.Length > max-s.msgLen {
			return ErrMessageTooBig
		}
	case OpText, OpBinary:
		if s.inMessage {
			return ErrExpectedCont
		}
		if max > 0 && h.Length > max {
			return ErrMessageTooBig
		}
		s.inMessage = true
		s.msgOp = h.Op
		s.compressed = h.Rsv != 0
		s.msgLen = 0
		s.utf8.Reset()
	default:
		return ErrReservedOpcode
	}
	s.inFrame = true
	s.fin = h.Fin
	s.op = h.Op
	s.mask = h.Mask
	s.maskPos = 0
	s.left = h.Length
	return nil
}

// payload takes an unmasked chunk of the current frame; when the frame is
// complete it delivers the control frame or, on FIN, the message.
func (s *Stream) payload(chunk []byte, h Handler, max int64) error {
	done := s.left == 0
	if done {
		s.inFrame = false
	}
	if s.op.IsControl() {
		if done && s.ctl == nil {
			return s.control(chunk, h)
		}
		if s.ctl == nil {
			s.ctl = getBuf(&ctlPool)
		}
		*s.ctl = append(*s.ctl, chunk...)
		if !done {
			return nil
		}
		err := s.control(*s.ctl, h)
		putBuf(&ctlPool, s.ctl)
		s.ctl = nil
		return err
	}

	s.msgLen += int64(len(chunk))
	if s.msgOp == OpText && !s.compressed && !s.utf8.Write(chunk) {
		return ErrInvalidUTF8
	}
	last := done && s.fin
	if last && s.msg == nil {
		// The whole message arrived in this read: hand it over in place.
		return s.message(chunk, h, max)
	}
	if s.msg == nil {
		s.msg = getBuf(&msgPool)
	}
	*s.msg = append(*s.msg, chunk...)
	if !last {
		return nil
	}
	err := s.message(*s.msg, h, max)
	putBuf(&msgPool, s.msg)
	s.msg = nil
	return err
}

func (s *Stream) control(p []byte, h Handler) error {
	if s.op == OpClose {
		if _, _, err := ParseClose(p); err != nil {
			return err
		}
	}
	return h.OnControl(s.op, p)
}

func (s *Stream) message(p []byte, h Handler, max int64) error {
	s.inMessage = false
	if s.compressed {
		return s.inflate(p, h, max)
	}
	if s.msgOp == OpText && !s.utf8.Complete() {
		return ErrInvalidUTF8
	}
	return h.OnMessage(s.msgOp, p)
}

// inflate delivers a compressed message: inflated under max, checked to be
// UTF-8 if it is text, and added to the client's window if it keeps one.
func (s *Stream) inflate(p []byte, h Handler, max int64) error {
	limit := int(max)
	if max <= 0 || int64(limit) != max {
		limit = int(^uint(0) >> 1)
	}
	ratio := false
	if l, ok := h.(InflateLimiter); ok {
		if n := l.InflateLimit(len(p)); n < limit {
			limit, ratio = n, true
		}
	}
	buf := getBuf(&msgPool)
	defer putBuf(&msgPool, buf)
	out, err := inflate((*buf)[:0], p, s.window.Bytes(), limit)
	*buf = out[:0]
	if err == ErrDeflateTooBig && ratio {
		err = ErrInflateRatio
	}
	if err != nil {
		return err
	}
	if s.msgOp == OpText {
		s.utf8.Reset()
		if !s.utf8.Write(out) || !s.utf8.Complete() {
			return ErrInvalidUTF8
		}
	}
	if s.ctxBits != 0 {
		s.window.Push(out, s.ctxBits)
	}
	return h.OnMessage(s.msgOp, out)
}

// TakeFrames returns how many frames (data, continuation, control, empty
// or not) the stream has started since the last call, and counts from zero
// again. Every frame costs a parse and a handler call whatever its
// payload, so this is what a per-connection rate over the peer's work
// counts; the Handler may call it from within Feed.
func (s *Stream) TakeFrames() int {
	n := s.frames
	s.frames = 0
	return int(n)
}

// dictLen reports how many bytes of dictionary the stream holds for a
// client that takes over its compression context (at most 2^bits).
func (s *Stream) dictLen() int { return len(s.window.Bytes()) }

// buffered reports how many bytes the stream holds between Feed calls.
func (s *Stream) buffered() int {
	n := int(s.nhdr)
	if s.msg != nil {
		n += len(*s.msg)
	}
	if s.ctl != nil {
		n += len(*s.ctl)
	}
	return n
}

// Held reports the bytes of buffer the stream keeps between Feed calls:
// what a partly arrived message or control frame costs the server.
func (s *Stream) Held() int {
	n := 0
	if s.msg != nil {
		n += cap(*s.msg)
	}
	if s.ctl != nil {
		n += cap(*s.ctl)
	}
	return n
}

// Partial reports whether the stream is inside a message or a frame: the
// peer has started something it has not finished.
func (s *Stream) Partial() bool { return s.inMessage || s.inFrame || s.nhdr > 0 }

// Release returns pooled buffers; call it when the connection is done.
func (s *Stream) Release() {
	if s.msg != nil {
		putBuf(&msgPool, s.msg)
		s.msg = nil
	}
	if s.ctl != nil {
		putBuf(&ctlPool, s.ctl)
		s.ctl = nil
	}
	s.window.Reset()
}

// Buffers of messages spanning reads. Buffers that grew past maxPooledMsg
// are dropped rather than pinned in the pool by one huge message.
const maxPooledMsg = 64 << 10

var (
	msgPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
	ctlPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxControlPayload); return &b }}
)

func getBuf(p *sync.Pool) *[]byte { return p.Get().(*[]byte) }

func putBuf(p *sync.Pool, b *[]byte) {
	if cap(*b) > maxPooledMsg {
		return
	}
	*b = (*b)[:0]
	p.Put(b)
}
