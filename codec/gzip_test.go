package codec

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/wsd-chat/wsd/internal/wstest"
)

func chatJSON(n int) []byte {
	return []byte(strings.Repeat(`{"from":"alice","room":"lobby","text":"hello there, how is everyone?"}`, n/60+1)[:n])
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// gzipCases are the texts of the gzip tests, benchmarks and fuzz corpus.
var gzipCases = []struct {
	name string
	text []byte
}{
	{"empty", nil},
	{"short", []byte("hi")},
	{"chat 128", chatJSON(128)},
	{"chat 1KiB", chatJSON(1024)},
	{"utf8", []byte(strings.Repeat("你好, κόσμε ", 40))},
	{"random 100", randomBytes(100, 1)},
	{"random 200 (16-bit header)", randomBytes(200, 2)},
	{"random 70000 (64-bit header)", randomBytes(70000, 3)},
	{"zeros 70000", make([]byte, 70000)},
}

func TestAppendGzipFrame(t *testing.T) {
	testAppendGzip(t, AppendGzipFrame)
}

// A stored member is a gzip member like any other, whatever the text's
// size: one block, several (past 64 KiB), none of text.
func TestAppendGzipStoredFrame(t *testing.T) {
	testAppendGzip(t, AppendGzipStoredFrame)
	for _, n := range []int{65535, 65536, 2*65535 + 1} {
		text := randomBytes(n, uint64(n))
		frame := AppendGzipStoredFrame(nil, text)
		_, size := parseHeader(frame)
		if want := 10 + 5*((n+65534)/65535) + n + 8; len(frame)-size != want {
			t.Errorf("%d bytes stored in a %d-byte member, want %d", n, len(frame)-size, want)
		}
	}
	buf, msg := make([]byte, 0, 4096), chatJSON(200)
	if a := testing.AllocsPerRun(100, func() { buf = AppendGzipStoredFrame(buf[:0], msg) }); a != 0 {
		t.Errorf("AppendGzipStoredFrame: %v allocs", a)
	}
}

func testAppendGzip(t *testing.T, appendGzip func(dst, text []byte) []byte) {
	t.Helper()
	for _, tc := range gzipCases {
		for _, prefix := range [][]byte{nil, []byte("existing"), bytes.Repeat([]byte{0xEE}, 1000)} {
			dst := append(make([]byte, 0, len(prefix)+rand.IntN(64)), prefix...)
			out := appendGzip(dst, tc.text)
			if !bytes.Equal(out[:len(prefix)], prefix) {
				t.Fatalf("%s: dst prefix clobbered", tc.name)
			}
			frame := out[len(prefix):]
			h, size := parseHeader(frame)
			if size == 0 || !h.Fin || h.Op != OpBinary || h.Masked || h.Rsv != 0 || int(h.Length) != len(frame)-size {
				t.Fatalf("%s: bad header %+v (size %d, frame %d bytes)", tc.name, h, size, len(frame))
			}
			if size != headerSize(int(h.Length), false) {
				t.Fatalf("%s: %d-byte header for %d bytes of payload", tc.name, size, h.Length)
			}
			// The standard library inflates it to the text.
			ref, err := wstest.Gunzip(frame[size:])
			if err != nil || ref != string(tc.text) {
				t.Fatalf("%s: payload gunzips to %d bytes (%v), want %d", tc.name, len(ref), err, len(tc.text))
			}
			// And so does Gunzip.
			got, err := Gunzip(nil, frame[size:], len(tc.text))
			if err != nil || !bytes.Equal(got, tc.text) {
				t.Fatalf("%s: Gunzip: %v", tc.name, err)
			}
		}
	}
}

// TestAppendGzipFrameConcurrent: pooled writers are not shared.
func TestAppendGzipFrameConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range 200 {
				text := []byte(fmt.Sprintf("goroutine %d message %d %s", g, i, strings.Repeat("x", i)))
				buf = AppendGzipFrame(buf[:0], text)
				_, size := parseHeader(buf)
				if got, err := wstest.Gunzip(buf[size:]); err != nil || got != string(text) {
					t.Errorf("goroutine %d message %d corrupted", g, i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestGunzip(t *testing.T) {
	text := []byte(strings.Repeat("chat ", 100))
	z := wstest.Gzip(string(text))
	got, err := Gunzip(nil, z, 1000)
	if err != nil || !bytes.Equal(got, text) {
		t.Fatalf("round trip: %v", err)
	}
	got, err = Gunzip([]byte("keep:"), z, len(text))
	if err != nil || string(got) != "keep:"+string(text) {
		t.Fatalf("exactly at the limit, after dst bytes: %v", err)
	}
	if got, err := Gunzip([]byte("keep"), z, len(text)-1); err != ErrInflatedTooBig || string(got) != "keep" {
		t.Fatalf("one over the limit: %q, %v", got, err)
	}
	if got, err := Gunzip(nil, wstest.Gzip(""), 0); err != nil || len(got) != 0 {
		t.Fatalf("empty text, limit 0: %q, %v", got, err)
	}
	if _, err := Gunzip(nil, wstest.Gzip("x"), 0); err != ErrInflatedTooBig {
		t.Fatalf("1 byte, limit 0: %v", err)
	}
	two := append(append([]byte(nil), z...), z...)
	withName := func() []byte {
		var b bytes.Buffer
		w := stdgzip.NewWriter(&b)
		w.Name, w.Comment, w.Extra = "chat.txt", "a comment", []byte("extra")
		w.Write(text)
		w.Close()
		return b.Bytes()
	}()
	if got, err := Gunzip(nil, withName, 1000); err != nil || !bytes.Equal(got, text) {
		t.Fatalf("header with name, comment, extra: %v", err)
	}
	for name, in := range map[string][]byte{
		"not gzip":        []byte("plain text"),
		"empty":           nil,
		"magic only":      {0x1f, 0x8b},
		"header only":     z[:10],
		"truncated":       z[:len(z)/2],
		"no trailer":      z[:len(z)-8],
		"short trailer":   z[:len(z)-1],
		"trailing":        append(append([]byte(nil), z...), "junk"...),
		"trailing zero":   append(append([]byte(nil), z...), 0),
		"two members":     two,
		"bad crc":         append(append([]byte(nil), z[:len(z)-8]...), 0, 0, 0, 0, z[len(z)-4], z[len(z)-3], z[len(z)-2], z[len(z)-1]),
		"bad size":        append(append([]byte(nil), z[:len(z)-4]...), 0, 0, 0, 0),
		"bad method":      append([]byte{0x1f, 0x8b, 7}, z[3:]...),
		"reserved flag":   append([]byte{0x1f, 0x8b, 8, z[3] | 0x40}, z[4:]...),
		"raw deflate":     z[10 : len(z)-8],
		"corrupt deflate": append(append(append([]byte(nil), z[:10]...), 0xff, 0xff, 0xff), z[13:]...),
	} {
		if out, err := Gunzip([]byte("keep"), in, 1000); err != ErrNotGzip || string(out) != "keep" {
			t.Errorf("%s: %q, %v; want dst untouched and ErrNotGzip", name, out, err)
		}
	}
}

var (
	bombOnce sync.Once
	bomb     []byte
)

const bombSize = 100 << 20

// zipBomb is 100 MiB of zeros, gzip'd to about 100 KiB.
func zipBomb() []byte {
	bombOnce.Do(func() {
		var b bytes.Buffer
		w, _ := stdgzip.NewWriterLevel(&b, stdgzip.BestSpeed)
		zeros := make([]byte, 1<<20)
		for range bombSize >> 20 {
			w.Write(zeros)
		}
		w.Close()
		bomb = b.Bytes()
	})
	return bomb
}

// TestGunzipBomb: 100 MiB of zeros stops at the limit, having allocated
// about the limit, not the 100 MiB.
func TestGunzipBomb(t *testing.T) {
	z := zipBomb()
	Gunzip(nil, wstest.Gzip("warm the pool"), 1<<20)
	checkBomb(t, z, Gunzip, ErrInflatedTooBig)
	// With room for all of it, it is just a big message.
	if testing.Short() {
		return
	}
	out, err := Gunzip(make([]byte, 0, bombSize), z, bombSize)
	if err != nil || len(out) != bombSize {
		t.Fatalf("at its size: %d bytes, %v", len(out), err)
	}
	if _, err := Gunzip(out[:0], z, bombSize-1); err != ErrInflatedTooBig {
		t.Fatalf("one under its size: %v", err)
	}
}

func BenchmarkAppendGzipFrame(b *testing.B) {
	for _, n := range []int{128, 1024} {
		msg := chatJSON(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				buf = AppendGzipFrame(buf[:0], msg)
			}
		})
		b.Run(fmt.Sprint("stored/", n), func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				buf = AppendGzipStoredFrame(buf[:0], msg)
			}
		})
	}
}

