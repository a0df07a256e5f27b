package poller

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// recorder counts how often it runs and checks it never runs concurrently.
type recorder struct {
	d       Desc
	running atomic.Int32
	runs    atomic.Int64
	events  atomic.Uint32
	overlap atomic.Bool
	work    func()
}

func (r *recorder) OnReady(ev Event) {
	if r.running.Add(1) != 1 {
		r.overlap.Store(true)
	}
	r.events.Or(uint32(ev))
	r.runs.Add(1)
	if r.work != nil {
		r.work()
	}
	r.running.Add(-1)
}

func newReactor(t *testing.T, workers int) *Reactor {
	t.Helper()
	r, err := New(Config{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wstest.Eventually(t, 5*time.Second, what, cond)
}

func TestAddReportsReadiness(t *testing.T) {
	r := newReactor(t, 2)
	a, b := socketpair(t)
	rec := &recorder{}
	if err := r.Add(&rec.d, a, rec); err != nil {
		t.Fatal(err)
	}
	// A fresh socket is writable at once.
	eventually(t, "writable", func() bool { return Event(rec.events.Load())&Writable != 0 })
	unix.Write(b, []byte("x"))
	eventually(t, "readable", func() bool { return Event(rec.events.Load())&Readable != 0 })
	if err := r.Add(&Desc{}, a, rec); err == nil {
		t.Error("adding the same fd twice succeeded")
	}
	if err := r.Remove(&rec.d); err != nil {
		t.Fatal(err)
	}
	before := rec.runs.Load()
	unix.Write(b, []byte("y"))
	time.Sleep(20 * time.Millisecond)
	if rec.runs.Load() != before {
		t.Error("handler ran after Remove")
	}
}

// TestHandlerNeverConcurrent hammers one Desc with notifications from many
// goroutines: the handler must never overlap itself, and a notification
// that arrives while it runs must not be lost.
func TestHandlerNeverConcurrent(t *testing.T) {
	r := newReactor(t, 4)
	rec := &recorder{work: func() { time.Sleep(10 * time.Microsecond) }}
	r.Bind(&rec.d, -1, rec)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				rec.d.Notify(Readable)
			}
		}()
	}
	wg.Wait()
	// The last notification happened after every earlier run started, so
	// at least one run must follow it.
	last := rec.runs.Load()
	rec.d.Notify(Writable)
	eventually(t, "run after the last notify", func() bool { return rec.runs.Load() > last })
	if rec.overlap.Load() {
		t.Fatal("handler ran concurrently with itself")
	}
	if rec.runs.Load() >= 16000 {
		t.Logf("no coalescing happened (%d runs)", rec.runs.Load())
	}
}

type task struct {
	wg *sync.WaitGroup
	n  *atomic.Int64
}

func (t task) Run() { t.n.Add(1); t.wg.Done() }

func TestSubmitRunsEveryTaskAndGrowsQueue(t *testing.T) {
	r := newReactor(t, 2)
	var wg sync.WaitGroup
	var n atomic.Int64
	const tasks = 10000 // far past the initial ring of 256
	wg.Add(tasks)
	for i := 0; i < tasks; i++ {
		r.Submit(task{&wg, &n})
	}
	wg.Wait()
	if n.Load() != tasks {
		t.Fatalf("%d tasks ran, want %d", n.Load(), tasks)
	}
}

func TestCloseFinishesQueuedWork(t *testing.T) {
	r, err := New(Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var n atomic.Int64
	wg.Add(100)
	for i := 0; i < 100; i++ {
		r.Submit(task{&wg, &n})
	}
	r.Close()
	if n.Load() != 100 {
		t.Fatalf("Close returned with %d of 100 tasks run", n.Load())
	}
	if err := r.Add(&Desc{}, 0, &recorder{}); err != ErrClosed {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
}

func TestDefaults(t *testing.T) {
	r := newReactor(t, 0)
	if r.Workers() < 1 || len(r.eps) != 1 {
		t.Fatalf("workers %d, pollers %d", r.Workers(), len(r.eps))
	}
}
