package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// Issue 14 (operations) end to end, through the real binary.

// runBinary runs wsd to completion and returns its exit code and output.
func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wstest.BuildBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("wsd %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitLog waits until the process has logged a line containing every part.
func waitLog(t *testing.T, p *wstest.Process, parts ...string) string {
	t.Helper()
	var found string
	wstest.Eventually(t, 10*time.Second, fmt.Sprintf("a log line with %q", parts), func() bool {
		for _, line := range strings.Split(p.Log(), "\n") {
			ok := true
			for _, part := range parts {
				ok = ok && strings.Contains(line, part)
			}
			if ok {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

func status(t *testing.T, method, url, bearer, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func dialOrigin(addr, key, origin string) int {
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, st, _ := wstest.TryDialHeaders(addr, "/?specialKey="+key, h)
	if c != nil {
		c.Conn.Close()
	}
	return st
}

func TestReloadChangesOriginWithoutDropping(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, filepath.Join(dir, "wsd.conf"), "allowed-origins https://a.example\nmax-msg-rate 0\n")
	p := wstest.StartBinary(t, "-config", conf)
	c := wstest.Dial(t, p.Addr, "specialKey=resident")
	if st := dialOrigin(p.Addr, "x", "https://b.example"); st != 403 {
		t.Fatalf("b.example before the reload: %d, want 403", st)
	}
	writeFile(t, conf, "allowed-origins https://b.example\nmax-msg-rate 5\nmsg-burst 3\nlog-level debug\n")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line := waitLog(t, p, "msg=reloaded")
	for _, want := range []string{"-allowed-origins=https://b.example", "-max-msg-rate=5", "-msg-burst=3", "-log-level=debug"} {
		if !strings.Contains(line, want) {
			t.Errorf("reload line %q does not name %s", line, want)
		}
	}
	if st := dialOrigin(p.Addr, "y", "https://b.example"); st != 101 {
		t.Errorf("b.example after the reload: %d, want 101", st)
	}
	if st := dialOrigin(p.Addr, "z", "https://a.example"); st != 403 {
		t.Errorf("a.example after the reload: %d, want 403", st)
	}
	// The resident client is still connected and chatting, now under the
	// new rate limit (burst 3): a burst of 20 ends with 1008.
	c.WriteText("still here")
	expect(t, c, "still here")
	var burst []byte
	for i := 0; i < 20; i++ {
		burst = append(burst, wstest.RawFrame(0x81, true, []byte("m"))...)
	}
	c.WriteRaw(burst)
	echoes := 0
	for {
		f, err := c.ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d echoes: %v", echoes, err)
		}
		if f.Op == 0x8 {
			if f.CloseCode() != 1008 || echoes >= 20 {
				t.Errorf("after the reloaded rate limit: close %d after %d echoes, want 1008 before 20", f.CloseCode(), echoes)
			}
			break
		}
		echoes++
	}
	// The debug level is in force: a connection logs at debug now.
	wstest.Dial(t, p.Addr, "specialKey=debugged")
	waitLog(t, p, "level=DEBUG", "key=debugged")
	// Refusals of both rules were counted, across the swap.
	if got := wstest.Scrape(t, p.AdminAddr).Get("wsd_auth_failures_total", "reason", "origin_not_allowed"); got != 2 {
		t.Errorf("origin_not_allowed %v, want 2", got)
	}
}

func TestBadReloadKeepsOldValues(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, filepath.Join(dir, "wsd.conf"), "allowed-origins https://a.example\n")
	token := writeFile(t, filepath.Join(dir, "token"), "first-token\n")
	p := wstest.StartBinary(t, "-config", conf, "-admin-token-file", token)
	c := wstest.Dial(t, p.Addr, "specialKey=resident")
	for i, tc := range []struct{ conf, why string }{
		{"allowed-origins example.com\n", "allowed-origins"},
		{"allowed-origins https://b.example,https://*.co.uk\n", `allowed origin \"https://*.co.uk\": wildcard over a public suffix (co.uk)`},
		{"allowed-origins https://b.example\nworkers 7\n", "-workers cannot change without a restart"},
		{"allowed-origins https://b.example\nmax-message -1\n", "-max-message"},
		{"allowed-origins https://b.example\nno-such-flag 1\n", "no-such-flag"},
	} {
		writeFile(t, conf, tc.conf)
		p.Signal(syscall.SIGHUP)
		wstest.Eventually(t, 10*time.Second, "refusal "+tc.why, func() bool {
			return strings.Count(p.Log(), "reload refused") == i+1
		})
		if !strings.Contains(p.Log(), tc.why) {
			t.Errorf("reload of %q: refusal does not say %q:\n%s", tc.conf, tc.why, p.Log())
		}
		if st := dialOrigin(p.Addr, "x", "https://a.example"); st != 101 {
			t.Errorf("after refused reload %d: a.example %d, want 101 (old rule)", i, st)
		}
		if st := dialOrigin(p.Addr, "x", "https://b.example"); st != 403 {
			t.Errorf("after refused reload %d: b.example %d, want 403 (old rule)", i, st)
		}
	}
	// A secret file whose contents changed is reloaded (and not printed).
	writeFile(t, conf, "allowed-origins https://a.example\n")
	writeFile(t, token, "second-token\n")
	p.Signal(syscall.SIGHUP)
	line := waitLog(t, p, "msg=reloaded")
	if !strings.Contains(line, "-admin-token-file") || strings.Contains(line, "second-token") {
		t.Errorf("reload line %q", line)
	}
	if st, _ := status(t, "POST", adminURL(p, "/publish"), "first-token", `{"text":"x"}`); st != 401 {
		t.Errorf("old token after the reload: %d, want 401", st)
	}
	if st, body := status(t, "POST", adminURL(p, "/publish"), "second-token", `{"text":"new token"}`); st != 200 {
		t.Errorf("new token after the reload: %d %s", st, body)
	}
	expect(t, c, "new token")
}

// startLogged starts wsd logging to a file and returns it once listening.
func startLogged(t *testing.T, logFile string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	args = append(args, "-addr", "127.0.0.1:0", "-admin-addr", "off", "-log-file", logFile)
	cmd := exec.Command(wstest.BuildBinary(t), args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	re := regexp.MustCompile(`msg=listening addr=(\S+)`)
	var addr string
	wstest.Eventually(t, 10*time.Second, "listening in the log file", func() bool {
		b, _ := os.ReadFile(logFile)
		if m := re.FindSubmatch(b); m != nil {
			addr = string(m[1])
			return true
		}
		return false
	})
	return cmd, addr
}

func TestSIGUSR1ReopensLogFile(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "wsd.log")
	cmd, addr := startLogged(t, logFile)
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	wstest.Eventually(t, 10*time.Second, "a new log file", func() bool {
		b, err := os.ReadFile(logFile)
		return err == nil && strings.Contains(string(b), "log file reopened")
	})
	// New lines go to the new file only.
	wstest.TryDialHeaders(addr, "/nowhere?specialKey=k", nil)
	wstest.Eventually(t, 10*time.Second, "the refusal in the new file", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "handshake refused")
	})
	old, _ := os.ReadFile(logFile + ".1")
	if strings.Contains(string(old), "handshake refused") || !strings.Contains(string(old), "msg=listening") {
		t.Errorf("renamed file:\n%s", old)
	}
}

func TestInvalidValuesRefused(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, filepath.Join(dir, "empty"), "\n")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-shards", "-1"}, `-shards "-1": must be between 1 and 65536`},
		{[]string{"-shards", "70000"}, `-shards "70000": must be between 1 and 65536`},
		{[]string{"-workers", "0"}, `-workers "0": must be at least 1`},
		{[]string{"-pollers", "0"}, `-pollers "0": must be at least 1`},
		{[]string{"-max-conns", "-3"}, `-max-conns "-3": must be 0 (the file limit less 192) or more`},
		{[]string{"-max-message", "-5"}, `-max-message "-5": must be between 1 and 1073741824 bytes`},
		{[]string{"-max-message", "x"}, `invalid value "x" for flag -max-message`},
		{[]string{"-max-queue", "-1"}, `-max-queue "-1": must be at least 1 byte`},
		{[]string{"-handshake-timeout", "0s"}, `-handshake-timeout "0s": must be more than 0`},
		{[]string{"-ping-interval", "-1s"}, `-ping-interval "-1s": must be more than 0`},
		{[]string{"-idle-timeout", "-1s"}, `-idle-timeout "-1s": must be longer than -ping-interval`},
		{[]string{"-idle-timeout", "20s"}, `-idle-timeout "20s": must be longer than -ping-interval`},
		{[]string{"-close-timeout", "0s"}, `-close-timeout "0s": must be more than 0`},
		{[]string{"-max-msg-rate", "-1"}, `-max-msg-rate "-1": must be 0 (unlimited) or a positive number`},
		{[]string{"-max-msg-rate", "NaN"}, `-max-msg-rate "NaN": must be 0 (unlimited) or a positive number`},
		{[]string{"-max-delivery-rate", "-5"}, `-max-delivery-rate "-5": must be 0 (unlimited) or a positive number`},
		{[]string{"-max-delivery-rate-per-ip", "Inf"}, `-max-delivery-rate-per-ip "+Inf": must be 0 (no cap) or a positive number`},
		{[]string{"-msg-burst", "0"}, `-msg-burst "0": must be at least 1`},
		{[]string{"-max-handshakes-per-ip", "-1"}, `-max-handshakes-per-ip "-1": must be 0 (no cap) or more`},
		{[]string{"-inbound-share-per-ip", "150%"}, `-inbound-share-per-ip "150%": must be between 0% (no cap) and 100%`},
		{[]string{"-inbound-share-per-ip", "-0.1"}, `-inbound-share-per-ip "-10%": must be between 0% (no cap) and 100%`},
		{[]string{"-inbound-share-per-ip", "half"}, `invalid value "half" for flag -inbound-share-per-ip`},
		{[]string{"-backlog", "0"}, `-backlog "0": must be between 1 and 65535`},
		{[]string{"-addr", "8888"}, `-addr "8888": must be host:port`},
		{[]string{"-admin-addr", "localhost"}, `-admin-addr "localhost": must be host:port, or empty or off`},
		{[]string{"-admin-addr", "0.0.0.0:9090"}, `-admin-addr "0.0.0.0:9090": is not a loopback address: set an admin token`},
		{[]string{"-admin-addr", ":9090"}, `-admin-addr ":9090": is not a loopback address`},
		{[]string{"-log-level", "loud"}, `-log-level "loud": must be debug, info, warn or error`},
		{[]string{"-log-format", "xml"}, `-log-format "xml": must be text or json`},
		{[]string{"-shutdown-timeout", "0s"}, `-shutdown-timeout "0s": must be more than 0`},
		{[]string{"-drain-delay", "-1s"}, `-drain-delay "-1s": must be 0 or more`},
		{[]string{"-lame-duck-duration", "-1s"}, `-lame-duck-duration "-1s": must be 0 or more`},
		{[]string{"-subprotocols", "chat v1"}, `-subprotocols "chat v1": must be comma-separated tokens`},
		{[]string{"-allowed-origins", "example.com"}, `-allowed-origins "example.com": must be scheme://host[:port] entries`},
		{[]string{"-allowed-origins", "https://a.example,https://*.com"}, `-allowed-origins "https://a.example,https://*.com": allowed origin "https://*.com": wildcard over a public suffix (com)`},
		{[]string{"-allowed-origins", "https://*.co.uk"}, `allowed origin "https://*.co.uk": wildcard over a public suffix (co.uk)`},
		{[]string{"-allowed-origins", "https://*.github.io"}, `allowed origin "https://*.github.io": wildcard over a public suffix (github.io)`},
		{[]string{"-jwt-secret", "x", "-jwt-secret-file", empty}, "-jwt-secret and -jwt-secret-file exclude each other"},
		{[]string{"-jwt-secret", "x", "-jwt-public-key", empty}, "-jwt-secret and -jwt-public-key exclude each other"},
		{[]string{"-admin-token", "x", "-admin-token-file", empty}, "-admin-token and -admin-token-file exclude each other"},
		{[]string{"-admin-token-file", empty}, "-admin-token-file: " + empty + " is empty"},
		{[]string{"-jwt-secret-file", filepath.Join(dir, "missing")}, "-jwt-secret-file: open "},
		{[]string{"-config", filepath.Join(dir, "missing.conf")}, "missing.conf: no such file"},
		{[]string{"stray"}, "unexpected arguments: stray"},
	} {
		code, out := runBinary(t, nil, tc.args...)
		if code != 2 || !strings.Contains(out, tc.msg) {
			t.Errorf("wsd %q: exit %d, output %q; want exit 2 and %q", tc.args, code, out, tc.msg)
		}
		if strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Errorf("wsd %q: more than one line: %q", tc.args, out)
		}
	}
	// Several bad values: one line each.
	code, out := runBinary(t, nil, "-shards", "-1", "-workers", "0", "-backlog", "0")
	if code != 2 || strings.Count(out, "\nwsd: ") != 2 {
		t.Errorf("three bad values: exit %d, %q", code, out)
	}
}

