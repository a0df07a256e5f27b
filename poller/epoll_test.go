package poller

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The fd table: one Desc per fd until it is cleared, and only by the Desc
// that holds it; fds far apart land in chunks of their own.
func TestDescTable(t *testing.T) {
	var tb descTable
	a, b := &Desc{}, &Desc{}
	for _, fd := range []int{0, 5, descChunkSize - 1, descChunkSize, 3*descChunkSize + 7, 100000} {
		if tb.get(fd) != nil {
			t.Fatalf("fd %d: a Desc before any put", fd)
		}
		if !tb.put(fd, a) {
			t.Fatalf("fd %d: put refused on a free slot", fd)
		}
		if tb.put(fd, b) {
			t.Fatalf("fd %d: a second Desc took a held slot", fd)
		}
		tb.clear(fd, b) // not b's: stays a's
		if tb.get(fd) != a {
			t.Fatalf("fd %d: another Desc's clear emptied the slot", fd)
		}
		tb.clear(fd, a)
		if tb.get(fd) != nil || !tb.put(fd, b) || tb.get(fd) != b {
			t.Fatalf("fd %d: the slot is not reusable after its clear", fd)
		}
	}
	if tb.put(-1, a) || tb.get(-1) != nil {
		t.Fatal("a negative fd has a slot")
	}
}

// A socket whose fd number is past the table's first chunk gets its
// events; after Remove its number can be registered again by another Desc
// (as the kernel hands a closed socket's number to the next one).
func TestAddHighFdAndReuse(t *testing.T) {
	r := newReactor(t, 2)
	a, b := socketpair(t)
	high := 3*descChunkSize + 11
	if err := unix.Dup2(a, high); err != nil {
		t.Skipf("dup2 to fd %d: %v", high, err)
	}
	t.Cleanup(func() { unix.Close(high) })
	first := &recorder{}
	if err := r.Add(&first.d, high, first); err != nil {
		t.Fatal(err)
	}
	unix.Write(b, []byte("x"))
	eventually(t, "readable at a high fd", func() bool { return Event(first.events.Load())&Readable != 0 })
	if err := r.Remove(&first.d); err != nil {
		t.Fatal(err)
	}
	second := &recorder{}
	if err := r.Add(&second.d, high, second); err != nil {
		t.Fatalf("the fd again after Remove: %v", err)
	}
	unix.Write(b, []byte("y"))
	eventually(t, "the new Desc's events", func() bool { return Event(second.events.Load())&Readable != 0 })
}

// After Close, Add is refused and Remove is a no-op.
func TestAfterClose(t *testing.T) {
	r, err := New(Config{Workers: 1, Pollers: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := socketpair(t)
	rec := &recorder{}
	if err := r.Add(&rec.d, a, rec); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := r.Remove(&rec.d); err != nil {
		t.Fatalf("Remove after Close: %v", err)
	}
	if err := r.Add(&Desc{}, a, rec); err != ErrClosed {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
}
