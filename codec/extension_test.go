package codec

import (
	"net/http"
	"strings"
	"testing"
)

const (
	answer      = "permessage-deflate;server_no_context_takeover"
	answerNoCtx = answer + ";client_no_context_takeover"
)

// negotiateCases: offers as a client sends them (one field value, or
// several lines joined by commas), the config, and the exact answer ("" =
// declined). The answer is written by gobwas/httphead, without spaces.
var negotiateCases = []struct {
	name   string
	field  string
	bits   int // DeflateConfig.ClientWindowBits
	answer string
	client uint8 // ClientWindowBits of the result
	server uint8 // ServerWindowBits of the result
}{
	// What real clients offer.
	{name: "chromium/firefox", field: "permessage-deflate; client_max_window_bits", answer: answerNoCtx},
	{name: "safari, coder/websocket", field: "permessage-deflate", answer: answerNoCtx},
	{name: "gorilla", field: "permessage-deflate; server_no_context_takeover; client_no_context_takeover", answer: answerNoCtx},
	{name: "node ws", field: "permessage-deflate; client_max_window_bits", bits: 12, answer: answer + ";client_max_window_bits=12", client: 12},

	// server_max_window_bits: any valid value is honoured (see DeflateParams).
	{name: "server bits 10", field: "permessage-deflate; server_max_window_bits=10", answer: answer + ";server_max_window_bits=10;client_no_context_takeover", server: 10},
	{name: "server bits 8", field: "permessage-deflate; server_max_window_bits=8", answer: answer + ";server_max_window_bits=8;client_no_context_takeover", server: 8},
	{name: "server bits 15", field: "permessage-deflate; server_max_window_bits=15", answer: answer + ";server_max_window_bits=15;client_no_context_takeover"},
	{name: "server bits quoted", field: `permessage-deflate; server_max_window_bits="9"`, answer: answer + ";server_max_window_bits=9;client_no_context_takeover", server: 9},
	{name: "server bits quoted pair", field: `permessage-deflate; server_max_window_bits="1\1"`, answer: answer + ";server_max_window_bits=11;client_no_context_takeover", server: 11},
	{name: "server bits without value", field: "permessage-deflate; server_max_window_bits"},
	{name: "server bits empty", field: "permessage-deflate; server_max_window_bits="},
	{name: "server bits empty quoted", field: `permessage-deflate; server_max_window_bits=""`},
	{name: "server bits 7", field: "permessage-deflate; server_max_window_bits=7"},
	{name: "server bits 16", field: "permessage-deflate; server_max_window_bits=16"},
	{name: "server bits 08", field: "permessage-deflate; server_max_window_bits=08"},
	{name: "server bits +9", field: "permessage-deflate; server_max_window_bits=+9"},
	{name: "server bits 1a", field: "permessage-deflate; server_max_window_bits=1a"},
	{name: "server bits long", field: `permessage-deflate; server_max_window_bits="100000000000000000010"`},

	// client_max_window_bits.
	{name: "client bits 8 offered, config 0", field: "permessage-deflate; client_max_window_bits=8", answer: answerNoCtx},
	{name: "client bits below config", field: "permessage-deflate; client_max_window_bits=10", bits: 12, answer: answer + ";client_max_window_bits=10", client: 10},
	{name: "client bits 8 below config", field: "permessage-deflate; client_max_window_bits=8", bits: 12, answer: answer + ";client_max_window_bits=8", client: 8},
	{name: "client bits above config", field: "permessage-deflate; client_max_window_bits=15", bits: 12, answer: answer + ";client_max_window_bits=12", client: 12},
	{name: "client bits not offered, config 12", field: "permessage-deflate", bits: 12, answer: answerNoCtx},
	{name: "client bits not offered, config 15", field: "permessage-deflate", bits: 15, answer: answer, client: 15},
	{name: "client bits, config 15", field: "permessage-deflate; client_max_window_bits", bits: 15, answer: answer + ";client_max_window_bits=15", client: 15},
	{name: "client no context wins", field: "permessage-deflate; client_max_window_bits; client_no_context_takeover", bits: 15, answer: answerNoCtx},
	{name: "client bits quoted", field: `permessage-deflate; client_max_window_bits="10"`, bits: 15, answer: answer + ";client_max_window_bits=10", client: 10},
	{name: "client bits 7", field: "permessage-deflate; client_max_window_bits=7"},
	{name: "client bits 16", field: "permessage-deflate; client_max_window_bits=16", bits: 15},
	{name: "client bits empty", field: "permessage-deflate; client_max_window_bits="},
	{name: "everything", field: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11",
		bits: 15, answer: answer + ";server_max_window_bits=12;client_no_context_takeover", server: 12},

	// Offers declined for their parameters; the next offer is considered.
	{name: "unknown parameter", field: "permessage-deflate; foo"},
	{name: "unknown parameter with value", field: "permessage-deflate; mux=1"},
	{name: "server no context with value", field: "permessage-deflate; server_no_context_takeover=1"},
	{name: "client no context with quoted value", field: `permessage-deflate; client_no_context_takeover=""`},
	{name: "duplicate server no context", field: "permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
	{name: "duplicate client no context", field: "permessage-deflate; client_no_context_takeover; client_no_context_takeover"},
	{name: "duplicate client bits", field: "permessage-deflate; client_max_window_bits; client_max_window_bits=10"},
	{name: "duplicate server bits", field: "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"},
	{name: "second offer after a declined one", field: "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits",
		answer: answerNoCtx},
	{name: "first acceptable of three", field: "permessage-deflate; x, permessage-deflate; server_max_window_bits=10, permessage-deflate",
		answer: answer + ";server_max_window_bits=10;client_no_context_takeover", server: 10},
	{name: "first offer wins", field: "permessage-deflate; server_max_window_bits=9, permessage-deflate", answer: answer + ";server_max_window_bits=9;client_no_context_takeover", server: 9},
	{name: "other extensions around", field: "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits, foo; bar=\"baz, qux\"", answer: answerNoCtx},
	{name: "other extension only", field: "x-webkit-deflate-frame; no_context_takeover"},
	{name: "several header lines", field: "x-foo; a=1,permessage-deflate; client_max_window_bits=9", bits: 14, answer: answer + ";client_max_window_bits=9", client: 9},

	// Spelling.
	{name: "case", field: "Permessage-Deflate; Client_Max_Window_Bits; SERVER_NO_CONTEXT_TAKEOVER", answer: answerNoCtx},
	{name: "whitespace", field: " \tpermessage-deflate \t;\t client_max_window_bits = 10 \t ; server_max_window_bits =\"12\" ", bits: 15,
		answer: answer + ";server_max_window_bits=12;client_max_window_bits=10", client: 10, server: 12},
	{name: "empty list elements", field: ", ,\t,permessage-deflate,,", answer: answerNoCtx},
	{name: "empty field", field: ""},
	{name: "only commas", field: " , , "},

	// Fields that do not parse decline everything.
	{name: "empty parameter", field: "permessage-deflate; ; client_max_window_bits"},
	{name: "trailing semicolon", field: "permessage-deflate;"},
	{name: "unterminated quote", field: `permessage-deflate; client_max_window_bits="10`},
	{name: "quoted extension name", field: `"permessage-deflate"`},
	{name: "space inside", field: "permessage-deflate client_max_window_bits"},
	{name: "two equals", field: "permessage-deflate; client_max_window_bits=1=0"},
	{name: "equals without name", field: "permessage-deflate; =10"},
	{name: "broken after an acceptable offer", field: "permessage-deflate, x; ;"},
	{name: "control character in quotes", field: "permessage-deflate; a=\"\x01\""},
	{name: "bad quoted pair", field: "permessage-deflate; a=\"\\\x7f\""},
	{name: "separator as name", field: "permessage-deflate; (x)"},
}

func TestNegotiateDeflate(t *testing.T) {
	for _, tc := range negotiateCases {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := NegotiateDeflate([]byte(tc.field), DeflateConfig{Enabled: true, ClientWindowBits: tc.bits})
			if got := p.String(); got != tc.answer || ok != (tc.answer != "") {
				t.Fatalf("%q: answer %q (ok %v), want %q", tc.field, got, ok, tc.answer)
			}
			if !ok {
				return
			}
			server := tc.server
			if server == 0 {
				server = 15
			}
			if p.ClientWindowBits != tc.client || p.ServerWindowBits != server {
				t.Fatalf("client window %d, server window %d; want %d, %d", p.ClientWindowBits, p.ServerWindowBits, tc.client, server)
			}
		})
	}
}