func TestCheckMode(t *testing.T) {
	dir := t.TempDir()
	token := writeFile(t, filepath.Join(dir, "admin-token"), "t0ken\n")
	good := writeFile(t, filepath.Join(dir, "good.conf"), "# fine\nworkers 2\nadmin-addr 0.0.0.0:9090\nadmin-token-file "+token+"\n")
	bad := writeFile(t, filepath.Join(dir, "bad.conf"), "workers 0\nmax-queue -1\n")
	unknown := writeFile(t, filepath.Join(dir, "unknown.conf"), "wrokers 2\n")
	nested := writeFile(t, filepath.Join(dir, "nested.conf"), "config "+good+"\n")
	// -t opens nothing: a busy address does not matter.
	busy := wstest.StartBinary(t)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-t", "-config", good, "-addr", busy.Addr}, 0, "configuration ok (" + good + ")"},
		{[]string{"-t", "-config", bad}, 1, `-workers "0": must be at least 1`},
		{[]string{"-t", "-config", bad}, 1, `-max-queue "-1": must be at least 1 byte`},
		{[]string{"-t", "-config", unknown}, 1, `"wrokers" not defined`},
		{[]string{"-t", "-config", nested}, 1, `"config" can only be given on the command line`},
		{[]string{"-t", "-max-message", "x"}, 1, "invalid value"},
		{[]string{"-t", "-admin-addr", "0.0.0.0:9090"}, 1, "is not a loopback address"},
		{[]string{"-t", "-admin-addr", "0.0.0.0:9090", "-admin-insecure"}, 0, "configuration ok"},
		{[]string{"-t", "-config", "../../deploy/wsd.conf", "-admin-token-file", token}, 0, "configuration ok"},
		// What start would open is checked too, so ExecStartPre catches it.
		{[]string{"-t", "-tls-cert", filepath.Join(dir, "none.crt"), "-tls-key", filepath.Join(dir, "none.key")}, 1, "-tls-cert/-tls-key"},
		{[]string{"-t", "-nats-token", "x"}, 1, "-nats-token needs -nats-url"},
		{[]string{"-t", "-nats-url", "nats://alice:s3cr%et@127.0.0.1:4222"}, 1, "-nats-url: a URL does not parse"},
		{[]string{"-t", "-log-file", filepath.Join(dir, "no", "such", "dir", "wsd.log")}, 1, "-log-file"},
	} {
		code, out := runBinary(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("wsd %q: exit %d %q; want %d and %q", tc.args, code, out, tc.code, tc.out)
		}
		if strings.Contains(out, "s3cr") {
			t.Errorf("wsd %q: output shows the NATS password: %q", tc.args, out)
		}
	}
}

