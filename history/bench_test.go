package history

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsd-chat/wsd/chat"
)

// chanDeliverer signals each delivery.
type chanDeliverer chan struct{}

func (c chanDeliverer) Deliver(*chat.Message) { c <- struct{}{} }
func (c chanDeliverer) Reset(string)          {}

var benchText = []byte("a chat message of about the usual length, say eighty bytes of text.....")

// BenchmarkSubmitDeliver is one message's round trip on the embedded
// server: Submit, stored, and back through the consumer to Deliver.
func BenchmarkSubmitDeliver(b *testing.B) {
	cfg := testConfig(b)
	cfg.Logf = nil
	l := openEmbedded(b, cfg)
	d := make(chanDeliverer, 1)
	if err := l.Start(d); err != nil {
		b.Fatal(err)
	}
	m := chat.Message{Room: "bench", From: "k", Text: benchText}
	done := func(chat.Stamp, bool, error) {}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		l.Submit(&m, done)
		<-d
	}
}

// BenchmarkSubmit is Submit to done, all b.N outstanding at once, over
// one room (one publish in flight, by design) and over many.
func BenchmarkSubmit(b *testing.B) {
	for _, rooms := range []int{1, 100} {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Logf, cfg.MaxPending = nil, 1<<30
			l := openEmbedded(b, cfg)
			names := make([]string, rooms)
			for i := range names {
				names[i] = fmt.Sprintf("room%d", i)
			}
			var wg sync.WaitGroup
			done := func(_ chat.Stamp, _ bool, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			}
			b.ReportAllocs()
			b.ResetTimer()
			wg.Add(b.N)
			for i := range b.N {
				l.Submit(&chat.Message{Room: names[i%rooms], From: "k", Text: benchText}, done)
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkSync is one Submit's wait for done, with nats-server's
// default fsync every 2 minutes and with SyncAlways (fsync before the
// ack). doc.go quotes it.
func BenchmarkSync(b *testing.B) {
	for _, always := range []bool{false, true} {
		b.Run(fmt.Sprintf("always=%v", always), func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Logf, cfg.SyncAlways = nil, always
			l := openEmbedded(b, cfg)
			ch := make(chan struct{}, 1)
			done := func(chat.Stamp, bool, error) { ch <- struct{}{} }
			m := chat.Message{Room: "bench", From: "k", Text: benchText}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				l.Submit(&m, done)
				<-ch
			}
		})
	}
}

// BenchmarkTwoBoxesOneRoom has two boxes writing one room as fast as
// they can: the worst case of the optimistic order. It reports the
// conflicts (each a re-read and a retry) per message.
func BenchmarkTwoBoxesOneRoom(b *testing.B) {
	cfg := testConfig(b)
	cfg.Logf, cfg.MaxPending = nil, 1<<30
	a := openEmbedded(b, cfg)
	c := secondBox(b, a, cfg)
	var wg sync.WaitGroup
	var failed atomic.Int64
	done := func(_ chat.Stamp, _ bool, err error) {
		if err != nil {
			failed.Add(1)
		}
		wg.Done()
	}
	b.ResetTimer()
	wg.Add(b.N)
	for i := range b.N {
		l := a
		if i%2 == 1 {
			l = c
		}
		l.Submit(&chat.Message{Room: "hot", From: "k", Text: benchText}, done)
	}
	wg.Wait()
	sa, sc := a.Stats(), c.Stats()
	b.ReportMetric(float64(sa.Conflicts+sc.Conflicts)/float64(b.N), "conflicts/msg")
	b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/msg")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// fillRooms stores perRoom valid records in each of rooms rooms, round
// robin, with async publishes on a fresh stream (stream seqs are then
// known in advance, so the prev chains are right without the
// expected-seq round trips Submit pays).
func fillRooms(b *testing.B, l *Log, rooms, perRoom int) {
	b.Helper()
	epoch := chat.NewEpoch()
	var futures []jetstream.PubAckFuture
	for k := range perRoom {
		for r := range rooms {
			var prev uint64
			if k > 0 {
				prev = uint64((k-1)*rooms + r + 1)
			}
			msg := &nats.Msg{
				Subject: l.subject(fmt.Sprintf("room%d", r)),
				Header:  header(uint64(k+1), epoch, time.Now().UnixMilli(), prev),
				Data:    appendBody(nil, &chat.Message{From: "k", Text: benchText}),
			}
			f, err := l.js.PublishMsgAsync(msg)
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		<-l.js.PublishAsyncComplete()
		for _, f := range futures {
			select {
			case err := <-f.Err():
				b.Fatal(err)
			case <-f.Ok():
			}
		}
		futures = futures[:0]
	}
	select {
	case <-l.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("fill did not complete")
	}
}

const readLast = 50

// BenchmarkRead is Read of a room's last 50 messages with 1k and 10k
// rooms of 50 in one stream: direct gets walking the prev pointers.
func BenchmarkRead(b *testing.B) {
	for _, rooms := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			l := benchReadLog(b, rooms)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				n := 0
				info, err := l.Read(fmt.Sprintf("room%d", rand.IntN(rooms)), 0, readLast, func(*chat.Message) { n++ })
				if err != nil || n != readLast || info.Len != readLast {
					b.Fatalf("read %d, %+v, %v", n, info, err)
				}
			}
		})
	}
}

