package poller

import "sync"

// Task is a unit of work for the worker pool.
type Task interface{ Run() }

// runQueue holds two FIFOs: socket readiness (Desc runs) and bulk tasks
// (fan-out). Workers take readiness first: reading the next message while
// a broadcast is still being fanned out lets the fan-out find several
// frames per member and write them with one writev. To keep bulk work from
// starving under a flood of readiness, a worker takes a bulk task after
// maxReadyStreak readiness runs in a row.
//
// Both FIFOs grow instead of blocking: a Desc or a shard is queued at most
// once at a time, so their lengths are bounded by the number of sockets
// plus shards, and a worker that schedules more work can never deadlock
// against a full queue.
type runQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	ready  ring
	bulk   ring
	streak int // readiness runs taken in a row while bulk work waited
	closed bool
	idle   int // workers waiting
}

const maxReadyStreak = 32

type ring struct {
	items []Task
	head  int
	n     int
}

func (r *ring) push(t Task) {
	if r.n == len(r.items) {
		grown := make([]Task, max(2*len(r.items), 64))
		for i := 0; i < r.n; i++ {
			grown[i] = r.items[(r.head+i)%len(r.items)]
		}
		r.items, r.head = grown, 0
	}
	r.items[(r.head+r.n)%len(r.items)] = t
	r.n++
}

func (r *ring) pop() Task {
	t := r.items[r.head]
	r.items[r.head] = nil
	r.head = (r.head + 1) % len(r.items)
	r.n--
	return t
}

func newRunQueue() *runQueue {
	q := &runQueue{}
	q.cond.L = &q.mu
	return q
}

// push queues t; ready marks socket readiness, which runs first.
func (q *runQueue) push(t Task, ready bool) {
	q.mu.Lock()
	if ready {
		q.ready.push(t)
	} else {
		q.bulk.push(t)
	}
	wake := q.idle > 0
	q.mu.Unlock()
	if wake {
		q.cond.Signal()
	}
}

// pop blocks until a task is available; it returns nil once the queue is
// closed and empty.
func (q *runQueue) pop() Task {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.ready.n == 0 && q.bulk.n == 0 {
		if q.closed {
			return nil
		}
		q.idle++
		q.cond.Wait()
		q.idle--
	}
	if q.ready.n > 0 && (q.bulk.n == 0 || q.streak < maxReadyStreak) {
		if q.bulk.n > 0 {
			q.streak++
		}
		return q.ready.pop()
	}
	q.streak = 0
	return q.bulk.pop()
}

func (q *runQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