// listening returns the "listening" line's value of key.
func listening(t *testing.T, p *wstest.Process, key string) string {
	t.Helper()
	m := regexp.MustCompile(` ` + key + `=(\S+)`).FindStringSubmatch(waitLog(t, p, "msg=listening"))
	if m == nil {
		t.Fatalf("no %s in the listening line", key)
	}
	return m[1]
}

func TestFlagsOverEnvOverFile(t *testing.T) {
	conf := writeFile(t, filepath.Join(t.TempDir(), "wsd.conf"), "max-message 1000\nmax-queue 5000\nmsg-burst 7\n")
	env := []string{"WSD_MAX_MESSAGE=2000", "WSD_MAX_QUEUE=6000"}
	for _, tc := range []struct {
		env  []string
		args []string
		want [3]string // max_message, max_queue, msg_burst
	}{
		{nil, []string{"-config", conf}, [3]string{"1000", "5000", "7"}},
		{env, []string{"-config", conf}, [3]string{"2000", "6000", "7"}},
		{env, []string{"-config", conf, "-max-message", "3000"}, [3]string{"3000", "6000", "7"}},
		{append(env, "WSD_CONFIG="+conf), nil, [3]string{"2000", "6000", "7"}},
	} {
		p := wstest.StartBinaryEnv(t, tc.env, tc.args...)
		got := [3]string{listening(t, p, "max_message"), listening(t, p, "max_queue"), listening(t, p, "msg_burst")}
		if got != tc.want {
			t.Errorf("env %q args %q: max_message, max_queue, msg_burst = %v, want %v", tc.env, tc.args, got, tc.want)
		}
		p.Cmd.Process.Kill()
	}
	// A secret from the environment works and never shows in the command line.
	p := wstest.StartBinaryEnv(t, []string{"WSD_ADMIN_TOKEN=env-token", "WSD_JWT_SECRET=env-jwt-secret-that-is-32-bytes!!"})
	if st, _ := status(t, "POST", adminURL(p, "/publish"), "", `{"text":"x"}`); st != 401 {
		t.Errorf("publish without the env token: %d, want 401", st)
	}
	if st, _ := status(t, "POST", adminURL(p, "/publish"), "env-token", `{"text":"x"}`); st != 200 {
		t.Errorf("publish with the env token: %d, want 200", st)
	}
	if _, status, _ := wstest.TryDial(p.Addr, "specialKey=k"); status != 401 {
		t.Errorf("handshake without a JWT under WSD_JWT_SECRET: %d, want 401", status)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Cmd.Process.Pid))
	if strings.Contains(string(cmdline), "env-token") || strings.Contains(string(cmdline), "env-jwt") {
		t.Errorf("secret on the command line: %q", cmdline)
	}
}

