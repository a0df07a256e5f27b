package codec

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// utf8Cases are shared by the tests, the benchmarks and the fuzz corpus.
var utf8Cases = []string{
	"", "hello", "κόσμε", "你好, world", "\U0001F600 emoji", "\x00\x7f",
	"\xc0\x80", "\xc1\xbf", "\xc2\x80", "\xdf\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xe0\xa0\x80",
	"\xed\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xee\x80\x80",
	"\xf0\x8f\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80",
	"\xff", "\xfe", "\x80", "\xbf", "\xe4\xbd", "\xf0\x9f\x98", "abc\xe4\xbd\xa0def", "\xef\xbf\xbf", "\xef\xbf\xbd",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xff", "aaaaaaaa\xe4\xbd\xa0aaaaaaaa", "aaaaaaa\xf0\x9f\x98\x80aaaaaaaa\xf0\x9f\x98",
	"\xe4\xbd\xa0\xa0", "a\x80b", "\xc3\x28", "\xa0\xa1", "\xe2\x28\xa1", "\xe2\x82\x28", "\xf0\x28\x8c\xbc", "\xf0\x90\x28\xbc",
}

// validIncremental feeds p to a utf8Validator in chunks cut at cuts.
func validIncremental(p []byte, cuts ...int) bool {
	var v utf8Validator
	prev := 0
	for _, c := range append(cuts, len(p)) {
		if !v.Write(p[prev:c]) {
			return false
		}
		prev = c
	}
	return v.Complete()
}

func steps(n, step int) []int {
	var cuts []int
	for i := step; i < n; i += step {
		cuts = append(cuts, i)
	}
	return cuts
}

func checkUTF8(t *testing.T, p []byte) {
	t.Helper()
	want := utf8.Valid(p)
	if got := validIncremental(p); got != want {
		t.Fatalf("%q whole: %v, want %v", p, got, want)
	}
	for step := 1; step < len(p); step++ {
		if got := validIncremental(p, steps(len(p), step)...); got != want {
			t.Fatalf("%q in %d-byte steps: %v, want %v", p, step, got, want)
		}
	}
	for i := 0; i <= len(p); i++ {
		if got := validIncremental(p, i); got != want {
			t.Fatalf("%q cut at %d: %v, want %v", p, i, got, want)
		}
		if len(p) <= 24 {
			for j := i; j <= len(p); j++ {
				if got := validIncremental(p, i, j); got != want {
					t.Fatalf("%q cut at %d and %d: %v, want %v", p, i, j, got, want)
				}
			}
		}
	}
}

func TestUTF8MatchesStdlib(t *testing.T) {
	for _, s := range utf8Cases {
		checkUTF8(t, []byte(s))
		// The same with ASCII around it, so the fast paths see it.
		checkUTF8(t, []byte("0123456789abcdef"+s+"0123456789abcdef"))
	}
}

// TestUTF8Exhaustive: every string of up to 2 bytes, and every 3- and
// 4-byte string over the bytes where the encoding has edges, at every cut.
func TestUTF8Exhaustive(t *testing.T) {
	for a := range 256 {
		checkUTF8(t, []byte{byte(a)})
		for b := range 256 {
			checkUTF8(t, []byte{byte(a), byte(b)})
		}
	}
	edges := []byte{0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff}
	for _, a := range edges {
		for _, b := range edges {
			for _, c := range edges {
				checkUTF8(t, []byte{a, b, c})
				if a >= 0xf0 && a <= 0xf4 {
					for _, d := range edges {
						checkUTF8(t, []byte{a, b, c, d})
					}
				}
			}
		}
	}
}

