package codec

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

const goodKey = "dGhlIHNhbXBsZSBub25jZQ=="

func request(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + goodKey + "\r\nSec-WebSocket-Version: 13\r\n" + strings.Join(extra, "") + "\r\n"
}

var upgradeCases = []struct {
	name   string
	req    string
	admit  error
	status int
	check  func(*testing.T, *Request)
}{
	{name: "seed client", req: request("/?specialKey=alice&support_gzip=1"), status: 101, check: func(t *testing.T, r *Request) {
		if string(r.Key) != "alice" || !r.Gzip || r.Room != nil {
			t.Errorf("request %+v", r)
		}
	}},
	{name: "escaped key, room, token, headers", req: request("/?room=lobby&specialKey=a%20b+c%2F&token=t%2Bk&support_gzip=0",
		"Origin: https://chat.example.com\r\n", "Authorization: Bearer xyz\r\n"), status: 101, check: func(t *testing.T, r *Request) {
		if string(r.Key) != "a b c/" || r.Gzip || string(r.Room) != "lobby" || string(r.Token) != "t+k" ||
			string(r.Origin) != "https://chat.example.com" || string(r.Authorization) != "Bearer xyz" {
			t.Errorf("request %+v", r)
		}
	}},
	{name: "missing key", req: request("/?support_gzip=1"), status: 400},
	{name: "empty key", req: request("/?specialKey="), status: 400},
	{name: "no query", req: request("/"), status: 400},
	{name: "key too long", req: request("/?specialKey=" + strings.Repeat("k", MaxKeyLen+1)), status: 400},
	{name: "key at max", req: request("/?specialKey=" + strings.Repeat("k", MaxKeyLen)), status: 101},
	{name: "bad escape", req: request("/?specialKey=%zz"), status: 400},
	{name: "truncated escape", req: request("/?specialKey=ab%4"), status: 400},
	{name: "bad room", req: request("/?specialKey=a&room=no/slash"), status: 400},
	{name: "room too long", req: request("/?specialKey=a&room=" + strings.Repeat("r", MaxRoomLen+1)), status: 400},
	{name: "other path", req: request("/chat?specialKey=a"), status: 404},
	{name: "post", req: strings.Replace(request("/?specialKey=a"), "GET", "POST", 1), status: 405},
	{name: "http/1.0", req: strings.Replace(request("/?specialKey=a"), "HTTP/1.1", "HTTP/1.0", 1), status: 505},
	{name: "version 8", req: strings.Replace(request("/?specialKey=a"), "Version: 13", "Version: 8", 1), status: 426},
	{name: "no ws key", req: strings.Replace(request("/?specialKey=a"), "Sec-WebSocket-Key: "+goodKey+"\r\n", "", 1), status: 400},
	{name: "no upgrade", req: strings.Replace(request("/?specialKey=a"), "Upgrade: websocket\r\n", "", 1), status: 400},
	{name: "no host", req: strings.Replace(request("/?specialKey=a"), "Host: example.com\r\n", "", 1), status: 400},
	{name: "garbage", req: "\x16\x03\x01 hello\r\n\r\n", status: 400},
	{name: "over capacity", req: request("/?specialKey=a"), admit: ErrOverCapacity, status: 503},
}

func responseStatus(t *testing.T, resp []byte) (*http.Response, int) {
	t.Helper()
	r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(resp)), nil)
	if err != nil {
		t.Fatalf("unparsable response %q: %v", resp, err)
	}
	return r, r.StatusCode
}

func TestUpgrade(t *testing.T) {
	for _, tc := range upgradeCases {
		t.Run(tc.name, func(t *testing.T) {
			u := NewUpgrader()
			if tc.admit != nil {
				u.Admit = func() error { return tc.admit }
			}
			req, resp, err := u.Upgrade([]byte(tc.req), nil)
			r, status := responseStatus(t, resp)
			if status != tc.status {
				t.Fatalf("status %d, want %d (err %v)\n%s", status, tc.status, err, resp)
			}
			if status == 101 {
				if err != nil || req == nil {
					t.Fatalf("101 with err %v", err)
				}
				if got := r.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
					t.Errorf("accept %q", got)
				}
				if tc.check != nil {
					tc.check(t, req)
				}
				return
			}
			if err == nil || req != nil {
				t.Fatalf("refusal without error")
			}
			if StatusOf(err) != tc.status {
				t.Errorf("StatusOf = %d, want %d", StatusOf(err), tc.status)
			}
		})
	}
}

func TestHandshakeEnd(t *testing.T) {
	req := []byte(request("/?specialKey=a") + "PIPELINED")
	want := len(req) - len("PIPELINED")
	if got := HandshakeEnd(req, 0); got != want {
		t.Fatalf("HandshakeEnd = %d, want %d", got, want)
	}
	// Fed in pieces, resuming where the last search stopped.
	for cut := 1; cut < want; cut++ {
		if HandshakeEnd(req[:cut], 0) != -1 {
			t.Fatalf("end found in a %d-byte prefix", cut)
		}
		if got := HandshakeEnd(req, cut); got != want {
			t.Fatalf("resume from %d: %d, want %d", cut, got, want)
		}
	}
}

func TestAppendRejection(t *testing.T) {
	resp := AppendRejection(nil, ErrHeadTooLarge)
	r, status := responseStatus(t, resp)
	if status != 431 || !r.Close {
		t.Fatalf("status %d headers %v", status, r.Header)
	}
}

func BenchmarkUpgrade(b *testing.B) {
	req := []byte(request("/?specialKey=alice&support_gzip=1", "Origin: https://chat.example.com\r\n"))
	u := NewUpgrader()
	out := make([]byte, 0, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, resp, err := u.Upgrade(req, out[:0])
		if err != nil {
			b.Fatal(err)
		}
		out = resp[:0]
	}
}

func FuzzUpgrade(f *testing.F) {
	for _, tc := range upgradeCases {
		f.Add([]byte(tc.req))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		u := NewUpgrader()
		req, resp, err := u.Upgrade(head, nil)
		if !bytes.HasPrefix(resp, []byte("HTTP/1.1 ")) {
			t.Fatalf("response %q", resp)
		}
		if (err == nil) != (req != nil) {
			t.Fatalf("err %v with request %v", err, req)
		}
		if req != nil && (len(req.Key) == 0 || len(req.Key) > MaxKeyLen) {
			t.Fatalf("accepted key of %d bytes", len(req.Key))
		}
	})
}
