package main

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
)

func zip(t testing.TB, p []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{minPayload, 256, 4096} {
		p := make([]byte, size)
		fillPayload(p, 0xdeadbeef, 7, 123456, 987654321)
		if !utf8.Valid(p) {
			t.Fatal("payload is not UTF-8")
		}
		d := parsePayload(p, 0xdeadbeef, size)
		if !d.ok || d.sender != 7 || d.seq != 123456 || d.ts != 987654321 {
			t.Fatalf("size %d: %+v", size, d)
		}
	}
}

func TestPayloadRejects(t *testing.T) {
	good := make([]byte, 64)
	fillPayload(good, 1, 2, 3, 4)
	mod := func(f func(p []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, p := range map[string][]byte{
		"short":       good[:63],
		"long":        append(append([]byte(nil), good...), 'a'),
		"padding":     mod(func(p []byte) []byte { p[60]++; return p }),
		"seq digit":   mod(func(p []byte) []byte { p[20] = 'x'; return p }),
		"separator":   mod(func(p []byte) []byte { p[14] = '-'; return p }),
		"magic":       mod(func(p []byte) []byte { p[0] = 'C'; return p }),
		"another run": mod(func(p []byte) []byte { p[8] = '2'; return p }),
		"seq changed": mod(func(p []byte) []byte { p[22] = '4'; return p }), // padding no longer matches
	} {
		if d := parsePayload(p, 1, 64); d.ok {
			t.Errorf("%s accepted: %+v", name, d)
		}
	}
}

func TestGzipCheck(t *testing.T) {
	p := make([]byte, 256)
	fillPayload(p, 9, 1, 42, 1000)
	z := zip(t, p)
	for _, memo := range []*gzipMemo{nil, newGzipMemo()} {
		for range 3 { // the memo answers the repeats
			if d := memo.check(z, 9, 256); !d.ok || d.seq != 42 {
				t.Fatalf("memo %v: %+v", memo != nil, d)
			}
		}
		bad := map[string][]byte{
			"not gzip":       p,
			"truncated":      z[:len(z)-3],
			"crc":            append(append([]byte(nil), z[:len(z)-8]...), 0, 0, 0, 0, 0, 1, 0, 0),
			"trailing bytes": append(append([]byte(nil), z...), 0),
			"two members":    append(append([]byte(nil), z...), z...),
			"wrong run":      zip(t, func() []byte { q := make([]byte, 256); fillPayload(q, 8, 1, 42, 1000); return q }()),
			"too long":       zip(t, append(append([]byte(nil), p...), 'a')),
			"empty":          {},
		}
		for name, b := range bad {
			if d := memo.check(b, 9, 256); d.ok {
				t.Errorf("memo %v: %s accepted", memo != nil, name)
			}
		}
	}
}

func TestGzipMemoBounded(t *testing.T) {
	m := newGzipMemo()
	m.max = 4
	p := make([]byte, 64)
	for seq := range uint32(len(m.shards) * m.max * 4) {
		fillPayload(p, 1, 0, seq, 0)
		if d := m.check(zip(t, p), 1, 64); !d.ok || d.seq != seq {
			t.Fatalf("seq %d: %+v", seq, d)
		}
	}
	for i := range m.shards {
		if n := len(m.shards[i].m); n > m.max {
			t.Fatalf("shard %d holds %d entries", i, n)
		}
	}
}

func BenchmarkParsePayload(b *testing.B) {
	p := make([]byte, 256)
	fillPayload(p, 1, 2, 3, 4)
	b.ReportAllocs()
	for b.Loop() {
		parsePayload(p, 1, 256)
	}
}

func BenchmarkGunzipCheck(b *testing.B) {
	p := make([]byte, 256)
	fillPayload(p, 1, 2, 3, 4)
	z := zip(b, p)
	b.ReportAllocs()
	for b.Loop() {
		gunzipCheck(z, 1, 256)
	}
}

func BenchmarkGzipMemoHit(b *testing.B) {
	p := make([]byte, 256)
	fillPayload(p, 1, 2, 3, 4)
	z := zip(b, p)
	m := newGzipMemo()
	b.ReportAllocs()
	for b.Loop() {
		m.check(z, 1, 256)
	}
}

func TestPaddingRule(t *testing.T) {
	for _, seq := range []uint32{0, 1, 25, 26, 1 << 31, 1<<32 - 1} {
		for _, size := range []int{minPayload, 300, 10000} {
			p := make([]byte, size)
			fillPayload(p, 1, 0, seq, 0)
			for i := hdrLen; i < size; i++ {
				if want := 'a' + byte((uint64(i)+uint64(seq))%26); p[i] != want {
					t.Fatalf("seq %d size %d: byte %d is %c, want %c", seq, size, i, p[i], want)
				}
			}
		}
	}
}
