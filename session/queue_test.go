package session

import "testing"

// A queue taken and given back costs no allocation, for a connection's
// first frames as for a burst's (write.go: the pools keep arrays, not
// slice headers that would each be boxed).
func TestQueuePoolAllocates(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	for _, n := range []int{1, smallQueue, 3 * smallQueue, largeQueue} {
		q := getQueue(n)
		q = append(q, make([]outItem, n)...) // grown as a burst would
		putQueue(q)
		got := testing.AllocsPerRun(100, func() {
			q := getQueue(n)
			q = append(q, make([]outItem, n)...)
			clear(q)
			putQueue(q[:0])
		})
		if got != 0 {
			t.Errorf("%d frames: %v allocations per queue taken and given back", n, got)
		}
	}
}