func TestDrainDelayOnReadyzBeforeFirstClose(t *testing.T) {
	const delay = 1500 * time.Millisecond
	p := wstest.StartBinary(t, "-drain-delay", delay.String(), "-lame-duck-duration", "0s")
	c := wstest.Dial(t, p.Addr, "specialKey=lingering")
	readyz := func() int { st, _ := status(t, "GET", adminURL(p, "/readyz"), "", ""); return st }
	if st := readyz(); st != 200 {
		t.Fatalf("/readyz %d", st)
	}
	start := time.Now()
	p.Signal(syscall.SIGTERM)
	wstest.Eventually(t, 2*time.Second, "/readyz 503", func() bool { return readyz() == 503 })
	seen503 := time.Since(start)
	// During the delay everything still serves: chat and new connections.
	c.WriteText("during the delay")
	expect(t, c, "during the delay")
	late := wstest.Dial(t, p.Addr, "specialKey=late")
	if code := c.ExpectClose(t, 10*time.Second); code != 1001 {
		t.Errorf("close code %d, want 1001", code)
	}
	closed := time.Since(start)
	if seen503 >= delay || closed < delay {
		t.Errorf("/readyz 503 after %v, first close after %v; want 503 first and the close after %v", seen503, closed, delay)
	}
	if code := late.ExpectClose(t, 5*time.Second); code != 1001 {
		t.Errorf("late client close %d", code)
	}
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestLameDuckBatches(t *testing.T) {
	const n, spread = 300, 2 * time.Second
	p := wstest.StartBinary(t, "-lame-duck-duration", spread.String())
	clients := make([]*wstest.Client, n)
	for i := range clients {
		clients[i] = wstest.Dial(t, p.Addr, fmt.Sprintf("specialKey=c%d", i))
	}
	wstest.Eventually(t, 10*time.Second, "all connected", func() bool { return wstest.Scrape(t, p.AdminAddr).Get("wsd_connections") == n })
	start := time.Now()
	p.Signal(syscall.SIGUSR2)
	at := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := c.ReadFrame(10 * time.Second)
			if err != nil || f.CloseCode() != 1001 {
				t.Errorf("client %d: %v %v, want close 1001", i, f.Op, err)
			}
			at[i] = time.Since(start)
		}()
	}
	wg.Wait()
	sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
	// Three batches of 100 (session's drainMinBatch), each sent at once, in
	// three steps of spread/3.
	var groups []int
	for i := range at {
		if i == 0 || at[i]-at[i-1] > 150*time.Millisecond {
			groups = append(groups, 0)
		}
		groups[len(groups)-1]++
	}
	if len(groups) != 3 || groups[0] != 100 || groups[1] != 100 || groups[2] != 100 {
		t.Errorf("closes arrived in groups %v (from %v to %v), want 3 of 100", groups, at[0], at[n-1])
	}
	if at[n-1] < spread/2 || at[n-1] > spread {
		t.Errorf("last close after %v, want within (%v, %v]", at[n-1], spread/2, spread)
	}
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	waitLog(t, p, "closing connections in batches", "batches=3")
}

