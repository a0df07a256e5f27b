package codec

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

var utf8Cases = []string{
	"", "hello", "κόσμε", "你好, world", "\U0001F600 emoji", "\x00\x7f",
	"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
	"\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\x80", "\xbf",
	"\xe4\xbd", "\xf0\x9f\x98", "abc\xe4\xbd\xa0def", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xff", "aaaaaaaa\xe4\xbd\xa0aaaaaaaa",
}

func validIncremental(p []byte, step int) bool {
	var v UTF8
	for i := 0; i < len(p); i += step {
		if !v.Write(p[i:min(i+step, len(p))]) {
			return false
		}
	}
	return v.Complete()
}

func TestUTF8MatchesStdlib(t *testing.T) {
	for _, s := range utf8Cases {
		want := utf8.ValidString(s)
		for step := 1; step <= len(s)+1; step++ {
			if got := validIncremental([]byte(s), step); got != want {
				t.Errorf("%q in %d-byte steps: %v, want %v", s, step, got, want)
			}
		}
	}
}

// TestUTF8FailsAtTheByte: the validator rejects at the first byte that
// cannot start or continue a valid sequence, not later.
func TestUTF8FailsAtTheByte(t *testing.T) {
	for _, tc := range []struct {
		in  string
		bad int // index of the first byte that must be rejected
	}{
		{"ab\xff", 2}, {"\xf4\x90", 1}, {"\xe0\x80", 1}, {"\xed\xa0", 1}, {"\xc0", 0}, {"a\xe4\xbdz", 3},
	} {
		var v UTF8
		for i := 0; i < len(tc.in); i++ {
			ok := v.Write([]byte{tc.in[i]})
			if i < tc.bad && !ok {
				t.Errorf("%q rejected at byte %d, before %d", tc.in, i, tc.bad)
				break
			}
			if i == tc.bad && ok {
				t.Errorf("%q accepted byte %d", tc.in, i)
			}
			if !ok {
				break
			}
		}
	}
}

func BenchmarkUTF8(b *testing.B) {
	p := bytes.Repeat([]byte("chat message, 你好 "), 64)[:1024]
	b.Run("incremental", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for i := 0; i < b.N; i++ {
			var v UTF8
			v.Write(p)
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for i := 0; i < b.N; i++ {
			utf8.Valid(p)
		}
	})
}

func FuzzUTF8(f *testing.F) {
	for _, s := range utf8Cases {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, p []byte, step uint8) {
		if got, want := validIncremental(p, int(step%16)+1), utf8.Valid(p); got != want {
			t.Fatalf("%q: %v, stdlib %v", p, got, want)
		}
	})
}
