package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The files under deploy/ are part of what wsd ships: they must parse and
// agree with the binary's flags.

// parseUnit reads a systemd unit into section -> key -> values (a key may
// repeat).
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if unit[section] != nil {
				t.Errorf("%s:%d: section [%s] twice", path, n, section)
			}
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.TrimSpace(k) != k || k == "" {
				t.Errorf("%s:%d: not key=value in a section: %q", path, n, line)
				continue
			}
			unit[section][k] = append(unit[section][k], v)
		}
	}
	return unit
}

func one(t *testing.T, unit map[string]map[string][]string, section, key string) string {
	t.Helper()
	v := unit[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %q, want exactly one", section, key, v)
	}
	return v[0]
}

func TestSystemdUnit(t *testing.T) {
	unit := parseUnit(t, "../../deploy/wsd.service")
	for _, s := range []string{"Unit", "Service", "Install"} {
		if unit[s] == nil {
			t.Fatalf("no [%s] section", s)
		}
	}
	// ExecStart's and ExecStartPre's arguments are wsd flags.
	for _, key := range []string{"ExecStart", "ExecStartPre"} {
		args := strings.Fields(one(t, unit, "Service", key))
		if args[0] != "/usr/local/bin/wsd" {
			t.Errorf("%s runs %s", key, args[0])
		}
		fs := newFlagSet(&options{}, io.Discard)
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
			t.Errorf("%s %q: %v", key, args[1:], err)
		}
		if key == "ExecStartPre" && fs.Lookup("t").Value.String() != "true" {
			t.Errorf("ExecStartPre should check the configuration with -t: %q", args)
		}
	}
	if v := one(t, unit, "Service", "ExecReload"); !strings.Contains(v, "-HUP $MAINPID") {
		t.Errorf("ExecReload=%s, want a SIGHUP", v)
	}
	if v := one(t, unit, "Service", "Restart"); v != "on-failure" {
		t.Errorf("Restart=%s", v)
	}
	nofile, err := strconv.Atoi(one(t, unit, "Service", "LimitNOFILE"))
	if err != nil || nofile < 1_000_000 {
		t.Errorf("LimitNOFILE %d %v, want a million or more", nofile, err)
	}
	for _, key := range []string{"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "User"} {
		if len(unit["Service"][key]) == 0 {
			t.Errorf("no %s hardening", key)
		}
	}
	if one(t, unit, "Service", "User") == "root" {
		t.Error("runs as root")
	}
	// The stop timeout covers the example configuration's whole drain.
	stop, err := time.ParseDuration(one(t, unit, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	o := exampleConfig(t)
	if drain := o.drainDelay + o.lameDuck + o.shutdownTimeout; stop <= drain {
		t.Errorf("TimeoutStopSec=%v does not cover the drain of wsd.conf (%v)", stop, drain)
	}
	// The sysctl drop-in allows the unit's file limit.
	sysctl := parseSysctl(t, "../../deploy/90-wsd.conf")
	if nrOpen, _ := strconv.Atoi(sysctl["fs.nr_open"]); nrOpen < nofile {
		t.Errorf("fs.nr_open %d below LimitNOFILE %d", nrOpen, nofile)
	}
	if v, _ := strconv.Atoi(sysctl["net.core.somaxconn"]); v < o.server.Backlog {
		t.Errorf("net.core.somaxconn %d below the example's backlog %d", v, o.server.Backlog)
	}
}

func parseSysctl(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" || strings.ContainsAny(k, " \t") {
			t.Errorf("%s:%d: not key = value: %q", path, n+1, line)
		}
		out[k] = v
	}
	return out
}

// exampleConfig parses deploy/wsd.conf as wsd does, its token file
// replaced by a temporary one.
func exampleConfig(t *testing.T) *options {
	t.Helper()
	token := filepath.Join(t.TempDir(), "admin-token")
	os.WriteFile(token, []byte("t\n"), 0o600)
	o, err := parseFlags([]string{"-config", "../../deploy/wsd.conf", "-admin-token-file", token}, io.Discard)
	if err != nil {
		t.Fatalf("deploy/wsd.conf: %v", err)
	}
	return o
}

func TestExampleConfig(t *testing.T) {
	o := exampleConfig(t)
	// Values from the file arrived (a sample of each kind).
	if o.server.Addr != "0.0.0.0:8888" || o.server.Session.Shards != 256 || o.subprotocols != "chat.v1" ||
		o.allowedOrigins != "https://chat.example.com, https://*.example.com" || o.lameDuck != 30*time.Second ||
		o.logFormat != "json" || o.server.Session.MaxMsgRate != 50 {
		t.Errorf("deploy/wsd.conf parsed as %+v", o)
	}
	// Every flag the file sets is one wsd has, and every flag but the
	// command-line-only ones may be set there.
	b, _ := os.ReadFile("../../deploy/wsd.conf")
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		if o.fs.Lookup(name) == nil || commandLineOnly[name] {
			t.Errorf("deploy/wsd.conf sets %q", name)
		}
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	from, user := 0, ""
	fs := newFlagSet(&options{}, io.Discard)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), "\\"))
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "FROM":
			from++
		case "USER":
			user = f[1]
		}
		// ENV WSD_* names a flag.
		for _, kv := range f {
			if name, _, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(name, EnvPrefix+"_") {
				flagName := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix+"_")), "_", "-")
				if fs.Lookup(flagName) == nil {
					t.Errorf("Dockerfile sets %s: no flag -%s", name, flagName)
				}
			}
		}
	}
	if from < 2 {
		t.Errorf("%d FROM lines, want a multi-stage build", from)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q, want non-root", user)
	}
}