func TestVersion(t *testing.T) {
	code, out := runBinary(t, nil, "-version")
	want := fmt.Sprintf(`^wsd \S+ \(revision \S+, %s\)\n$`, regexp.QuoteMeta(runtime.Version()))
	if code != 0 || !regexp.MustCompile(want).MatchString(out) {
		t.Errorf("-version: exit %d %q, want %s", code, out, want)
	}
	p := wstest.StartBinary(t)
	if v := listening(t, p, "version"); v == "" {
		t.Error("no version in the listening line")
	}
	m := wstest.Scrape(t, p.AdminAddr)["wsd_build_info"]
	if m == nil || len(m.GetMetric()) != 1 || m.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("wsd_build_info %v", m)
	}
	labels := map[string]string{}
	for _, l := range m.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["goversion"] != runtime.Version() || labels["version"] == "" || labels["revision"] == "" {
		t.Errorf("wsd_build_info labels %v", labels)
	}
	_, body := status(t, "GET", adminURL(p, "/stats"), "", "")
	var stats struct {
		Version struct{ Version, GoVersion string }
	}
	if err := json.Unmarshal([]byte(body), &stats); err != nil || stats.Version.GoVersion != runtime.Version() {
		t.Errorf("/stats version: %s, %v", body, err)
	}
}

