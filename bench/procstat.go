// Process figures from /proc: CPU time and open files. CPU time is the sum
// over the process's threads of the time on a CPU that
// /proc/PID/task/TID/schedstat gives in nanoseconds; where that is not
// available, utime+stime in /proc/PID/stat, in clock ticks of 1/100 s
// (USER_HZ is 100 on Linux/amd64), which makes a figure from a window of
// a few tenths of a CPU second good to ±10% at best.
// Resident memory comes from internal/rsswatch, which the hostile tests
// of cmd/wsd share.

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat.
const userHZ = 100

// parseCPU returns utime+stime in clock ticks from the text of
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseCPU(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')'")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q", f[11], f[12])
	}
	return u + s, nil
}

// readCPU is a process's user+system CPU time in seconds: readSchedCPU,
// or from /proc/PID/stat's ticks when it fails.
func readCPU(pid int) (float64, error) {
	if t, err := readSchedCPU(pid); err == nil {
		return t, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := parseCPU(string(b))
	return float64(t) / userHZ, err
}

// readSchedCPU sums the first field of /proc/PID/task/*/schedstat, each
// thread's time on a CPU in nanoseconds (user and system), into seconds. A
// thread that exits between two reads takes its time with it; the Go
// runtime keeps its threads, so for wsd and this client nothing is lost.
func readSchedCPU(pid int) (float64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	tids, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, err
	}
	var ns uint64
	for _, tid := range tids {
		b, err := os.ReadFile(dir + "/" + tid + "/schedstat")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // exited since the listing
			}
			return 0, err
		}
		v, err := parseSchedstat(string(b))
		if err != nil {
			return 0, err
		}
		ns += v
	}
	if len(tids) == 0 {
		return 0, errors.New("no threads")
	}
	return float64(ns) / 1e9, nil
}

// parseSchedstat returns the first field of a schedstat line: time spent
// on a CPU, in nanoseconds.
func parseSchedstat(line string) (uint64, error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return 0, fmt.Errorf("schedstat: %q", line)
	}
	return strconv.ParseUint(f[0], 10, 64)
}

// countFDs is how many files a process has open.
func countFDs(pid int) (int, error) {
	d, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	return len(names), err
}

// parseMachineCPU returns the busy time of the whole machine, in clock
// ticks, from the "cpu" line of /proc/stat: user, nice, system, irq,
// softirq and steal (guest time is already inside user).
func parseMachineCPU(stat string) (uint64, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q", line)
		}
		busy += v
	}
	return busy, nil
}

// readMachineCPU is the machine's busy CPU time in seconds.
func readMachineCPU() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	t, err := parseMachineCPU(string(b))
	return float64(t) / userHZ, err
}

// cpuMeter measures the CPU a server (if pid > 0), this client and the
// whole machine use between start and stop.
type cpuMeter struct {
	pid                     int
	start                   time.Time
	server, client, machine float64
}

// cpuUse is CPU seconds used in a window of wall seconds; server is -1
// when unknown.
type cpuUse struct{ server, client, machine, wall float64 }

// plus is u and v together, as of one window as long as both; the zero
// cpuUse is where a sum starts. The server stays unknown (-1) if it is in
// either.
func (u cpuUse) plus(v cpuUse) cpuUse {
	w := cpuUse{server: u.server + v.server, client: u.client + v.client, machine: u.machine + v.machine, wall: u.wall + v.wall}
	if u.server < 0 || v.server < 0 {
		w.server = -1
	}
	return w
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, start: time.Now()}
	if pid > 0 {
		m.server, _ = readCPU(pid)
	}
	m.client, _ = readCPU(os.Getpid())
	m.machine, _ = readMachineCPU()
	return m
}

// stop returns the CPU seconds used since start.
func (m *cpuMeter) stop() cpuUse {
	u := cpuUse{server: -1, wall: time.Since(m.start).Seconds()}
	if m.pid > 0 {
		if s, err := readCPU(m.pid); err == nil {
			u.server = s - m.server
		}
	}
	c, _ := readCPU(os.Getpid())
	u.client = c - m.client
	mc, _ := readMachineCPU()
	u.machine = mc - m.machine
	return u
}

// addCPU adds the CPU figures of a measured window: seconds and shares of
// a core. "other cpu share" is what the rest of the machine used
// meanwhile: well above zero, the run competed with something else and its
// figures are suspect.
func (r *Result) addCPU(u cpuUse) {
	seconds := u.wall
	r.add("cpu window", "s", "", seconds)
	if u.server >= 0 {
		r.add("server cpu", "s", "lower", u.server)
		r.add("server cpu share", "cores", "", ratio(u.server, seconds))
	}
	r.add("client cpu", "s", "", u.client)
	r.add("client cpu share", "cores", "", ratio(u.client, seconds))
	if u.server >= 0 {
		r.add("other cpu share", "cores", "", ratio(max(u.machine-u.server-u.client, 0), seconds))
	}
}

func numCPU() int { return runtime.NumCPU() }

// readLoadAvg is the 1, 5 and 15 minute load averages, as /proc/loadavg
// gives them: a busy machine makes every figure suspect.
func readLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
