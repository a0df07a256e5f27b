package wstest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A build of cmd/wsd, made once per test process on first use.
type build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

var (
	buildMatching build // -race when the test binary is
	buildPlain    build // never -race
)

// BuildBinary builds cmd/wsd once per test process and returns its path.
// A race-enabled test binary gets a race-enabled wsd, so the processes the
// tests start are checked as strictly as the tests themselves. The binary
// lives in a temporary directory that RemoveBinary deletes.
func BuildBinary(t testing.TB) string {
	t.Helper()
	return buildMatching.get(t, raceEnabled)
}

// BuildPlainBinary is BuildBinary without -race, for tests that measure
// the process — its RSS, its latency — which the race detector inflates
// several times over. Without -race it is BuildBinary's binary.
func BuildPlainBinary(t testing.TB) string {
	t.Helper()
	if !raceEnabled {
		return BuildBinary(t)
	}
	return buildPlain.get(t, false)
}

func (b *build) get(t testing.TB, race bool) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "wsd-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.dir = dir
		b.path = filepath.Join(dir, "wsd")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		args := []string{"build", "-o", b.path}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/wsd")...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = &buildError{err: err, out: string(out)}
		}
	})
	if b.err != nil {
		t.Fatalf("build wsd: %v", b.err)
	}
	return b.path
}

// RemoveBinary deletes what BuildBinary and BuildPlainBinary built, if
// anything. The binaries are shared by every test of the process, so no
// single test can clean them up: a package whose tests use them calls
// RemoveBinary from TestMain after m.Run.
func RemoveBinary() {
	for _, b := range []*build{&buildMatching, &buildPlain} {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
	}
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// Process is a running wsd binary.
type Process struct {
	Cmd       *exec.Cmd
	Addr      string // client listener
	AdminAddr string // admin listener, if enabled
	mu        sync.Mutex
	log       strings.Builder
	done      chan struct{}
}

// StartBinary runs the wsd binary with args (plus -addr 127.0.0.1:0 and
// -admin-addr 127.0.0.1:0 unless given) and waits for its "listening" line.
func StartBinary(t testing.TB, args ...string) *Process {
	t.Helper()
	return StartBinaryWith(t, nil, nil, args...)
}

// StartBinaryEnv is StartBinary with env added to the test's environment
// (WSD_* variables, for instance).
func StartBinaryEnv(t testing.TB, env []string, args ...string) *Process {
	return StartBinaryWith(t, nil, env, args...)
}

// StartBinaryUnder is StartBinary with the binary run by a wrapper that
// execs it, e.g. []string{"prlimit", "--nofile=128:128", "--"}: the
// process is the wrapper's until it execs, then wsd itself.
func StartBinaryUnder(t testing.TB, wrapper []string, args ...string) *Process {
	return StartBinaryWith(t, wrapper, nil, args...)
}

// StartPlainBinary is StartBinary with BuildPlainBinary's binary: for
// tests that measure the process.
func StartPlainBinary(t testing.TB, args ...string) *Process {
	t.Helper()
	return startBinary(t, BuildPlainBinary(t), nil, nil, args...)
}

// StartBinaryWith starts the binary under wrapper (if any) with env added.
func StartBinaryWith(t testing.TB, wrapper, env []string, args ...string) *Process {
	t.Helper()
	return startBinary(t, BuildBinary(t), wrapper, env, args...)
}

func startBinary(t testing.TB, bin string, wrapper, env []string, args ...string) *Process {
	t.Helper()
	joined := " " + strings.Join(args, " ")
	if !strings.Contains(joined, " -addr") {
		args = append(args, "-addr", "127.0.0.1:0")
	}
	if !strings.Contains(joined, " -admin-addr") {
		args = append(args, "-admin-addr", "127.0.0.1:0")
	}
	argv := append(append(append([]string(nil), wrapper...), bin), args...)
	p := &Process{Cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	if env != nil {
		p.Cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	adminOff := false
	for i, a := range args {
		if (a == "-admin-addr" || a == "--admin-addr") && i+1 < len(args) && args[i+1] == "" {
			adminOff = true
		}
	}
	go p.scan(stderr, ready, adminOff)
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("wsd log:\n%s", p.Log())
		}
	})
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("wsd exited before listening:\n%s", p.Log())
	case <-time.After(10 * time.Second):
		t.Fatalf("wsd not listening after 10s:\n%s", p.Log())
	}
	return p
}

func (p *Process) scan(r io.Reader, ready chan struct{}, adminOff bool) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.log.WriteString(line + "\n")
		if v := field(line, "addr="); v != "" && strings.Contains(line, "msg=listening") {
			p.Addr = v
		}
		if v := field(line, "admin_addr="); v != "" {
			p.AdminAddr = v
		}
		ok := p.Addr != "" && (p.AdminAddr != "" || adminOff)
		p.mu.Unlock()
		if ok && !signalled {
			signalled = true
			close(ready)
		}
	}
	p.Cmd.Wait()
}

func field(line, key string) string {
	i := strings.Index(line, " "+key)
	if i < 0 {
		return ""
	}
	v := line[i+1+len(key):]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// Log returns what the process logged so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to exit and returns its exit code
// (-1 on timeout).
func (p *Process) Wait(timeout time.Duration) int {
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return -1
	}
}
