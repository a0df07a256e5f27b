package tlswire

import (
	"testing"
	"time"
)

// CPU slots go to resuming handshakes first, in the order they woke, then
// to fresh ones newest first.
func TestCPUSlotsOrder(t *testing.T) {
	p := NewPool(1, 8)
	p.busy(&Conn{}, false) // the one slot, held
	type waiter struct {
		name     string
		resuming bool
	}
	order := []waiter{{"fresh1", false}, {"resume1", true}, {"fresh2", false}, {"resume2", true}, {"fresh3", false}}
	got := make(chan string, len(order))
	for i, w := range order {
		go func() {
			p.busy(&Conn{}, w.resuming)
			got <- w.name
			p.idle()
		}()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			p.cpu.mu.Lock()
			n := len(p.cpu.fresh) + len(p.cpu.resume)
			p.cpu.mu.Unlock()
			if n == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not queue", w.name)
			}
		}
	}
	p.idle()
	want := []string{"resume1", "resume2", "fresh3", "fresh2", "fresh1"}
	for i, w := range want {
		if g := <-got; g != w {
			t.Fatalf("slot %d went to %s, want %s", i, g, w)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		p.cpu.mu.Lock()
		free := p.cpu.free
		p.cpu.mu.Unlock()
		if free == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("free slots %d after all released, want 1", free)
		}
	}
}
