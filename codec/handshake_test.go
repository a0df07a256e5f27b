package codec

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

const goodKey = "dGhlIHNhbXBsZSBub25jZQ=="

func request(target string, extra ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + goodKey + "\r\nSec-WebSocket-Version: 13\r\n" + strings.Join(extra, "") + "\r\n"
}

// acceptFor is RFC 6455 4.2.2's Sec-WebSocket-Accept, computed here
// independently of gobwas/ws.
func acceptFor(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var errPlain = errors.New("not today")

// errFull is a refusal like session's at capacity: Admit's errors keep their status.
var errFull = Reject(http.StatusServiceUnavailable, "server at connection limit")

// upgradeCases are shared by the tests, the benchmarks and the fuzz corpus.
var upgradeCases = []struct {
	name   string
	req    string
	admit  error
	status int
	err    error    // the refusal, when the case checks which one
	want   *Request // with 101: the whole Request
	bench  bool
}{
	{name: "seed client", req: request("/?specialKey=alice&support_gzip=1"), status: 101, bench: true,
		want: &Request{Key: []byte("alice"), Gzip: true}},
	{name: "browser", req: request("/?specialKey=alice", "Origin: https://chat.example.com\r\n", "User-Agent: Mozilla/5.0\r\n",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", "Cache-Control: no-cache\r\n"), status: 101, bench: true,
		want: &Request{Key: []byte("alice"), Origin: []byte("https://chat.example.com")}},
	{name: "escaped key, room, token, headers", req: request("/?room=lobby&specialKey=a%20b+c%2F&token=t%2Bk&support_gzip=0",
		"Origin: https://chat.example.com\r\n", "Authorization: Bearer xyz\r\n"), status: 101,
		want: &Request{Key: []byte("a b c/"), Room: []byte("lobby"), Token: []byte("t+k"),
			Origin: []byte("https://chat.example.com"), Authorization: []byte("Bearer xyz")}},
	{name: "utf8 key", req: request("/?specialKey=%E4%BD%A0%e5%a5%bd"), status: 101, want: &Request{Key: []byte("你好")}},
	{name: "bearer token", req: request("/?specialKey=k", "authorization: bearer  abc.def\r\n"), status: 101,
		want: &Request{Key: []byte("k"), Authorization: []byte("bearer  abc.def")}},
	{name: "bearer token after a tab", req: request("/?specialKey=k", "Authorization: Bearer \tt\r\n"), status: 101,
		want: &Request{Key: []byte("k"), Authorization: []byte("Bearer \tt")}},
	{name: "empty bearer", req: request("/?specialKey=k", "Authorization: Bearer \r\n"), status: 101,
		want: &Request{Key: []byte("k"), Authorization: []byte("Bearer")}},
	{name: "basic auth is no token", req: request("/?specialKey=k", "Authorization: Basic YTpi\r\n"), status: 101,
		want: &Request{Key: []byte("k"), Authorization: []byte("Basic YTpi")}},
	{name: "empty room is the global room", req: request("/?specialKey=k&room="), status: 101, want: &Request{Key: []byte("k")}},
	{name: "empty token", req: request("/?specialKey=k&token="), status: 101, want: &Request{Key: []byte("k")}},
	{name: "room of every allowed character", req: request("/?specialKey=k&room=aZ09_-.:"), status: 101,
		want: &Request{Key: []byte("k"), Room: []byte("aZ09_-.:")}},
	{name: "room at max", req: request("/?specialKey=k&room=" + strings.Repeat("r", MaxRoomLen)), status: 101,
		want: &Request{Key: []byte("k"), Room: []byte(strings.Repeat("r", MaxRoomLen))}},
	{name: "key at max", req: request("/?specialKey=" + strings.Repeat("k", maxKeyLen)), status: 101,
		want: &Request{Key: []byte(strings.Repeat("k", maxKeyLen))}},
	{name: "escaped key at max", req: request("/?specialKey=" + strings.Repeat("%41", maxKeyLen)), status: 101,
		want: &Request{Key: []byte(strings.Repeat("A", maxKeyLen))}},
	{name: "support_gzip other than 1", req: request("/?specialKey=k&support_gzip=true"), status: 101, want: &Request{Key: []byte("k")}},
	{name: "first key wins, unknown parameters ignored", req: request("/?specialKey=a&x=1&&=&y&specialKey=b"), status: 101,
		want: &Request{Key: []byte("a")}},
	{name: "first of each duplicate wins", req: request("/?specialKey=a&room=r1&token=t1&support_gzip=1&room=r2&token=t2&support_gzip=0&specialKey=b"),
		status: 101, want: &Request{Key: []byte("a"), Room: []byte("r1"), Token: []byte("t1"), Gzip: true}},
	{name: "first room empty wins", req: request("/?specialKey=a&room=&room=r2"), status: 101, want: &Request{Key: []byte("a")}},
	{name: "lower-case headers", req: "GET /?specialKey=k HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n" +
		"sec-websocket-key: " + goodKey + "\r\nsec-websocket-version: 13\r\norigin: o\r\n\r\n", status: 101,
		want: &Request{Key: []byte("k"), Origin: []byte("o")}},
	{name: "HTTP/1.2", req: strings.Replace(request("/?specialKey=k"), "HTTP/1.1", "HTTP/1.2", 1), status: 101, want: &Request{Key: []byte("k")}},

	{name: "v1 by query", req: request("/?specialKey=k&proto=v1"), status: 101, want: &Request{Key: []byte("k"), V1: true}},
	{name: "v1 with since and epoch", req: request("/?specialKey=k&room=r&proto=v1&since=41&epoch=k3q7zt2a"), status: 101,
		want: &Request{Key: []byte("k"), Room: []byte("r"), V1: true, HasSince: true, Since: 41, Epoch: []byte("k3q7zt2a")}},
	{name: "v1 since before proto, epoch escaped", req: request("/?since=18446744073709551615&epoch=a%2Fb&specialKey=k&proto=v1"), status: 101,
		want: &Request{Key: []byte("k"), V1: true, HasSince: true, Since: 1<<64 - 1, Epoch: []byte("a/b")}},
	{name: "v1 since 0", req: request("/?specialKey=k&proto=v1&since=0&epoch=e"), status: 101,
		want: &Request{Key: []byte("k"), V1: true, HasSince: true, Epoch: []byte("e")}},
	{name: "v1 history", req: request("/?specialKey=k&proto=v1&history=20"), status: 101,
		want: &Request{Key: []byte("k"), V1: true, HasHistory: true, History: 20}},
	{name: "v1 history 0", req: request("/?specialKey=k&proto=v1&history=0"), status: 101,
		want: &Request{Key: []byte("k"), V1: true, HasHistory: true}},
	{name: "seed ignores v1 parameters", req: request("/?specialKey=k&since=-1&epoch=&history=x"), status: 101, want: &Request{Key: []byte("k")}},
	{name: "v1 first proto wins", req: request("/?specialKey=k&proto=v1&proto=v2"), status: 101, want: &Request{Key: []byte("k"), V1: true}},
	{name: "unknown proto", req: request("/?specialKey=k&proto=v2"), status: 400, err: ErrBadProto},
	{name: "empty proto", req: request("/?specialKey=k&proto="), status: 400, err: ErrBadProto},
	{name: "v1 negative since", req: request("/?specialKey=k&proto=v1&since=-1&epoch=e"), status: 400, err: ErrBadSince},
	{name: "v1 since over 2^64", req: request("/?specialKey=k&proto=v1&since=18446744073709551616&epoch=e"), status: 400, err: ErrBadSince},
	{name: "v1 since with a sign", req: request("/?specialKey=k&proto=v1&since=%2B1&epoch=e"), status: 400, err: ErrBadSince},
	{name: "v1 empty since", req: request("/?specialKey=k&proto=v1&since=&epoch=e"), status: 400, err: ErrBadSince},
	{name: "v1 since without epoch", req: request("/?specialKey=k&proto=v1&since=3"), status: 400, err: ErrBadSince},
	{name: "v1 epoch without since", req: request("/?specialKey=k&proto=v1&epoch=e"), status: 400, err: ErrBadEpoch},
	{name: "v1 empty epoch", req: request("/?specialKey=k&proto=v1&since=1&epoch="), status: 400, err: ErrBadEpoch},
	{name: "v1 epoch too long", req: request("/?specialKey=k&proto=v1&since=1&epoch=" + strings.Repeat("e", MaxEpochLen+1)), status: 400, err: ErrBadEpoch},
	{name: "v1 bad epoch escape", req: request("/?specialKey=k&proto=v1&since=1&epoch=%zz"), status: 400, err: ErrBadEpoch},
	{name: "v1 negative history", req: request("/?specialKey=k&proto=v1&history=-1"), status: 400, err: ErrBadHistory},
	{name: "v1 huge history", req: request("/?specialKey=k&proto=v1&history=99999999999999999999"), status: 400, err: ErrBadHistory},
	{name: "v1 history with since", req: request("/?specialKey=k&proto=v1&history=1&since=1&epoch=e"), status: 400, err: ErrBadHistory},
	{name: "missing key", req: request("/?support_gzip=1"), status: 400},
	{name: "empty key", req: request("/?specialKey="), status: 400},
	{name: "key without =", req: request("/?specialKey"), status: 400},
	{name: "no query", req: request("/"), status: 400},
	{name: "empty query", req: request("/?"), status: 400},
	{name: "key too long", req: request("/?specialKey=" + strings.Repeat("k", maxKeyLen+1)), status: 400},
	{name: "escaped key too long", req: request("/?specialKey=" + strings.Repeat("%41", maxKeyLen+1)), status: 400},
	{name: "bad escape", req: request("/?specialKey=%zz"), status: 400},
	{name: "half bad escape", req: request("/?specialKey=%4g"), status: 400},
	{name: "truncated escape", req: request("/?specialKey=ab%4"), status: 400},
	{name: "lone percent", req: request("/?specialKey=ab%"), status: 400},
	{name: "bad escape in room", req: request("/?specialKey=a&room=%"), status: 400},
	{name: "bad escape in token", req: request("/?specialKey=a&token=%x"), status: 400},
	{name: "bad room", req: request("/?specialKey=a&room=no/slash"), status: 400},
	{name: "room with space", req: request("/?specialKey=a&room=a+b"), status: 400},
	{name: "room not ascii", req: request("/?specialKey=a&room=%C3%A9"), status: 400},
	{name: "room too long", req: request("/?specialKey=a&room=" + strings.Repeat("r", MaxRoomLen+1)), status: 400},
	{name: "other path", req: request("/chat?specialKey=a"), status: 404},
	{name: "empty-ish path", req: request("//?specialKey=a"), status: 404},
	{name: "absolute uri", req: request("http://example.com/?specialKey=a"), status: 404},
	{name: "post", req: strings.Replace(request("/?specialKey=a"), "GET", "POST", 1), status: 405},
	{name: "lower-case get", req: strings.Replace(request("/?specialKey=a"), "GET", "get", 1), status: 405},
	{name: "http/1.0", req: strings.Replace(request("/?specialKey=a"), "HTTP/1.1", "HTTP/1.0", 1), status: 505},
	{name: "http/2.0", req: strings.Replace(request("/?specialKey=a"), "HTTP/1.1", "HTTP/2.0", 1), status: 505},
	{name: "version 8", req: strings.Replace(request("/?specialKey=a"), "Version: 13", "Version: 8", 1), status: 426},
	{name: "no version", req: strings.Replace(request("/?specialKey=a"), "Sec-WebSocket-Version: 13\r\n", "", 1), status: 400},
	{name: "no ws key", req: strings.Replace(request("/?specialKey=a"), "Sec-WebSocket-Key: "+goodKey+"\r\n", "", 1), status: 400},
	{name: "short ws key", req: strings.Replace(request("/?specialKey=a"), goodKey, "c2hvcnQ=", 1), status: 400},
	{name: "no upgrade", req: strings.Replace(request("/?specialKey=a"), "Upgrade: websocket\r\n", "", 1), status: 400},
	{name: "upgrade h2c", req: strings.Replace(request("/?specialKey=a"), "Upgrade: websocket", "Upgrade: h2c", 1), status: 400},
	{name: "no connection upgrade", req: strings.Replace(request("/?specialKey=a"), "Connection: Upgrade", "Connection: keep-alive", 1), status: 400},
	{name: "no host", req: strings.Replace(request("/?specialKey=a"), "Host: example.com\r\n", "", 1), status: 400},
	{name: "header without colon", req: request("/?specialKey=a", "Broken header\r\n"), status: 400},
	{name: "garbage", req: "\x16\x03\x01 hello\r\n\r\n", status: 400},
	{name: "request line only", req: "GET /?specialKey=a HTTP/1.1\r\n\r\n", status: 400},
	{name: "no blank line", req: strings.TrimSuffix(request("/?specialKey=a"), "\r\n"), status: 400},
	{name: "empty", req: "", status: 400},
	{name: "duplicate origin", req: request("/?specialKey=a", "Origin: https://a.example\r\n", "Origin: https://b.example\r\n"), status: 400, err: ErrDupOrigin},
	{name: "duplicate origin, same value", req: request("/?specialKey=a", "Origin: o\r\n", "Origin: o\r\n"), status: 400, err: ErrDupOrigin},
	{name: "duplicate origin, other case", req: request("/?specialKey=a", "Origin: o\r\n", "User-Agent: x\r\n", "oRIGIN: o\r\n"), status: 400, err: ErrDupOrigin},
	{name: "duplicate empty origin", req: request("/?specialKey=a", "Origin:\r\n", "Origin: \r\n"), status: 400, err: ErrDupOrigin},
	{name: "duplicate host", req: request("/?specialKey=a", "Host: evil.example\r\n"), status: 400, err: ErrDupHost},
	{name: "duplicate host, other case", req: request("/?specialKey=a", "HOST: example.com\r\n"), status: 400, err: ErrDupHost},
	{name: "duplicate host, spaced name", req: request("/?specialKey=a", " host\t: example.com\r\n"), status: 400, err: ErrDupHost},
	{name: "duplicate ws key", req: request("/?specialKey=a", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"), status: 400, err: ErrDupWSKey},
	{name: "duplicate ws key, same value", req: request("/?specialKey=a", "Sec-WebSocket-Key: "+goodKey+"\r\n"), status: 400, err: ErrDupWSKey},
	{name: "duplicate ws key, other case", req: request("/?specialKey=a", "sec-websocket-KEY: "+goodKey+"\r\n"), status: 400, err: ErrDupWSKey},
	{name: "duplicate ws key, spaced name, bare LF", req: request("/?specialKey=a", "\tSec-WebSocket-Key : "+goodKey+"\n"), status: 400, err: ErrDupWSKey},
	{name: "duplicate ws key, second one short", req: request("/?specialKey=a", "Sec-WebSocket-Key: c2hvcnQ=\r\n"), status: 400, err: ws.ErrHandshakeBadSecKey},
	{name: "duplicate ws key on a refused path", req: request("/x?specialKey=a", "Sec-WebSocket-Key: "+goodKey+"\r\n"), status: 404},
	{name: "duplicate host before capacity", req: request("/?specialKey=a", "Host: h\r\n"), admit: errFull, status: 503},
	{name: "duplicate ws key after a protocol line", req: request("/?specialKey=a", "Sec-WebSocket-Protocol: chat\r\n", "Sec-WebSocket-Key: "+goodKey+"\r\n"), status: 400, err: ErrDupWSKey},
	{name: "repeated upgrade, connection and version lines, one ws key", req: request("/?specialKey=a", "Upgrade: websocket\r\n", "Connection: upgrade\r\n",
		"Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Protocol: chat\r\n"), status: 101, want: &Request{Key: []byte("a")}},
	{name: "key-like names are other headers", req: request("/?specialKey=a", "Sec-WebSocket-Key2: x\r\n", "X-Sec-WebSocket-Key: x\r\n", "Hosts: h\r\n", "X-Origin: o\r\n", "Origin-X: o\r\n"),
		status: 101, want: &Request{Key: []byte("a")}},
	{name: "over capacity", req: request("/?specialKey=a"), admit: errFull, status: 503},
	{name: "admit plain error", req: request("/?specialKey=a"), admit: errPlain, status: 503},
	{name: "admit 429", req: request("/?specialKey=a"), status: 429,
		admit: ws.RejectConnectionError(ws.RejectionStatus(http.StatusTooManyRequests), ws.RejectionReason("slow down"))},
	{name: "over capacity, bad key", req: request("/?specialKey="), admit: errFull, status: 503},
	{name: "wrong path before capacity", req: request("/x?specialKey=a"), admit: errFull, status: 404},
}

// parseResponse reads the status and headers from the response bytes.
func parseResponse(t testing.TB, resp []byte) *http.Response {
	t.Helper()
	r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(resp)), nil)
	if err != nil {
		t.Fatalf("unparsable response %q: %v", resp, err)
	}
	return r
}

func sameRequest(a, b *Request) bool {
	return bytes.Equal(a.Key, b.Key) && a.Gzip == b.Gzip && bytes.Equal(a.Room, b.Room) && (a.Room == nil) == (b.Room == nil) &&
		bytes.Equal(a.Token, b.Token) && (a.Token == nil) == (b.Token == nil) &&
		bytes.Equal(a.Origin, b.Origin) && bytes.Equal(a.Authorization, b.Authorization) &&
		a.V1 == b.V1 && a.HasSince == b.HasSince && a.Since == b.Since && bytes.Equal(a.Epoch, b.Epoch) &&
		a.HasHistory == b.HasHistory && a.History == b.History
}

// runUpgradeCase runs one case on u and checks everything about the answer.
func runUpgradeCase(t *testing.T, u *Upgrader, i int) {
	tc := upgradeCases[i]
	t.Helper()
	admitted := 0
	u.Admit = func() error { admitted++; return tc.admit }
	prefix := []byte("already queued|")
	req, resp, err := u.Upgrade([]byte(tc.req), append([]byte(nil), prefix...))
	if !bytes.HasPrefix(resp, prefix) {
		t.Fatalf("%s: out's bytes clobbered: %q", tc.name, resp)
	}
	resp = resp[len(prefix):]
	r := parseResponse(t, resp)
	if r.StatusCode != tc.status {
		t.Fatalf("%s: status %d, want %d (err %v)\n%s", tc.name, r.StatusCode, tc.status, err, resp)
	}
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || !bytes.HasPrefix(resp, []byte("HTTP/1.1 ")) {
		t.Fatalf("%s: response %q", tc.name, resp)
	}
	if admitted > 1 || tc.status == 101 && admitted != 1 {
		t.Fatalf("%s: Admit called %d times", tc.name, admitted)
	}
	if tc.status == 101 {
		if err != nil || req == nil {
			t.Fatalf("%s: 101 with err %v", tc.name, err)
		}
		if got := r.Header.Get("Sec-WebSocket-Accept"); got != acceptFor(goodKey) || got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
			t.Errorf("%s: accept %q", tc.name, got)
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			t.Errorf("%s: headers %v", tc.name, r.Header)
		}
		if r.Header.Get("Sec-WebSocket-Extensions") != "" {
			t.Errorf("%s: negotiated an extension: %v", tc.name, r.Header)
		}
		if tc.want != nil && !sameRequest(req, tc.want) {
			t.Errorf("%s: request %+v, want %+v", tc.name, req, tc.want)
		}
		return
	}
	if err == nil || req != nil {
		t.Fatalf("%s: refusal without error", tc.name)
	}
	if StatusOf(err) != tc.status {
		t.Errorf("%s: StatusOf = %d, want %d (%v)", tc.name, StatusOf(err), tc.status, err)
	}
	if tc.err != nil {
		if err != tc.err {
			t.Errorf("%s: refused with %v, want %v", tc.name, err, tc.err)
		}
		var body bytes.Buffer
		body.ReadFrom(r.Body)
		// gobwas/ws's own answers end without a newline.
		if strings.TrimSuffix(body.String(), "\n") != tc.err.Error() {
			t.Errorf("%s: body %q, want the one-line reason %q", tc.name, body.String(), tc.err.Error())
		}
	}
}

func TestUpgrade(t *testing.T) {
	for i, tc := range upgradeCases {
		t.Run(tc.name, func(t *testing.T) { runUpgradeCase(t, NewUpgrader(), i) })
	}
}

// TestUpgradeReused: an Upgrader is pooled, so one that served any
// request before must answer exactly as a fresh one.
func TestUpgradeReused(t *testing.T) {
	u := NewUpgrader()
	for i := range upgradeCases {
		runUpgradeCase(t, u, i)
	}
	for i := len(upgradeCases) - 1; i >= 0; i-- {
		runUpgradeCase(t, u, i)
	}
	// Before each, a request that fills every field.
	for i := range upgradeCases {
		runUpgradeCase(t, u, 2)
		runUpgradeCase(t, u, i)
	}
}

func TestUpgradeAcceptKeys(t *testing.T) {
	u := NewUpgrader()
	for _, key := range []string{goodKey, "AAAAAAAAAAAAAAAAAAAAAA==", "x3JJHMbDL1EzLkh9GBhXDw==", "/////////////////////w=="} {
		head := strings.Replace(request("/?specialKey=k"), goodKey, key, 1)
		_, resp, err := u.Upgrade([]byte(head), nil)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got := parseResponse(t, resp).Header.Get("Sec-WebSocket-Accept"); got != acceptFor(key) {
			t.Errorf("%s: accept %q, want %q", key, got, acceptFor(key))
		}
	}
}

// TestUpgradeRequestValidUntilNext: the Request's slices are the
// Upgrader's scratch space; the next Upgrade may overwrite them, but an
// Upgrade must not disturb the head it was given.
func TestUpgradeHeadUntouched(t *testing.T) {
	head := []byte(request("/?specialKey=%41b&room=r", "origin: o\r\n"))
	orig := append([]byte(nil), head...)
	if _, _, err := NewUpgrader().Upgrade(head, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(head, orig) {
		t.Fatalf("head modified: %q", head)
	}
}

func TestStatusOf(t *testing.T) {
	for err, want := range map[error]int{
		ErrNotFound: 404, ErrMissingKey: 400, ErrKeyTooLong: 400, ErrBadQuery: 400, ErrBadRoom: 400, ErrHeadTooLarge: 431,
		errFull: 503, Reject(429, "slow down"): 429, ws.ErrHandshakeBadMethod: 405, ws.ErrHandshakeBadProtocol: 505, ws.ErrHandshakeUpgradeRequired: 426,
		ws.ErrHandshakeBadSecKey: 400, errPlain: 400, ws.RejectConnectionError(): 400,
	} {
		if got := StatusOf(err); got != want {
			t.Errorf("StatusOf(%v) = %d, want %d", err, got, want)
		}
	}
}

// TestHandshakeEnd: the head is found however it is cut into reads, by
// accumulating reads and resuming the search as session does.
func TestHandshakeEnd(t *testing.T) {
	req := []byte(request("/?specialKey=a") + "PIPELINED")
	want := len(req) - len("PIPELINED")
	if got := HandshakeEnd(req, 0); got != want {
		t.Fatalf("HandshakeEnd = %d, want %d", got, want)
	}
	for cut := 1; cut < want; cut++ {
		if HandshakeEnd(req[:cut], 0) != -1 {
			t.Fatalf("end found in a %d-byte prefix", cut)
		}
		if got := HandshakeEnd(req, cut); got != want {
			t.Fatalf("resume from %d: %d, want %d", cut, got, want)
		}
		// Two reads.
		if got := HandshakeEnd(req[:cut], 0); got != -1 {
			t.Fatalf("first read of %d: %d", cut, got)
		}
	}
	// Reads of every size, resuming where the last search stopped.
	for size := 1; size <= len(req); size++ {
		var acc []byte
		got := -1
		for i := 0; got < 0 && i < len(req); i += size {
			from := len(acc)
			acc = append(acc, req[i:min(i+size, len(req))]...)
			got = HandshakeEnd(acc, from)
		}
		if got != want {
			t.Fatalf("%d-byte reads: %d, want %d", size, got, want)
		}
	}
	for _, p := range []string{"", "\r", "\r\n\r", "\n\n", "GET / HTTP/1.1\r\n"} {
		if got := HandshakeEnd([]byte(p), 0); got != -1 {
			t.Errorf("%q: %d", p, got)
		}
	}
	if got := HandshakeEnd([]byte("\r\n\r\n"), 0); got != 4 {
		t.Errorf("bare blank line: %d", got)
	}
}

func TestAppendRejection(t *testing.T) {
	for err, status := range map[error]int{ErrHeadTooLarge: 431, errFull: 503, errPlain: 400} {
		resp := AppendRejection([]byte("x"), err)[1:]
		r := parseResponse(t, resp)
		if r.StatusCode != status || !r.Close {
			t.Fatalf("%v: status %d headers %v", err, r.StatusCode, r.Header)
		}
		var body bytes.Buffer
		body.ReadFrom(r.Body)
		if body.String() != err.Error()+"\n" {
			t.Fatalf("%v: body %q", err, body.String())
		}
	}
}

func BenchmarkUpgrade(b *testing.B) {
	for _, tc := range upgradeCases {
		if !tc.bench {
			continue
		}
		b.Run(strings.ReplaceAll(tc.name, " ", "_"), func(b *testing.B) {
			req := []byte(tc.req)
			u := NewUpgrader()
			out := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				_, resp, err := u.Upgrade(req, out[:0])
				if err != nil {
					b.Fatal(err)
				}
				out = resp[:0]
			}
		})
	}
	b.Run("refused_404", func(b *testing.B) {
		req := []byte(request("/chat?specialKey=a"))
		u := NewUpgrader()
		out := make([]byte, 0, 512)
		b.ReportAllocs()
		for b.Loop() {
			_, resp, _ := u.Upgrade(req, out[:0])
			out = resp[:0]
		}
	})
}

// TestUpgradeAllocs: one allocation per upgrade, inside gobwas/ws
// (writeAccept's 28-byte buffer escapes through bufio.Writer.WriteString);
// none of codec's own.
func TestUpgradeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	req := []byte(upgradeCases[1].req)
	u := NewUpgrader()
	out := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		_, resp, err := u.Upgrade(req, out[:0])
		if err != nil {
			t.Fatal(err)
		}
		out = resp[:0]
	}); n > 1 {
		t.Fatalf("%v allocs per Upgrade, want at most 1", n)
	}
}

