package rsswatch

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		err      bool
	}{
		{"typical", "Name:\twsd\nVmPeak:\t  100 kB\nVmRSS:\t   20152 kB\nThreads:\t5\n", 20152 * 1024, false},
		{"first line", "VmRSS: 1 kB", 1024, false},
		{"missing", "Name:\tx\nVmSize:\t 5 kB\n", 0, true},
		{"no unit", "VmRSS:\t 12\n", 0, true},
		{"not a number", "VmRSS:\t 1x2 kB\n", 0, true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %d, %v", tc.name, got, err)
		}
	}
}

func TestRead(t *testing.T) {
	if rss, err := Read(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("own RSS: %d %v", rss, err)
	}
	if _, err := Read(-1); err == nil || !strings.Contains(err.Error(), "/proc/-1") {
		t.Errorf("bad pid: %v", err)
	}
}

func TestWatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pid      int
		limit    int64
		wantOver bool
		wantPeak bool // a peak above 0
	}{
		{"own process, no limit", os.Getpid(), 0, false, true},
		{"own process over a 1-byte limit", os.Getpid(), 1, true, true},
		{"nothing watched", 0, 1, false, false},
		{"gone", 1 << 30, 0, true, false}, // above pid_max: no such process
	} {
		var over int
		w := Start(tc.pid, time.Millisecond, tc.limit, func() { over++ })
		time.Sleep(5 * time.Millisecond)
		peak := w.Peak()
		if (over == 1) != tc.wantOver || over > 1 {
			t.Errorf("%s: over called %d times, want it %v", tc.name, over, tc.wantOver)
		}
		if (peak > 0) != tc.wantPeak {
			t.Errorf("%s: peak %d", tc.name, peak)
		}
		if w.Over() != (tc.limit > 0 && tc.wantPeak) || w.Gone() != (tc.wantOver && !tc.wantPeak) {
			t.Errorf("%s: Over %v, Gone %v", tc.name, w.Over(), w.Gone())
		}
		if w.Peak() != peak {
			t.Errorf("%s: a second Peak changed the answer", tc.name)
		}
	}
}
