package main

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestParseCPU(t *testing.T) {
	tail := " S 1 1234 1234 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 7 0 100 1000000 5000"
	for _, tc := range []struct {
		name, in string
		want     uint64
		err      bool
	}{
		{"plain", "1234 (wsd)" + tail, 400, false},
		{"spaces and parens in name", "1234 (w) s (d))" + tail, 400, false},
		{"no name", "1234 wsd" + tail, 0, true},
		{"truncated", "1234 (wsd) S 1 2 3", 0, true},
		{"garbage", "1234 (wsd) S 1 1234 1234 0 -1 4194560 500 0 0 0 x 150 0", 0, true},
	} {
		got, err := parseCPU(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %d, %v", tc.name, got, err)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	for in, want := range map[string]uint64{"139093 0 1\n": 139093, "18446744073709551615 5 9": 1<<64 - 1, "": 0, "12 3": 0, "x 1 2": 0} {
		got, err := parseSchedstat(in)
		if (err != nil) != (want == 0) || got != want {
			t.Errorf("%q: %d, %v", in, got, err)
		}
	}
}

// readSchedCPU agrees with /proc/PID/stat's ticks, to the ticks' grain,
// with work on two goroutines (so on more than one thread).
func TestSchedCPUMatchesStat(t *testing.T) {
	busy := func() {
		x := 0
		for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); x++ {
		}
		_ = x
	}
	done := make(chan struct{})
	go func() { busy(); close(done) }()
	busy()
	<-done
	ns, err := readSchedCPU(os.Getpid())
	if err != nil {
		t.Skipf("no schedstat: %v", err)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", os.Getpid()))
	ticks, err := parseCPU(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if st := float64(ticks) / userHZ; ns < 0.1 || ns > st+0.03 || ns < st-0.03 {
		t.Fatalf("schedstat %.3f s, stat %.2f s", ns, st)
	}
}

func TestReadSelf(t *testing.T) {
	pid := os.Getpid()
	if cpu, err := readCPU(pid); err != nil || cpu < 0 {
		t.Errorf("own CPU: %v %v", cpu, err)
	}
	if n, err := countFDs(pid); err != nil || n < 3 {
		t.Errorf("own fds: %d %v", n, err)
	}
}

func TestParseMachineCPU(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     uint64
		err      bool
	}{
		{"typical", "cpu  100 2 30 5000 7 1 4 3 0 0\ncpu0 50 1 15 2500 3 0 2 1 0 0\n", 140, false},
		{"no newline", "cpu  1 1 1 1 1 1 1 1", 6, false},
		{"per-cpu first", "cpu0 1 1 1 1 1 1 1 1\n", 0, true},
		{"short", "cpu 1 2 3\n", 0, true},
		{"garbage", "cpu 1 2 x 4 5 6 7 8\n", 0, true},
	} {
		got, err := parseMachineCPU(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %d, %v", tc.name, got, err)
		}
	}
	if s, err := readMachineCPU(); err != nil || s <= 0 {
		t.Errorf("machine CPU: %v %v", s, err)
	}
}