// TestUTF8Random: random mixes of valid characters and stray bytes, long
// enough for the word-at-a-time paths, at random cuts.
func TestUTF8Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"a", "abcdefgh", "é", "你", "\U0001F600", "\U0010FFFF", "\x80", "\xc3", "\xe4\xbd", "\xf0\x9f\x98", "\xed\xa0\x80", "\xff", "\xf4\x90"}
	for range 20000 {
		var p []byte
		for range rng.IntN(40) {
			piece := pieces[rng.IntN(len(pieces))]
			if rng.IntN(8) != 0 {
				piece = pieces[rng.IntN(6)] // mostly valid
			}
			p = append(p, piece...)
		}
		want := utf8.Valid(p)
		cuts := []int{}
		for i := 0; i < len(p); i += 1 + rng.IntN(9) {
			cuts = append(cuts, i)
		}
		if got := validIncremental(p, cuts...); got != want {
			t.Fatalf("%q cut at %v: %v, want %v", p, cuts, got, want)
		}
	}
}

// TestUTF8FailsAtTheByte: fed one byte at a time, the validator rejects at
// the first byte that cannot start or continue a valid sequence, not later.
func TestUTF8FailsAtTheByte(t *testing.T) {
	for _, tc := range []struct {
		in  string
		bad int // index of the first byte that must be rejected
	}{
		{"ab\xff", 2}, {"\xf4\x90", 1}, {"\xf4\x8f\xbf\xc0", 3}, {"\xe0\x80", 1}, {"\xe0\x9f", 1}, {"\xed\xa0", 1},
		{"\xf0\x8f", 1}, {"\xc0", 0}, {"\xc1", 0}, {"\xf5", 0}, {"\x80", 0}, {"a\xe4\xbdz", 3}, {"\xc3\xa9\xa9", 2},
	} {
		var v utf8Validator
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
		// In one chunk the same prefix is rejected too.
		var w utf8Validator
		if w.Write([]byte(tc.in[:tc.bad+1])) {
			t.Errorf("%q: prefix through byte %d accepted in one chunk", tc.in, tc.bad)
		}
	}
}

func TestUTF8CompleteAndReset(t *testing.T) {
	var v utf8Validator
	if !v.Complete() || !v.Write([]byte("a\xe4")) || v.Complete() {
		t.Fatal("a partial character is not complete")
	}
	v.Reset()
	if !v.Complete() || !v.Write([]byte("b")) || !v.Complete() {
		t.Fatal("Reset kept the partial character")
	}
	if !v.Write(nil) || !v.Complete() {
		t.Fatal("empty write")
	}
}

var utf8Bench = bytes.Repeat([]byte("chat message, 你好 "), 64)[:1024]

func BenchmarkUTF8(b *testing.B) {
	p := utf8Bench
	b.Run("utf8Validator.Write", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		b.ReportAllocs()
		for b.Loop() {
			var v utf8Validator
			v.Write(p)
		}
	})
	b.Run("utf8.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		b.ReportAllocs()
		for b.Loop() {
			utf8.Valid(p)
		}
	})
	ascii := bytes.Repeat([]byte("a"), 1024)
	b.Run("utf8Validator.Write-ascii", func(b *testing.B) {
		b.SetBytes(int64(len(ascii)))
		b.ReportAllocs()
		for b.Loop() {
			var v utf8Validator
			v.Write(ascii)
		}
	})
	b.Run("utf8.Valid-ascii", func(b *testing.B) {
		b.SetBytes(int64(len(ascii)))
		b.ReportAllocs()
		for b.Loop() {
			utf8.Valid(ascii)
		}
	})
}

// FuzzUTF8: incremental validation in any chunking equals utf8.Valid.
func FuzzUTF8(f *testing.F) {
	for _, s := range utf8Cases {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(3))
	}
	f.Add(utf8Bench, uint8(7))
	f.Fuzz(func(t *testing.T, p []byte, step uint8) {
		want := utf8.Valid(p)
		if got := validIncremental(p); got != want {
			t.Fatalf("%q whole: %v, stdlib %v", p, got, want)
		}
		if got := validIncremental(p, steps(len(p), int(step%16)+1)...); got != want {
			t.Fatalf("%q in %d-byte steps: %v, stdlib %v", p, step%16+1, got, want)
		}
		if len(p) > 0 {
			if got := validIncremental(p, int(step)%len(p)); got != want {
				t.Fatalf("%q cut at %d: %v, stdlib %v", p, int(step)%len(p), got, want)
			}
		}
	})
}