func TestNegotiateDeflateOff(t *testing.T) {
	for _, cfg := range []DeflateConfig{{}, {Enabled: true, ClientWindowBits: 8}, {Enabled: true, ClientWindowBits: 16}, {Enabled: true, ClientWindowBits: -1}} {
		if p, ok := NegotiateDeflate([]byte("permessage-deflate"), cfg); ok || p.Enabled {
			t.Errorf("%+v negotiated %v", cfg, p)
		}
	}
}

func TestDeflateParamsServerFits(t *testing.T) {
	p, _ := NegotiateDeflate([]byte("permessage-deflate; server_max_window_bits=9"), DeflateConfig{Enabled: true})
	if !p.ServerFits(512) || p.ServerFits(513) {
		t.Fatal("server_max_window_bits=9 must fit 512 bytes and not 513")
	}
	p, _ = NegotiateDeflate([]byte("permessage-deflate"), DeflateConfig{Enabled: true})
	if !p.ServerFits(1 << 30) {
		t.Fatal("without server_max_window_bits every size fits")
	}
}

// TestUpgradeDeflate: the extension through the upgrader, one or several
// header lines; a declined offer is a 101 without the header, never a refusal.
func TestUpgradeDeflate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		bits    int
		off     bool
		answer  string
	}{
		{name: "browser", headers: []string{"permessage-deflate; client_max_window_bits"}, answer: answerNoCtx},
		{name: "browser, window 10", headers: []string{"permessage-deflate; client_max_window_bits"}, bits: 10, answer: answer + ";client_max_window_bits=10"},
		{name: "off", headers: []string{"permessage-deflate; client_max_window_bits"}, off: true},
		{name: "declined", headers: []string{"permessage-deflate; server_max_window_bits=20"}},
		{name: "malformed", headers: []string{`permessage-deflate; client_max_window_bits="`}},
		{name: "two lines, second acceptable", headers: []string{"permessage-deflate; foo", "permessage-deflate; server_max_window_bits=11"},
			answer: answer + ";server_max_window_bits=11;client_no_context_takeover"},
		{name: "two lines, first wins", headers: []string{"permessage-deflate", "permessage-deflate; server_max_window_bits=11"}, answer: answerNoCtx},
		{name: "two lines, second malformed", headers: []string{"permessage-deflate", "x;;"}},
		{name: "empty line", headers: []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := NewUpgrader()
			u.Deflate = DeflateConfig{Enabled: !tc.off, ClientWindowBits: tc.bits}
			var extra []string
			for _, h := range tc.headers {
				extra = append(extra, "Sec-WebSocket-Extensions: "+h+"\r\n")
			}
			// Twice: a reused Upgrader answers the same.
			for range 2 {
				req, resp, err := u.Upgrade([]byte(request("/?specialKey=k", extra...)), nil)
				if err != nil {
					t.Fatalf("refused: %v\n%s", err, resp)
				}
				r := parseResponse(t, resp)
				if r.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status %d", r.StatusCode)
				}
				if got := strings.Join(r.Header.Values("Sec-WebSocket-Extensions"), ","); got != tc.answer {
					t.Fatalf("answered %q, want %q", got, tc.answer)
				}
				if req.Deflate.Enabled != (tc.answer != "") || req.Deflate.String() != tc.answer {
					t.Fatalf("Request.Deflate %+v for answer %q", req.Deflate, tc.answer)
				}
			}
			// And a request without the header after one with it.
			req, _, err := u.Upgrade([]byte(request("/?specialKey=k")), nil)
			if err != nil || req.Deflate.Enabled {
				t.Fatalf("no offer: %v %+v", err, req.Deflate)
			}
		})
	}
}