func TestPublishRefusesEmptyAndWarnsWithoutToken(t *testing.T) {
	p := wstest.StartBinary(t)
	waitLog(t, p, "level=WARN", "no admin token")
	c := wstest.Dial(t, p.Addr, "specialKey=k")
	for _, body := range []string{`{}`, `{"room":""}`, `{"text":""}`} {
		if st, out := status(t, "POST", adminURL(p, "/publish"), "", body); st != 400 || !strings.Contains(out, "text is required") {
			t.Errorf("publish %s: %d %s, want 400", body, st, out)
		}
	}
	if st, _ := status(t, "POST", adminURL(p, "/publish"), "", `{"text":"real"}`); st != 200 {
		t.Errorf("publish: %d", st)
	}
	expect(t, c, "real") // nothing empty came before it
	if st, body := status(t, "GET", adminURL(p, "/"), "", ""); st != 200 || !strings.Contains(body, "POST /disconnect") {
		t.Errorf("admin index: %d %q", st, body)
	}
}

func TestDisconnectAPI(t *testing.T) {
	const token = "tok"
	p := wstest.StartBinary(t, "-admin-token", token)
	alice := wstest.Dial(t, p.Addr, "specialKey=alice")
	bob := wstest.Dial(t, p.Addr, "specialKey=bob")
	if st, _ := status(t, "POST", adminURL(p, "/disconnect"), "", `{"key":"alice"}`); st != 401 {
		t.Errorf("disconnect without token: %d", st)
	}
	status(t, "POST", adminURL(p, "/publish"), token, `{"key":"alice","text":"bye"}`)
	st, body := status(t, "POST", adminURL(p, "/disconnect"), token, `{"key":"alice"}`)
	if st != 200 || !strings.Contains(body, `"disconnected":true`) {
		t.Fatalf("disconnect alice: %d %s", st, body)
	}
	expect(t, alice, "bye") // what was published before comes first
	if code := alice.ExpectClose(t, 5*time.Second); code != 4002 {
		t.Errorf("alice closed with %d, want 4002", code)
	}
	if st, body := status(t, "POST", adminURL(p, "/disconnect"), token, `{"key":"alice"}`); st != 200 || !strings.Contains(body, `"disconnected":false`) {
		t.Errorf("disconnect again: %d %s", st, body)
	}
	bob.WriteText("bob stays")
	expect(t, bob, "bob stays")
}