func BenchmarkGunzip(b *testing.B) {
	for _, n := range []int{128, 1024} {
		z := wstest.Gzip(string(chatJSON(n)))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				var err error
				if buf, err = Gunzip(buf[:0], z, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzGunzip: never panics, never returns more than limit bytes, and
// agrees with the standard library on what is one well-formed gzip member.
func FuzzGunzip(f *testing.F) {
	for _, tc := range gzipCases {
		if len(tc.text) < 2000 {
			f.Add(wstest.Gzip(string(tc.text)), uint16(len(tc.text)))
			f.Add(wstest.Gzip(string(tc.text)), uint16(len(tc.text)/2))
		}
	}
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, uint16(5))
	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		out, err := Gunzip([]byte("dst"), in, int(limit))
		if !bytes.HasPrefix(out, []byte("dst")) {
			t.Fatal("dst clobbered")
		}
		out = out[3:]
		if len(out) > int(limit) {
			t.Fatalf("%d bytes out over limit %d", len(out), limit)
		}
		if err != nil && len(out) != 0 {
			t.Fatalf("%d bytes out with %v", len(out), err)
		}
		// The reference: the standard library, one member, nothing after it.
		want, werr := wstest.Gunzip(in)
		ok := werr == nil
		if len(in) > 3 && in[3]&0xE0 != 0 {
			// RFC 1952 2.3.1.2: a reserved FLG bit must fail. The
			// standard library ignores them; Gunzip refuses.
			ok = false
		}
		switch {
		case err == nil:
			if !ok || string(out) != want {
				t.Fatalf("Gunzip accepted what the standard library does not (ok %v) or differs", ok)
			}
		case err == ErrInflatedTooBig:
			// The limit may cut a member off before its corruption shows.
			if ok && len(want) <= int(limit) {
				t.Fatalf("ErrInflatedTooBig for %d bytes, limit %d", len(want), limit)
			}
		case err == ErrNotGzip:
			if ok && len(want) <= int(limit) {
				t.Fatalf("ErrNotGzip for a member the standard library inflates to %d bytes", len(want))
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// TestGzipAllocs: AppendGzipFrame and Gunzip reuse pooled writers and
// readers; with room in dst they allocate nothing.
func TestGzipAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	for _, n := range []int{128, 1024} {
		msg := chatJSON(n)
		buf := make([]byte, 0, 4096)
		if a := testing.AllocsPerRun(200, func() { buf = AppendGzipFrame(buf[:0], msg) }); a != 0 {
			t.Errorf("AppendGzipFrame of %d bytes: %v allocs", n, a)
		}
		z := wstest.Gzip(string(msg))
		if a := testing.AllocsPerRun(200, func() {
			var err error
			if buf, err = Gunzip(buf[:0], z, 1<<20); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("Gunzip of %d bytes: %v allocs", n, a)
		}
	}
}

// A compressor outlives collections: a broadcast after a storm of
// allocation (many collections, no broadcast) builds no new one (~500 KB).
func TestGzipWriterOutlivesCollections(t *testing.T) {
	msg, buf := chatJSON(128), make([]byte, 0, 4096)
	buf = AppendGzipFrame(buf[:0], msg)
	for range 3 {
		runtime.GC()
	}
	// (Not AllocsPerRun: its warm-up call would build it.)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	buf = AppendGzipFrame(buf[:0], msg)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1024 {
		t.Errorf("AppendGzipFrame after collections allocated %d bytes (a new compressor)", n)
	}
}