// FuzzNegotiateDeflate: any field, never a panic; an accepted offer's
// answer is itself an acceptable offer with the same windows (it is one
// under RFC 7692's grammar), every answer carries
// server_no_context_takeover and windows within 8..15 and the config.
func FuzzNegotiateDeflate(f *testing.F) {
	for _, tc := range negotiateCases {
		f.Add(tc.field, uint8(tc.bits))
	}
	f.Fuzz(func(t *testing.T, field string, bits uint8) {
		cfg := DeflateConfig{Enabled: true, ClientWindowBits: int(bits)}
		p, ok := NegotiateDeflate([]byte(field), cfg)
		if !ok {
			if p.Enabled || p.String() != "" {
				t.Fatalf("declined with params %+v", p)
			}
			return
		}
		if !cfg.Valid() {
			t.Fatalf("negotiated with invalid config %+v", cfg)
		}
		ans := p.String()
		if !strings.HasPrefix(ans, answer) {
			t.Fatalf("answer %q", ans)
		}
		if p.ServerWindowBits < 8 || p.ServerWindowBits > 15 {
			t.Fatalf("server window %d", p.ServerWindowBits)
		}
		if p.ClientWindowBits != 0 && (p.ClientWindowBits < 8 || int(p.ClientWindowBits) > cfg.ClientWindowBits) {
			t.Fatalf("client window %d with config %d", p.ClientWindowBits, cfg.ClientWindowBits)
		}
		if (p.ClientWindowBits == 0) != strings.Contains(ans, paramClientNoContext) {
			t.Fatalf("answer %q for client window %d", ans, p.ClientWindowBits)
		}
		again, ok := NegotiateDeflate([]byte(ans), cfg)
		if !ok || again.ServerWindowBits != p.ServerWindowBits || again.ClientWindowBits > p.ClientWindowBits {
			t.Fatalf("answer %q as an offer: %+v (ok %v), first %+v", ans, again, ok, p)
		}
		// Another extension in front changes nothing.
		if other, ok := NegotiateDeflate([]byte("x-foo; a=\"b,c\","+field), cfg); !ok || other != p {
			t.Fatalf("with another extension in front: %+v %v, alone %+v", other, ok, p)
		}
	})
}
