package session

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIovec bounds one writev (IOV_MAX is 1024 on Linux): room for a v1
// join of the default -history-size, its 101, joined and 100 replayed
// messages, in one call (hold). The pooled array is 2 KiB.
const maxIovec = 128

// iovecs is scratch space for one writev; taken from a pool for the call.
type iovecs struct{ v [maxIovec]unix.Iovec }

var iovecPool = sync.Pool{New: func() any { return new(iovecs) }}

// writev writes as much of the first maxIovec items as fd takes in one
// write or writev and returns the byte count; n is 0 with EAGAIN.
func writev(fd int, items []outItem) (n int, err error) {
	if len(items) > maxIovec {
		items = items[:maxIovec]
	}
	if len(items) == 1 {
		n, err = unix.Write(fd, items[0].b)
		return max(n, 0), err
	}
	iv := iovecPool.Get().(*iovecs)
	for i := range items {
		iv.v[i].Base = unsafe.SliceData(items[i].b)
		iv.v[i].SetLen(len(items[i].b))
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd),
			uintptr(unsafe.Pointer(&iv.v[0])), uintptr(len(items)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			n, err = 0, e
		} else {
			n = int(r)
		}
		break
	}
	clear(iv.v[:len(items)])
	iovecPool.Put(iv)
	return n, err
}
