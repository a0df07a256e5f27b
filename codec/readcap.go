package codec

import (
	"errors"
	"io"
)

// readCapped appends to dst what r yields up to io.EOF, the inflate loop of
// Gunzip and inflate. It fails with tooBig as soon as the output would pass
// limit bytes (a negative limit is 0) and with bad for any other error
// from r; on failure it returns dst as it was. It never asks r for more
// than one byte past the limit, so the buffer stops growing on a
// decompression bomb once the limit is passed: a bomb costs about limit
// bytes of memory, not the bomb.
func readCapped(dst []byte, r io.Reader, limit int, tooBig, bad error) ([]byte, error) {
	limit = max(limit, 0)
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		room := cap(dst) - len(dst)
		if left := limit - (len(dst) - start); left < room {
			room = left + 1
		}
		n, err := r.Read(dst[len(dst) : len(dst)+room])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst[:start], tooBig
		}
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst[:start], bad
		}
	}
}
