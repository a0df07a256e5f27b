// Package rsswatch reads a process's resident memory (VmRSS in
// /proc/PID/status) and watches its peak while something is done to the
// process. The load client (bench hostile) and cmd/wsd's hostile tests
// both bound wsd's memory under attack with it; it imports nothing of
// wsd and not package testing, so a command can use it as well as a test.
package rsswatch

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Parse returns VmRSS in bytes from the text of /proc/PID/status.
func Parse(status string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS line %q: %v", sc.Text(), err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no VmRSS line")
}

// Read returns process pid's resident memory in bytes.
func Read(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return Parse(string(b))
}

// A Watch samples one process's RSS and keeps the peak.
type Watch struct {
	peak atomic.Int64
	gone atomic.Bool
	over atomic.Bool // the RSS passed the limit
	cb   func()
	once sync.Once // cb is called at most once
	stop chan struct{}
	done chan struct{}
	end  sync.Once
}

// Start samples pid's RSS now and then every period until Peak. over, if
// not nil, is called once, from the sampling goroutine, as soon as the
// RSS passes limit (limit > 0) or the process is gone; sampling stops
// when it is gone. A pid of 0 or less watches nothing (Peak returns -1).
func Start(pid int, period time.Duration, limit int64, over func()) *Watch {
	w := &Watch{cb: over, stop: make(chan struct{}), done: make(chan struct{})}
	w.peak.Store(-1)
	if pid <= 0 {
		close(w.done)
		return w
	}
	sample := func() bool {
		rss, err := Read(pid)
		if err != nil {
			w.gone.Store(true)
			w.alarm()
			return false
		}
		if rss > w.peak.Load() {
			w.peak.Store(rss)
		}
		if limit > 0 && rss > limit {
			w.over.Store(true)
			w.alarm()
		}
		return true
	}
	if !sample() {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				sample()
				return
			case <-t.C:
				if !sample() {
					return
				}
			}
		}
	}()
	return w
}

func (w *Watch) alarm() {
	if w.cb != nil {
		w.once.Do(w.cb)
	}
}

// Peak stops the watch (after one last sample) and returns the largest
// RSS seen, -1 when nothing was watched. It may be called more than once.
func (w *Watch) Peak() int64 {
	w.end.Do(func() { close(w.stop) })
	<-w.done
	return w.peak.Load()
}

// Gone reports whether the process had exited when last sampled.
func (w *Watch) Gone() bool { return w.gone.Load() }

// Over reports whether the RSS passed the limit.
func (w *Watch) Over() bool { return w.over.Load() }
