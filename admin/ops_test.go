package admin_test

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/internal/wstest"
)

func TestRedactArgs(t *testing.T) {
	secret := admin.DefaultSecretFlags
	for _, tc := range []struct{ in, want []string }{
		{[]string{"wsd", "-admin-token", "s1", "-workers", "2"}, []string{"wsd", "-admin-token", "REDACTED", "-workers", "2"}},
		{[]string{"wsd", "--jwt-secret=s2", "-admin-token=s3"}, []string{"wsd", "--jwt-secret=REDACTED", "-admin-token=REDACTED"}},
		{[]string{"wsd", "-jwt-secret-file", "/run/s", "-admin-token"}, []string{"wsd", "-jwt-secret-file", "/run/s", "-admin-token"}},
		{[]string{"wsd", "-allowed-origins", "-admin-token"}, []string{"wsd", "-allowed-origins", "-admin-token"}},
	} {
		if got := admin.RedactArgs(tc.in, secret); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("RedactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPublishNeedsText(t *testing.T) {
	f := start(t)
	for _, body := range []string{`{}`, `{"room":"a"}`, `{"key":"k","text":""}`} {
		if status, out := f.do(t, "POST", "/publish", "Bearer "+token, body); status != 400 || out["error"] != "text is required" {
			t.Errorf("publish %s: %d %v, want 400 text is required", body, status, out)
		}
	}
}

func TestDisconnect(t *testing.T) {
	f := start(t)
	c := wstest.Dial(t, f.srv.Addr().String(), "specialKey=alice")
	for _, tc := range []struct {
		auth, body string
		status     int
	}{
		{"", `{"key":"alice"}`, 401},
		{"Bearer " + token, `{}`, 400},
		{"Bearer " + token, `{"key":"alice","code":1000}`, 400},
		{"Bearer " + token, `{"key":"alice","extra":1}`, 400},
		{"Bearer " + token, `{"key":"nobody"} {"key":"alice"}`, 400},
		{"Bearer " + token, `{"key":"` + strings.Repeat("a", 4096) + `"}`, 413},
		{"Bearer " + token, `{"key":"nobody"}`, 200},
	} {
		if status, out := f.do(t, "POST", "/disconnect", tc.auth, tc.body); status != tc.status {
			t.Errorf("disconnect %s: %d %v, want %d", tc.body, status, out, tc.status)
		}
	}
	status, out := f.do(t, "POST", "/disconnect", "Bearer "+token, `{"key":"alice","code":4010,"reason":"banned"}`)
	if status != 200 || out["disconnected"] != true {
		t.Fatalf("disconnect alice: %d %v", status, out)
	}
	f2, err := c.ReadFrame(5 * time.Second)
	if err != nil || f2.CloseCode() != 4010 || string(f2.Payload[2:]) != "banned" {
		t.Fatalf("close frame %v %q, %v; want 4010 banned", f2.Op, f2.Payload, err)
	}
}

func TestLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := admin.LimitListener(ln, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := <-accepted
	<-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted over the limit of 2")
	case <-time.After(100 * time.Millisecond):
	}
	first.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection was not accepted after a slot freed")
	}
}
