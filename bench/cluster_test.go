package main

import (
	"strings"
	"testing"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// The cluster scenario end to end, tiny: NATS in a child process, three
// real wsd boxes, the fanout load spread over them; every delivery
// arrives, and each box with gzip members gzips once per broadcast.
func TestClusterScenario(t *testing.T) {
	bin := wstest.BuildBinary(t)
	p := &serverProc{addr: "127.0.0.1:1"}
	o := tinyOptions(t, p)
	o.n, o.messages = 60, 5
	runs, err := runClusterScenario(o, &clusterOptions{boxes: 3, bin: bin, single: true}, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs", len(runs))
	}
	for _, r := range runs {
		must(t, r.Result, "deliveries received", 300)
		must(t, r.Result, "deliveries missing", 0)
		noErrors(t, r.Result)
	}
	if v, _ := runs[1].Result.get("server gzip encodings per broadcast"); v < 2 || v > 3 {
		t.Errorf("gzip per box: %v encodings per broadcast", v)
	}
	var b strings.Builder
	printClusterTable(&b, runs)
	if !strings.Contains(b.String(), "3 boxes / one box") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestParseCluster(t *testing.T) {
	o, co, err := parseCluster([]string{"-boxes", "2", "-n", "100", "-single=false", "-m", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if co.boxes != 2 || co.single || o.n != 100 || o.messages != 3 {
		t.Fatalf("%+v %+v", co, o)
	}
	if _, _, err := parseCluster([]string{"-boxes", "9"}); err == nil {
		t.Error("-boxes 9 accepted")
	}
}