func TestSubprotocolSelection(t *testing.T) {
	p := wstest.StartBinary(t, "-subprotocols", "chat.v1,chat.v2")
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"chat.v1"}, "chat.v1"},
		{[]string{"chat.v2", "chat.v1"}, "chat.v2"}, // the client's order decides
		{[]string{"mqtt", "chat.v1"}, "chat.v1"},
		{[]string{"mqtt"}, ""},
		{nil, ""},
	} {
		d := websocket.Dialer{Subprotocols: tc.offer, HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial("ws://"+p.Addr+"/?specialKey=g", nil)
		if err != nil {
			t.Fatalf("gorilla offering %q: %v", tc.offer, err)
		}
		if got := c.Subprotocol(); got != tc.want {
			t.Errorf("gorilla offering %q: selected %q, want %q", tc.offer, got, tc.want)
		}
		c.WriteMessage(websocket.TextMessage, []byte("hi"))
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hi" {
			t.Errorf("echo %q %v", msg, err)
		}
		c.Close()
	}
	// A raw client: the protocol is in the 101 it reads.
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /?specialKey=raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: soap\r\nSec-WebSocket-Protocol: chat.v2, chat.v1\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Protocol") != "chat.v2" {
		t.Errorf("raw: %d, protocol %q, want 101 chat.v2", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Protocol"))
	}
}

func TestFirstDuplicateParameterWins(t *testing.T) {
	p := wstest.StartBinary(t)
	c := wstest.Dial(t, p.Addr, "specialKey=first&specialKey=second&room=r1&room=r2&support_gzip=0&support_gzip=1")
	wstest.Eventually(t, 5*time.Second, "connected", func() bool { return wstest.Scrape(t, p.AdminAddr).Get("wsd_connections") == 1 })
	if _, body := status(t, "POST", adminURL(p, "/publish"), "", `{"key":"second","text":"x"}`); !strings.Contains(body, `"delivered":0`) {
		t.Errorf("the second specialKey was taken: %s", body)
	}
	if _, body := status(t, "POST", adminURL(p, "/publish"), "", `{"room":"r2","text":"x"}`); !strings.Contains(body, `"delivered":0`) {
		t.Errorf("the second room was taken: %s", body)
	}
	status(t, "POST", adminURL(p, "/publish"), "", `{"room":"r1","text":"to r1"}`)
	msg, op, err := c.ReadMessage(5 * time.Second)
	if err != nil || msg != "to r1" || op != 0x1 {
		t.Errorf("got %q op %v %v, want the text frame of the first room (support_gzip=0 is first)", msg, op, err)
	}
	// The same with a token: the first token= counts.
	const secret = "a-test-secret-of-32-bytes-or-more!"
	q := mint(t, jwt.SigningMethodHS256, []byte(secret), "first", time.Hour, nil)
	pj := wstest.StartBinary(t, "-jwt-secret", secret)
	if _, st, err := wstest.TryDial(pj.Addr, "specialKey=first&token="+q+"&token=bogus"); st != 101 {
		t.Errorf("first token good, second bogus: %d %v", st, err)
	}
	if _, st, _ := wstest.TryDial(pj.Addr, "specialKey=first&token=bogus&token="+q); st != 401 {
		t.Errorf("first token bogus: %d, want 401", st)
	}
}

