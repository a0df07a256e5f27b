package poller

import "sync"

// Task is a unit of work for the worker pool.
type Task interface{ Run() }

// runQueue is a FIFO of tasks. It grows instead of blocking: a Desc or a
// shard is queued at most once at a time, so its length is bounded by the
// number of connections plus shards, and a worker that schedules more work
// can never deadlock against a full queue.
type runQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []Task // ring buffer
	head   int
	n      int
	closed bool
	idle   int // workers waiting
}

func newRunQueue() *runQueue {
	q := &runQueue{items: make([]Task, 256)}
	q.cond.L = &q.mu
	return q
}

func (q *runQueue) push(t Task) {
	q.mu.Lock()
	if q.n == len(q.items) {
		grown := make([]Task, 2*len(q.items))
		for i := 0; i < q.n; i++ {
			grown[i] = q.items[(q.head+i)%len(q.items)]
		}
		q.items, q.head = grown, 0
	}
	q.items[(q.head+q.n)%len(q.items)] = t
	q.n++
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
	for q.n == 0 {
		if q.closed {
			q.mu.Unlock()
			return nil
		}
		q.idle++
		q.cond.Wait()
		q.idle--
	}
	t := q.items[q.head]
	q.items[q.head] = nil
	q.head = (q.head + 1) % len(q.items)
	q.n--
	q.mu.Unlock()
	return t
}

func (q *runQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

func (q *runQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