// countHeader counts head's header lines named name, as an HTTP/1.1 reader
// that forgives a bare LF and blanks (SP, HTAB) around the name would: written apart
// from codec's own scan, for the fuzz target.
func countHeader(head []byte, name string) int {
	lines := strings.Split(string(head), "\n")
	n := 0
	for _, l := range lines[1:] {
		l = strings.TrimSuffix(l, "\r")
		if l == "" {
			break
		}
		if k, _, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.Trim(k, " \t"), name) {
			n++
		}
	}
	return n
}

// FuzzUpgrade: no request head panics; every answer is an HTTP/1.1
// response whose status is StatusOf the error; a 101 carries the right
// accept key and a valid Request, and its head has one Host, one
// Sec-WebSocket-Key and at most one Origin; a duplicate refusal names a
// header the head really repeats.
func FuzzUpgrade(f *testing.F) {
	for _, tc := range upgradeCases {
		if tc.admit == nil {
			f.Add([]byte(tc.req))
		}
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
		r := parseResponse(t, resp)
		if err != nil {
			if r.StatusCode != StatusOf(err) || r.StatusCode < 400 {
				t.Fatalf("answered %d, StatusOf(%v) = %d", r.StatusCode, err, StatusOf(err))
			}
			// A duplicate refusal only for a head that has the duplicate.
			for name, dup := range map[string]error{"Origin": ErrDupOrigin, "Host": ErrDupHost, "Sec-WebSocket-Key": ErrDupWSKey} {
				if err == dup && countHeader(head, name) < 2 {
					t.Fatalf("refused with %v, but %q has %d %s", err, head, countHeader(head, name), name)
				}
			}
			return
		}
		// Accepted: one of each header that names one thing.
		if n := countHeader(head, "Origin"); n > 1 {
			t.Fatalf("accepted with %d Origin headers", n)
		}
		for _, name := range []string{"Host", "Sec-WebSocket-Key"} {
			if n := countHeader(head, name); n != 1 {
				t.Fatalf("accepted with %d %s headers", n, name)
			}
		}
		if r.StatusCode != 101 {
			t.Fatalf("accepted with %d", r.StatusCode)
		}
		if len(req.Key) == 0 || len(req.Key) > maxKeyLen || req.Room != nil && !ValidRoom(req.Room) {
			t.Fatalf("accepted request %+v", req)
		}
		// The accept key answers the request's Sec-WebSocket-Key.
		hr, herr := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if herr == nil {
			if key := hr.Header.Get("Sec-WebSocket-Key"); len(hr.Header.Values("Sec-WebSocket-Key")) == 1 && r.Header.Get("Sec-WebSocket-Accept") != acceptFor(key) {
				t.Fatalf("accept %q for key %q", r.Header.Get("Sec-WebSocket-Accept"), key)
			}
		}
	})
}

