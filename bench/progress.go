// The progress line: about once a second on stderr, what a scenario has
// done so far, so a long run shows it is alive and how it is going.

package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// startProgress prints "[name 3s] " + line() every second until stop is
// called; w nil prints nothing.
func startProgress(w io.Writer, name string, line func() string) (stop func()) {
	if w == nil {
		return func() {}
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "[%s %2.0fs] %s\n", name, time.Since(start).Seconds(), line())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
