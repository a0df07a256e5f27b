package cluster_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// The admin surface of a box in a cluster: publish answers say what this
// box delivered and that the message went on; /stats and /metrics show the
// bridge; /readyz does not care about NATS.
func TestAdminInCluster(t *testing.T) {
	ns, boxes := startCluster(t, 2)
	h := httptest.NewServer(admin.NewHandler(boxes[0].srv, admin.Options{Cluster: boxes[0].br}))
	t.Cleanup(h.Close)
	here := wstest.Dial(t, boxes[0].addr(), "specialKey=here&room=r")
	there := wstest.Dial(t, boxes[1].addr(), "specialKey=there&room=r")
	syncAll(t, boxes)

	post := func(body string) admin.PublishResponse {
		t.Helper()
		resp, err := http.Post(h.URL+"/publish", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out admin.PublishResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", body, resp.StatusCode, err)
		}
		return out
	}
	// A room publish answers this box's stamp too (seq 1, then 3: "*" took 2).
	if r := post(`{"room":"r","text":"one"}`); r.Delivered != 1 || r.Cluster != admin.ClusterSent || r.Seq != 1 || r.Epoch == "" {
		t.Errorf("room: %+v", r)
	}
	if r := post(`{"room":"*","text":"two"}`); r != (admin.PublishResponse{Delivered: 1, Cluster: admin.ClusterSent}) {
		t.Errorf("*: %+v", r)
	}
	if r := post(`{"key":"there","text":"three"}`); r != (admin.PublishResponse{Delivered: 0, Cluster: admin.ClusterSent}) {
		t.Errorf("remote key: %+v", r)
	}
	if r := post(`{"key":"here","text":"four"}`); r != (admin.PublishResponse{Delivered: 1, Cluster: admin.ClusterLocal}) {
		t.Errorf("local key: %+v", r)
	}
	// Each box's broadcasts reach a member in order; a direct message is
	// queued on its connection at once, so it may pass a broadcast still
	// waiting in a shard's outbox: compared as a set.
	for _, tc := range []struct {
		c    *wstest.Client
		want []string
	}{{here, []string{"one", "two", "four"}}, {there, []string{"one", "two", "three"}}} {
		var got []string
		for range tc.want {
			text, _, err := tc.c.ReadMessage(5 * time.Second)
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
			got = append(got, text)
		}
		if !slices.Equal(sorted(got), sorted(tc.want)) {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}

	get := func(path string) (int, string) {
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var snap admin.Snapshot
	_, body := get("/stats")
	if err := json.Unmarshal([]byte(body), &snap); err != nil || snap.Cluster == nil {
		t.Fatalf("/stats: %s", body)
	}
	if snap.Cluster.BoxID != "box0" || snap.Cluster.NATS != "connected" || snap.Cluster.Subscriptions != 5 {
		t.Errorf("/stats cluster: %+v", *snap.Cluster)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{"wsd_cluster_connected 1", `wsd_cluster_subscriptions{kind="room"} 1`,
		`wsd_cluster_subscriptions{kind="key"} 1`, `wsd_cluster_subscriptions{kind="presence"} 1`, `wsd_cluster_subscriptions{kind="all"} 2`, `wsd_cluster_dropped_total{reason="malformed"} 0`,
		"wsd_cluster_published_total", "wsd_cluster_remote_deliveries_total", "wsd_cluster_reconnects_total 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	ns.Shutdown()
	wstest.Eventually(t, 5*time.Second, "disconnected", func() bool { return !boxes[0].br.Stats().Connected.Load() })
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz without NATS: %d", code)
	}
	if r := post(`{"room":"r","text":"five"}`); r.Delivered != 1 || r.Cluster != admin.ClusterNotSent || r.Seq != 3 {
		t.Errorf("room without NATS: %+v", r)
	}
	expectText(t, here, "five", false)
	_, body = get("/stats")
	if !strings.Contains(body, `"nats":"reconnecting"`) {
		t.Errorf("/stats without NATS: %s", body)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