func TestPprofNeedsTokenAndCmdlineIsRedacted(t *testing.T) {
	const token = "admin-secret-value"
	const secret = "jwt-secret-value-that-is-long-enough"
	p := wstest.StartBinary(t, "-admin-token", token, "-jwt-secret="+secret)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1", "/debug/pprof/symbol"} {
		if st, _ := status(t, "GET", adminURL(p, path), "", ""); st != 401 {
			t.Errorf("%s without the token: %d, want 401", path, st)
		}
		if st, _ := status(t, "GET", adminURL(p, path), token, ""); st != 200 {
			t.Errorf("%s with the token: %d, want 200", path, st)
		}
	}
	_, cmdline := status(t, "GET", adminURL(p, "/debug/pprof/cmdline"), token, "")
	if strings.Contains(cmdline, token) || strings.Contains(cmdline, secret) ||
		!strings.Contains(cmdline, "-admin-token\x00REDACTED") || !strings.Contains(cmdline, "-jwt-secret=REDACTED") {
		t.Errorf("cmdline %q", cmdline)
	}
	// No token set: pprof is open, and the JWT secret still does not show.
	open := wstest.StartBinary(t, "-jwt-secret", secret)
	st, cmdline := status(t, "GET", adminURL(open, "/debug/pprof/cmdline"), "", "")
	if st != 200 || strings.Contains(cmdline, secret) || !strings.Contains(cmdline, "REDACTED") {
		t.Errorf("cmdline without a token: %d %q", st, cmdline)
	}
}

func TestRefusalsLoggedAtInfoRateLimited(t *testing.T) {
	p := wstest.StartBinary(t, "-allowed-origins", "https://ok.example")
	for i := 0; i < 20; i++ {
		dialOrigin(p.Addr, "k", "https://evil.example")
	}
	line := waitLog(t, p, "level=INFO", "handshake refused", "status=403")
	for _, want := range []string{`reason="origin not allowed"`, "remote=127.0.0.1:", "origin=https://evil.example"} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal line %q lacks %s", line, want)
		}
	}
	// 20 refusals make far fewer lines; the exact once-a-second rule, with
	// a stepped clock, is session's TestRefusalLogRateLimited.
	if n := strings.Count(p.Log(), "handshake refused"); n > 10 {
		t.Errorf("%d refusal lines for 20 refusals: not rate-limited", n)
	}
}

func TestJSONLogFormat(t *testing.T) {
	cmd := exec.Command(wstest.BuildBinary(t), "-log-format", "json", "-addr", "127.0.0.1:0", "-admin-addr", "off")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		if line["msg"] == "listening" {
			if line["addr"] == nil || line["max_message"] == nil {
				t.Errorf("listening line %v", line)
			}
			return
		}
	}
	t.Fatal("no listening line")
}

// The chat page follows the JWT rule in force: a reload that turns tokens
// on shows the page's token field without a restart.
func TestPageFollowsReloadedJWT(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, filepath.Join(dir, "wsd.conf"), "log-level info\n")
	p := wstest.StartBinary(t, "-config", conf)
	page := func() string {
		resp, err := http.Get("http://" + p.Addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if !strings.Contains(page(), `data-jwt="0"`) {
		t.Fatal("the page asks for a token before JWT is on")
	}
	writeFile(t, conf, "jwt-secret "+strings.Repeat("k", 32)+"\n")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "msg=reloaded")
	if !strings.Contains(page(), `data-jwt="1"`) {
		t.Fatal("after the reload turned JWT on, the page still has no token field")
	}
}
