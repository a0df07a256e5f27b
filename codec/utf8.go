package codec

import (
	"encoding/binary"
	"unicode/utf8"
)

// utf8Validator validates UTF-8 incrementally, across chunk boundaries, and rejects
// at the first byte that cannot be part of a valid encoding: a text message
// split across frames, or a frame split across reads, fails as soon as the
// offending byte arrives rather than when the message completes.
//
// The zero value is ready; it is 3 bytes of state.
type utf8Validator struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // allowed range of the next continuation byte
}

// Write feeds p and reports whether everything so far can still be valid.
// A chunk that fails is rejected as a whole, before the next chunk arrives.
func (v *utf8Validator) Write(p []byte) bool {
	// Finish a character left open by the previous chunk.
	i := 0
	for v.need > 0 && i < len(p) {
		if b := p[i]; b < v.lo || b > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
		i++
	}
	p = p[i:]
	// The complete characters go to the standard library's fast path; a
	// character cut off at the end goes through the state machine.
	cut := len(p)
	for k := 1; k <= 3 && k <= len(p); k++ {
		b := p[len(p)-k]
		if b < 0x80 {
			break
		}
		if b >= 0xC0 {
			if k < seqLen(b) {
				cut = len(p) - k
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		return false
	}
	return v.step(p[cut:])
}

// seqLen is the length of the sequence a lead byte announces (2 for the
// invalid leads 0xC0, 0xC1 and 0xF5-0xFF, which step rejects anyway).
func seqLen(b byte) int {
	switch {
	case b >= 0xF0 && b <= 0xF4:
		return 4
	case b >= 0xE0 && b < 0xF0:
		return 3
	}
	return 2
}

// step is the byte-at-a-time state machine.
func (v *utf8Validator) step(p []byte) bool {
	i := 0
	for i < len(p) {
		if v.need > 0 {
			b := p[i]
			if b < v.lo || b > v.hi {
				return false
			}
			v.need--
			v.lo, v.hi = 0x80, 0xBF
			i++
			continue
		}
		// ASCII runs, eight bytes at a time.
		for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
			i += 8
		}
		if i >= len(p) {
			break
		}
		b := p[i]
		i++
		switch {
		case b < 0x80:
			continue
		case b < 0xC2: // continuation byte or overlong 2-byte lead
			return false
		case b < 0xE0:
			v.need, v.lo, v.hi = 1, 0x80, 0xBF
		case b == 0xE0: // exclude overlongs
			v.need, v.lo, v.hi = 2, 0xA0, 0xBF
		case b == 0xED: // exclude surrogates U+D800..U+DFFF
			v.need, v.lo, v.hi = 2, 0x80, 0x9F
		case b < 0xF0:
			v.need, v.lo, v.hi = 2, 0x80, 0xBF
		case b == 0xF0: // exclude overlongs
			v.need, v.lo, v.hi = 3, 0x90, 0xBF
		case b < 0xF4:
			v.need, v.lo, v.hi = 3, 0x80, 0xBF
		case b == 0xF4: // nothing above U+10FFFF
			v.need, v.lo, v.hi = 3, 0x80, 0x8F
		default:
			return false
		}
	}
	return true
}

// Complete reports whether the bytes fed so far end on a character boundary.
func (v *utf8Validator) Complete() bool { return v.need == 0 }

// Reset forgets any partial character.
func (v *utf8Validator) Reset() { *v = utf8Validator{} }
