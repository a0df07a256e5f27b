package main

import (
	"flag"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseCase is one command line for a scenario: wantErr, or options that
// pass check.
type parseCase struct {
	name    string
	args    []string
	wantErr string
	check   func(*options) bool
}

// runParseCases parses each case's arguments for scenario and checks it.
func runParseCases(t *testing.T, scenario string, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(scenario, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(o) {
				t.Fatalf("unexpected options %+v (hostile %+v)", o, o.hostile)
			}
		})
	}
}

func TestParse(t *testing.T) {
	runParseCases(t, "storm", []parseCase{
		{name: "defaults", check: func(o *options) bool {
			return o.addr == "127.0.0.1:8888" && o.n == 1000 && len(o.src) == 4 && o.json == "" && o.progress != nil
		}},
		{name: "settings", args: []string{"-addr", "127.0.0.9:1234", "-n", "19000", "-src", "127.0.0.1, 127.1.2.3,", "-duration", "2s", "-q"},
			check: func(o *options) bool {
				return o.addr == "127.0.0.9:1234" && o.n == 19000 && reflect.DeepEqual(o.src, []string{"127.0.0.1", "127.1.2.3"}) &&
					o.duration == 2*time.Second && o.progress == nil
			}},
		{name: "bare json last", args: []string{"-n", "5", "-json"}, check: func(o *options) bool { return o.json == "-" }},
		{name: "bare json then flag", args: []string{"-json", "-n", "5"}, check: func(o *options) bool { return o.json == "-" && o.n == 5 }},
		{name: "json file", args: []string{"-json", "out.json"}, check: func(o *options) bool { return o.json == "out.json" }},
		{name: "inflight default", args: nil, check: func(o *options) bool { return o.inflightOr(8) == 8 }},
		{name: "inflight set", args: []string{"-inflight", "3"}, check: func(o *options) bool { return o.inflightOr(8) == 3 }},
		{name: "remote addr", args: []string{"-addr", "10.0.0.1:80"}, wantErr: "only 127.0.0.0/8"},
		{name: "hostname", args: []string{"-addr", "example.com:80"}, wantErr: "only 127.0.0.0/8"},
		{name: "ipv6", args: []string{"-addr", "[::1]:80"}, wantErr: "only 127.0.0.0/8"},
		{name: "no port", args: []string{"-addr", "127.0.0.1"}, wantErr: "-addr"},
		{name: "port 0", args: []string{"-addr", "127.0.0.1:0"}, wantErr: "needs a port"},
		{name: "remote src", args: []string{"-src", "127.0.0.1,192.168.1.1"}, wantErr: "-src"},
		{name: "empty src", args: []string{"-src", ","}, wantErr: "-src"},
		{name: "too many conns", args: []string{"-n", "19001"}, wantErr: "-n 19001"},
		{name: "no conns", args: []string{"-n", "0"}, wantErr: "-n 0"},
		{name: "small size", args: []string{"-size", "10"}, wantErr: "-size"},
		{name: "unbounded duration", args: []string{"-duration", "0s"}, wantErr: "-duration"},
		{name: "long duration", args: []string{"-duration", "1h"}, wantErr: "-duration"},
		{name: "gzip frac", args: []string{"-gzip-frac", "1.5"}, wantErr: "-gzip-frac"},
		{name: "no senders", args: []string{"-senders", "0"}, wantErr: "-senders"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
		{name: "another scenario's flag", args: []string{"-hold", "1s"}, wantErr: "not defined"},
	})
}

// TestScenarioFlags: each scenario's FlagSet holds the flags it reads and
// no other, so "bench NAME -h" is that scenario's reference.
func TestScenarioFlags(t *testing.T) {
	common := "addr src dialers dial-timeout gzip-frac server-pid metrics json cpuprofile tls"
	for _, tc := range []struct{ name, own string }{
		{"idle", "n timeout deflate hold proto rooms warmup"},
		{"fanout", "n timeout deflate size read-buf memo-gzip m inflight proto"},
		{"recover", "n timeout deflate m rounds size"},
		{"presence", "n timeout deflate joins churn-hold duration interval m"},
		{"rooms", "n timeout deflate rooms room-pool m size"},
		{"storm", "n timeout deflate size read-buf memo-gzip senders inflight duration"},
		{"connect", "duration rst"},
		{"hostile", "duration timeout attacks partial-conns partial-size inflate-msgs inflate-size flood-members flood-msgs pingers pings bomb-members bombs cont-attackers cont-frames pongers pongs fanflood-senders fanflood-rate fanflood-members deflate-msgs presocks partialip-conns honest-p99 max-rss"},
	} {
		src := ""
		fs, err := defaultOptions().flagSet(tc.name, &src)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		fs.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
		want := strings.Fields(common + " " + tc.own)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s flags %v, want %v", tc.name, got, want)
		}
	}
	if _, err := defaultOptions().flagSet("nope", new(string)); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestParseChat(t *testing.T) {
	runParseCases(t, "fanout", []parseCase{
		{name: "proto v1", args: []string{"-proto", "v1"}, check: func(o *options) bool { return o.proto == "v1" }},
		{name: "proto other", args: []string{"-proto", "v2"}, wantErr: "-proto"},
	})
	runParseCases(t, "idle", []parseCase{
		{name: "defaults", check: func(o *options) bool { return o.proto == "seed" && o.idleRooms == 1 && o.warmup == 50 }},
		{name: "v1 rooms", args: []string{"-proto", "v1", "-rooms", "10", "-warmup", "0"}, check: func(o *options) bool {
			return o.proto == "v1" && o.idleRooms == 10 && o.warmup == 0
		}},
		{name: "seed in two rooms", args: []string{"-rooms", "2"}, wantErr: "-proto v1"},
		{name: "no room", args: []string{"-proto", "v1", "-rooms", "0"}, wantErr: "-rooms 0"},
		{name: "warmup over the fd limit", args: []string{"-n", "19000", "-warmup", "10"}, wantErr: "-warmup"},
	})
	runParseCases(t, "recover", []parseCase{
		{name: "defaults", check: func(o *options) bool { return o.n == 2000 && o.messages == 100 && o.rounds == 1 }},
		{name: "rounds", args: []string{"-rounds", "5"}, check: func(o *options) bool { return o.rounds == 5 }},
		{name: "no rounds", args: []string{"-rounds", "0"}, wantErr: "-rounds"},
	})
	runParseCases(t, "presence", []parseCase{
		{name: "defaults", check: func(o *options) bool {
			return o.n == 10000 && o.joins == 1000 && o.churnHold == time.Second && o.duration == 10*time.Second
		}},
		// 10,000 members and 1,000 joins/s held 9 s (and a second of slack): 20,000 sockets.
		{name: "over the fd limit", args: []string{"-churn-hold", "9s"}, wantErr: "sockets"},
		{name: "negative joins", args: []string{"-joins", "-1"}, wantErr: "-joins"},
	})
	runParseCases(t, "rooms", []parseCase{
		{name: "defaults", check: func(o *options) bool { return slices.Equal(o.levels, []int{1, 10, 100}) && o.roomPool == 1000 }},
		{name: "levels", args: []string{"-rooms", "2,5"}, check: func(o *options) bool { return slices.Equal(o.levels, []int{2, 5}) }},
		{name: "decreasing", args: []string{"-rooms", "10,1"}, wantErr: "-rooms"},
		{name: "not a number", args: []string{"-rooms", "x"}, wantErr: "-rooms"},
	})
}

func TestParseHostile(t *testing.T) {
	runParseCases(t, "hostile", []parseCase{
		{name: "defaults", check: func(o *options) bool {
			h := o.hostile
			return o.duration == 3*time.Second && slices.Equal(h.attacks, attackNames) && h.partialConns == 256 &&
				h.maxRSS == 1536<<20 && h.honestP99 == time.Second
		}},
		{name: "some attacks", args: []string{"-attacks", "bomb, ping", "-duration", "1s", "-max-rss", "512", "-pings", "10"},
			check: func(o *options) bool {
				return slices.Equal(o.hostile.attacks, []string{"bomb", "ping"}) && o.duration == time.Second &&
					o.hostile.maxRSS == 512<<20 && o.hostile.pings == 10
			}},
		{name: "unknown attack", args: []string{"-attacks", "partial,nope"}, wantErr: `unknown attack "nope"`},
		{name: "no attack", args: []string{"-attacks", ","}, wantErr: "-attacks"},
		{name: "partial too big for the box", args: []string{"-partial-conns", "2000"}, wantErr: "-partial-conns × -partial-size"},
		{name: "partial small enough", args: []string{"-partial-conns", "2000", "-partial-size", "65536"},
			check: func(o *options) bool { return o.hostile.partialConns == 2000 }},
		{name: "bombs too big for the box", args: []string{"-bombs", "5000"}, wantErr: "-bombs × -inflate-size"},
		{name: "deflate bombs too big for the box", args: []string{"-deflate-msgs", "5000"}, wantErr: "-deflate-msgs × -inflate-size"},
		{name: "partialip too big for the box", args: []string{"-partialip-conns", "2000"}, wantErr: "-partialip-conns × -partial-size"},
		{name: "fanflood rate unbounded", args: []string{"-fanflood-rate", "1000000"}, wantErr: "-fanflood-rate"},
		{name: "fairness attacks", args: []string{"-attacks", "cont,pong,fanflood,deflate,presock,partialip", "-presocks", "500", "-fanflood-rate", "100"},
			check: func(o *options) bool {
				return len(o.hostile.attacks) == 6 && o.hostile.presocks == 500 && o.hostile.fanRate == 100
			}},
		{name: "message over 1 MiB", args: []string{"-inflate-size", "2000000"}, wantErr: "-inflate-size"},
		{name: "no pingers", args: []string{"-pingers", "0"}, wantErr: "-pingers 0"},
		{name: "too many members", args: []string{"-flood-members", "6000"}, wantErr: "-flood-members"},
		{name: "rss cap too high", args: []string{"-max-rss", "100000"}, wantErr: "-max-rss"},
		{name: "rss cap not a number", args: []string{"-max-rss", "1G"}, wantErr: "max-rss"},
		{name: "unbounded duration", args: []string{"-duration", "0s"}, wantErr: "-duration"},
		{name: "another scenario's flag", args: []string{"-n", "5"}, wantErr: "not defined"},
	})
}

func TestGzipFor(t *testing.T) {
	for _, tc := range []struct {
		frac float64
		n    int
		want int
	}{{0, 100, 0}, {1, 100, 100}, {0.5, 100, 50}, {0.5, 5001, 2500}, {0.1, 1000, 100}, {0.333, 3000, 999}} {
		f, got := gzipFor(tc.frac), 0
		for i := range tc.n {
			if f(i) {
				got++
			}
		}
		if got != tc.want {
			t.Errorf("gzipFor(%v) over %d: %d gzip, want %d", tc.frac, tc.n, got, tc.want)
		}
	}
}

func TestCompareOptionsAreValid(t *testing.T) {
	for _, quick := range []bool{false, true} {
		for name, o := range compareOptions(quick, []string{"127.0.0.1", "127.0.0.2"}) {
			o.addr = "127.0.0.1:1"
			if err := o.check(); err != nil {
				t.Errorf("quick=%v %s: %v", quick, name, err)
			}
		}
	}
	full, quick := compareOptions(false, nil), compareOptions(true, nil)
	if full["idle"].n != 15000 || quick["idle"].n != 1500 || full["fanout"].n != 5000 || full["storm"].duration != 10*time.Second ||
		quick["connect"].duration != time.Second || full["fanout"].messages != 50 || quick["fanout"].messages != 5 {
		t.Fatalf("compare settings changed: full %+v quick %+v", full, quick)
	}
	if full["hostile"].duration != 3*time.Second || full["hostile"].hostile.partialConns != 256 || quick["hostile"].hostile.bombs != 10 {
		t.Fatalf("compare hostile settings changed: full %+v quick %+v", full["hostile"].hostile, quick["hostile"].hostile)
	}
}
