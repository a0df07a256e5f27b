package codec

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"strings"
	"testing"
)

func stdGzip(p []byte) []byte {
	var b bytes.Buffer
	w, _ := stdgzip.NewWriterLevel(&b, stdgzip.BestCompression)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func TestAppendGzipFrame(t *testing.T) {
	for _, text := range []string{"", "hi", strings.Repeat(`{"user":"alice","text":"hello"}`, 10), strings.Repeat("z", 70000)} {
		prefix := []byte("existing")
		out := AppendGzipFrame(append([]byte(nil), prefix...), []byte(text))
		if !bytes.HasPrefix(out, prefix) {
			t.Fatal("dst prefix clobbered")
		}
		h, size := ParseHeader(out[len(prefix):])
		if size == 0 || !h.Fin || h.Op != OpBinary || h.Masked || int(h.Length) != len(out)-len(prefix)-size {
			t.Fatalf("bad header %+v (size %d, frame %d bytes)", h, size, len(out)-len(prefix))
		}
		zr, err := stdgzip.NewReader(bytes.NewReader(out[len(prefix)+size:]))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || string(got) != text {
			t.Fatalf("payload gunzips to %d bytes (%v), want %d", len(got), err, len(text))
		}
	}
}

func TestGunzip(t *testing.T) {
	text := []byte(strings.Repeat("chat ", 100))
	got, err := Gunzip(nil, stdGzip(text), 1000)
	if err != nil || !bytes.Equal(got, text) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := Gunzip(nil, stdGzip(text), len(text)); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	if _, err := Gunzip(nil, stdGzip(text), len(text)-1); err != ErrInflatedTooBig {
		t.Fatalf("one over the limit: %v", err)
	}
	z := stdGzip(text)
	for name, in := range map[string][]byte{
		"not gzip":  []byte("plain text"),
		"empty":     nil,
		"truncated": z[:len(z)/2],
		"trailing":  append(append([]byte(nil), z...), "junk"...),
		"bad crc":   append(append([]byte(nil), z[:len(z)-8]...), 0, 0, 0, 0, 0, 0, 0, 0),
	} {
		if out, err := Gunzip([]byte("keep"), in, 1000); err != ErrNotGzip || string(out) != "keep" {
			t.Errorf("%s: %q, %v; want dst untouched and ErrNotGzip", name, out, err)
		}
	}
}

// TestGunzipBomb: 64 MiB of zeros in ~64 KiB of gzip stops at the limit.
func TestGunzipBomb(t *testing.T) {
	bomb := stdGzip(make([]byte, 64<<20))
	out, err := Gunzip(nil, bomb, 1<<20)
	if err != ErrInflatedTooBig {
		t.Fatalf("err %v, want ErrInflatedTooBig", err)
	}
	if cap(out) > 4<<20 {
		t.Fatalf("bomb grew the buffer to %d bytes", cap(out))
	}
}

func BenchmarkAppendGzipFrame(b *testing.B) {
	for _, n := range []int{128, 1024} {
		msg := []byte(strings.Repeat(`{"from":"alice","room":"lobby","text":"hello there"}`, n/50+1)[:n])
		b.Run(strings.Repeat("", 0)+map[int]string{128: "128B", 1024: "1KiB"}[n], func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for i := 0; i < b.N; i++ {
				buf = AppendGzipFrame(buf[:0], msg)
			}
		})
	}
}

func FuzzGunzip(f *testing.F) {
	f.Add(stdGzip([]byte("hello")), uint16(10))
	f.Add(stdGzip(make([]byte, 5000)), uint16(100))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, uint16(5))
	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		out, err := Gunzip(nil, in, int(limit))
		if len(out) > int(limit) {
			t.Fatalf("%d bytes out over limit %d", len(out), limit)
		}
		if err != nil && err != ErrNotGzip && err != ErrInflatedTooBig {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