func TestUpgradeSubprotocols(t *testing.T) {
	u := NewUpgrader()
	u.Protocols = []string{"chat.v1", "chat.v2"}
	for _, tc := range []struct {
		headers []string
		want    string
	}{
		{[]string{"Sec-WebSocket-Protocol: chat.v1\r\n"}, "chat.v1"},
		{[]string{"Sec-WebSocket-Protocol: chat.v2, chat.v1\r\n"}, "chat.v2"}, // the client's order
		{[]string{"Sec-WebSocket-Protocol: mqtt,chat.v1\r\n"}, "chat.v1"},
		{[]string{"Sec-WebSocket-Protocol: mqtt\r\n", "Sec-WebSocket-Protocol: chat.v2\r\n"}, "chat.v2"},
		{[]string{"Sec-WebSocket-Protocol: mqtt\r\n"}, ""},
		{nil, ""},
	} {
		req, resp, err := u.Upgrade([]byte(request("/?specialKey=k", tc.headers...)), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.headers, err)
		}
		if req.Protocol != tc.want {
			t.Errorf("%q: selected %q, want %q", tc.headers, req.Protocol, tc.want)
		}
		hasHeader := bytes.Contains(resp, []byte("Sec-WebSocket-Protocol: "+tc.want+"\r\n"))
		if hasHeader != (tc.want != "") {
			t.Errorf("%q: response %q", tc.headers, resp)
		}
	}
	// The v1 subprotocol, when listed, makes the request v1 and is echoed;
	// its position parameters are read as with proto=v1.
	u.Protocols = []string{"chat.v1", V1Protocol}
	req, resp, err := u.Upgrade([]byte(request("/?specialKey=k&history=5", "Sec-WebSocket-Protocol: "+V1Protocol+"\r\n")), nil)
	if err != nil || !req.V1 || !req.HasHistory || req.History != 5 || !bytes.Contains(resp, []byte("Sec-WebSocket-Protocol: wsd.v1\r\n")) {
		t.Errorf("wsd.v1: %v %+v %q", err, req, resp)
	}
	_, resp, err = u.Upgrade([]byte(request("/?specialKey=k&history=x", "Sec-WebSocket-Protocol: "+V1Protocol+"\r\n")), nil)
	if err != ErrBadHistory || !bytes.HasPrefix(resp, []byte("HTTP/1.1 400")) {
		t.Errorf("wsd.v1 with a bad history: %v %q", err, resp)
	}
	// Without Protocols nothing is selected and the header is ignored.
	req, resp, err = NewUpgrader().Upgrade([]byte(request("/?specialKey=k", "Sec-WebSocket-Protocol: chat.v1\r\n")), nil)
	if err != nil || req.Protocol != "" || bytes.Contains(resp, []byte("Sec-WebSocket-Protocol")) {
		t.Errorf("no protocols: %v %q %q", err, req.Protocol, resp)
	}
}