// BenchmarkReadConsumer is the alternative Read did not take: an ordered
// consumer filtered on the room's subject, fetching its 50.
func BenchmarkReadConsumer(b *testing.B) {
	for _, rooms := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			l := benchReadLog(b, rooms)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
					FilterSubjects: []string{l.subject(fmt.Sprintf("room%d", rand.IntN(rooms)))},
				})
				if err != nil {
					b.Fatal(err)
				}
				batch, err := cons.Fetch(readLast, jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for m := range batch.Messages() {
					if _, err := parseRecord(m.Headers(), m.Data(), DefaultMaxText); err == nil {
						n++
					}
				}
				if n != readLast {
					b.Fatalf("fetched %d", n)
				}
			}
		})
	}
}

// readLogs are the read benchmarks' Logs, kept across their runs (a
// b.TempDir would be removed after the first) and closed by TestMain.
var (
	readLogs = map[int]*Log{}
	readDirs []string
)

// benchReadLog is a Log with rooms rooms of readLast messages, made once
// per size for all the read benchmarks of a run.
func benchReadLog(b *testing.B, rooms int) *Log {
	if l := readLogs[rooms]; l != nil {
		return l
	}
	dir, err := os.MkdirTemp("", "wsd-history-bench-")
	if err != nil {
		b.Fatal(err)
	}
	readDirs = append(readDirs, dir)
	cfg := Config{Dir: dir, MaxMsgsPerRoom: readLast}
	l, err := OpenEmbedded(cfg)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	fillRooms(b, l, rooms, readLast)
	b.Logf("filled %d rooms x %d in %v", rooms, readLast, time.Since(t0))
	readLogs[rooms] = l
	return l
}

// nopDeliverer takes deliveries and drops them.
type nopDeliverer struct{}

func (nopDeliverer) Deliver(*chat.Message) {}
func (nopDeliverer) Reset(string)          {}

// BenchmarkRestart is a box's restart on a full store: OpenEmbedded (the
// embedded server recovering its files), Start and the first Read, of a
// store holding 1,000,000 messages of about 80 B in 1,000 rooms (filled
// once, in a temporary directory removed at the end). doc.go and
// docs/performance.md quote it; run it alone, it writes some 210 MB:
//
//	go test -run x -bench BenchmarkRestart -benchtime 5x ./history
func BenchmarkRestart(b *testing.B) {
	const rooms, perRoom = 1000, 1000
	cfg := Config{Dir: restartStore(b, rooms, perRoom), MaxMsgsPerRoom: perRoom}
	var open, start, first time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		l, err := OpenEmbedded(cfg)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := l.Start(nopDeliverer{}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		n := 0
		info, err := l.Read(fmt.Sprintf("room%d", rand.IntN(rooms)), 0, DefaultMaxMsgsPerRoom, func(*chat.Message) { n++ })
		if err != nil || n != DefaultMaxMsgsPerRoom || info.Seq != perRoom {
			b.Fatalf("first read: %d, %+v, %v", n, info, err)
		}
		t3 := time.Now()
		open, start, first = open+t1.Sub(t0), start+t2.Sub(t1), first+t3.Sub(t2)
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(per(open), "ms-open")
	b.ReportMetric(per(start), "ms-start")
	b.ReportMetric(per(first), "ms-first-read")
}

// restartDir is BenchmarkRestart's store, filled once per run (removed by
// TestMain).
var restartDir string

func restartStore(b *testing.B, rooms, perRoom int) string {
	if restartDir != "" {
		return restartDir
	}
	dir, err := os.MkdirTemp("", "wsd-history-restart-")
	if err != nil {
		b.Fatal(err)
	}
	readDirs = append(readDirs, dir)
	l, err := OpenEmbedded(Config{Dir: dir, MaxMsgsPerRoom: perRoom})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	fillRooms(b, l, rooms, perRoom)
	filled := time.Since(t0)
	l.Close()
	var size int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	b.Logf("filled %d rooms x %d in %v: %d MB on disk", rooms, perRoom, filled.Round(time.Millisecond), size>>20)
	restartDir = dir
	return dir
}
