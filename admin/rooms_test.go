package admin_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// The rooms' order and history on the admin port, and POST /publish's
// stamp.
func TestRooms(t *testing.T) {
	f := start(t)
	addr := f.srv.Addr().String()
	a := wstest.Dial(t, addr, "specialKey=alice&room=lobby")
	wstest.Dial(t, addr, "specialKey=bob&room=lobby")
	wstest.Eventually(t, 5*time.Second, "2 connections", func() bool { return f.srv.Hub().Stats().Open.Load() == 2 })
	bearer := "Bearer " + token

	if status, _ := f.do(t, "GET", "/rooms", "", ""); status != 401 {
		t.Fatalf("GET /rooms without the token: %d", status)
	}
	status, out := f.do(t, "POST", "/publish", bearer, `{"room":"lobby","text":"one"}`)
	if status != 200 || out["seq"] != 1.0 || out["epoch"] == nil || out["ts"] == nil {
		t.Fatalf("publish: %d %v, want seq 1 with epoch and ts", status, out)
	}
	epoch := out["epoch"]
	a.WriteText("two")
	wstest.Eventually(t, 5*time.Second, "the second message stamped", func() bool {
		_, out := f.do(t, "GET", "/rooms/lobby", bearer, "")
		return out["seq"] == 2.0
	})

	_, out = f.do(t, "GET", "/rooms", bearer, "")
	if fmt.Sprint(out["rooms"]) != fmt.Sprintf("[map[count:2 epoch:%v history_bytes:%v retained:2 room:lobby seq:2]]", epoch, out["rooms"].([]any)[0].(map[string]any)["history_bytes"]) {
		t.Fatalf("GET /rooms: %v", out)
	}
	_, out = f.do(t, "GET", "/rooms/lobby", bearer, "")
	if fmt.Sprint(out["members"]) != "[alice bob]" || out["count"] != 2.0 || out["truncated"] != false || out["epoch"] != epoch {
		t.Fatalf("GET /rooms/lobby: %v", out)
	}
	_, out = f.do(t, "GET", "/rooms/lobby/history", bearer, "")
	msgs, _ := out["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("history: %v", out)
	}
	first, second := msgs[0].(map[string]any), msgs[1].(map[string]any)
	if first["text"] != "one" || first["from"] != "" || first["seq"] != 1.0 || second["text"] != "two" || second["from"] != "alice" {
		t.Fatalf("history: %v", msgs)
	}
	for _, path := range []string{"/rooms/nowhere", "/rooms/nowhere/history"} {
		if status, _ := f.do(t, "GET", path, bearer, ""); status != 404 {
			t.Fatalf("GET %s: %d, want 404", path, status)
		}
	}
	if status, _ := f.do(t, "GET", "/rooms/bad%20room", bearer, ""); status != 400 {
		t.Fatalf("bad room: %d, want 400", status)
	}
	// A key or every room has no single stamp.
	if _, out := f.do(t, "POST", "/publish", bearer, `{"key":"alice","text":"x"}`); out["seq"] != nil {
		t.Fatalf("a direct publish answered a seq: %v", out)
	}
}
