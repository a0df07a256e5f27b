package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsd-chat/wsd/codec"
)

var (
	secret  = []byte("0123456789abcdef0123456789abcdef")
	now     = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
	ecKey   *ecdsa.PrivateKey
)

func keys(t testing.TB) (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, ecKey
}

func pemPublic(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// claims returns valid claims for key, expiring an hour after now.
func claims(sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": now.Add(time.Hour).Unix()}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signHeader signs an HS256 token with one more header field.
func signHeader(t testing.TB, key []byte, c jwt.Claims, name string, value any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header[name] = value
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds a token with any header, claims and signature.
func unsigned(header, claims any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + sig
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for a, b := range c {
		out[a] = b
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func newAuth(t testing.TB, cfg Config) *Authorizer {
	t.Helper()
	cfg.Now = func() time.Time { return now }
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func req(key, room, token string) *codec.Request {
	r := &codec.Request{Key: []byte(key)}
	if room != "" {
		r.Room = []byte(room)
	}
	if token != "" {
		r.Token = []byte(token)
	}
	return r
}

const ok Reason = -1

func check(t *testing.T, a *Authorizer, name string, r *codec.Request, want Reason) {
	t.Helper()
	before := a.Failed(max(want, 0))
	err := a.Authorize(r)
	if want == ok {
		if err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
		return
	}
	got, known := ReasonOf(err)
	if err == nil || !known || got != want {
		t.Errorf("%s: got %v (%v), want %v", name, err, got, want)
		return
	}
	status := http.StatusUnauthorized
	if want >= WrongSubject {
		status = http.StatusForbidden
	}
	if s := codec.StatusOf(err); s != status {
		t.Errorf("%s: status %d, want %d", name, s, status)
	}
	if a.Failed(want) != before+1 {
		t.Errorf("%s: %v counter moved %d -> %d", name, want, before, a.Failed(want))
	}
}

func TestHS256(t *testing.T) {
	a := newAuth(t, Config{HMACSecret: secret})
	if a.Algorithm() != "HS256" || a.Hook() == nil {
		t.Fatalf("algorithm %q", a.Algorithm())
	}
	rk, ek := keys(t)
	good := claims("alice")
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, c) }
	tok := hs(good)
	for _, tc := range []struct {
		name string
		req  *codec.Request
		want Reason
	}{
		{"valid", req("alice", "", tok), ok},
		{"valid bearer", &codec.Request{Key: []byte("alice"), Authorization: []byte("Bearer " + tok)}, ok},
		{"valid bearer lower case", &codec.Request{Key: []byte("alice"), Authorization: []byte("bearer  " + tok + " ")}, ok},
		{"query wins over header", &codec.Request{Key: []byte("alice"), Token: []byte(tok), Authorization: []byte("Bearer junk")}, ok},
		{"missing", req("alice", "", ""), MissingToken},
		{"basic auth is no token", &codec.Request{Key: []byte("alice"), Authorization: []byte("Basic YWxpY2U6cHc=")}, MissingToken},
		{"empty bearer", &codec.Request{Key: []byte("alice"), Authorization: []byte("Bearer ")}, MissingToken},
		{"garbage", req("alice", "", "garbage"), InvalidToken},
		{"three garbage parts", req("alice", "", "a.b.c"), InvalidToken},
		{"bad signature", req("alice", "", tok[:len(tok)-4]+"AAAA"), InvalidToken},
		{"other secret", req("alice", "", sign(t, jwt.SigningMethodHS256, []byte("another secret of enough length!"), good)), InvalidToken},
		{"expired", req("alice", "", hs(with(good, "exp", now.Add(-time.Second).Unix()))), ExpiredToken},
		{"no exp", req("alice", "", hs(with(good, "exp", nil))), InvalidToken},
		{"exp not a number", req("alice", "", hs(with(good, "exp", "tomorrow"))), InvalidToken},
		{"exp a quoted number", req("alice", "", hs(with(good, "exp", fmt.Sprint(now.Add(time.Hour).Unix())))), InvalidToken},
		{"exp null", req("alice", "", hs(jwt.MapClaims{"sub": "alice", "exp": json.RawMessage("null")})), InvalidToken},
		{"exp a float", req("alice", "", hs(with(good, "exp", float64(now.Add(time.Hour).Unix())+0.5))), ok},
		{"nbf a quoted number", req("alice", "", hs(with(good, "nbf", fmt.Sprint(now.Unix())))), InvalidToken},
		{"iat a quoted number", req("alice", "", hs(with(good, "iat", fmt.Sprint(now.Unix())))), InvalidToken},
		{"crit header", req("alice", "", signHeader(t, secret, good, "crit", []string{"exp"})), InvalidToken},
		{"empty crit header", req("alice", "", signHeader(t, secret, good, "crit", []string{})), InvalidToken},
		{"other header", req("alice", "", signHeader(t, secret, good, "kid", "k1")), ok},
		{"not yet valid", req("alice", "", hs(with(good, "nbf", now.Add(time.Hour).Unix()))), InvalidToken},
		{"wrong sub", req("bob", "", tok), WrongSubject},
		{"no sub", req("alice", "", hs(with(good, "sub", nil))), WrongSubject},
		{"sub case differs", req("Alice", "", tok), WrongSubject},
		{"HS384 same secret", req("alice", "", sign(t, jwt.SigningMethodHS384, secret, good)), WrongAlgorithm},
		{"RS256", req("alice", "", sign(t, jwt.SigningMethodRS256, rk, good)), WrongAlgorithm},
		{"ES256", req("alice", "", sign(t, jwt.SigningMethodES256, ek, good)), WrongAlgorithm},
		{"alg none", req("alice", "", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)), WrongAlgorithm},
		{"alg none no sig", req("alice", "", unsigned(map[string]string{"alg": "none"}, good, "")), WrongAlgorithm},
		{"alg NONE", req("alice", "", unsigned(map[string]string{"alg": "NONE"}, good, "")), WrongAlgorithm},
		{"alg missing", req("alice", "", unsigned(map[string]string{"typ": "JWT"}, good, "x")), WrongAlgorithm},
		{"rooms not an array", req("alice", "", hs(with(good, "rooms", "lobby"))), InvalidToken},
		{"rooms of numbers", req("alice", "", hs(with(good, "rooms", []int{1}))), InvalidToken},
	} {
		check(t, a, tc.name, tc.req, tc.want)
	}
}

func TestRoomsClaim(t *testing.T) {
	a := newAuth(t, Config{HMACSecret: secret})
	tok := func(rooms any) string {
		return sign(t, jwt.SigningMethodHS256, secret, with(claims("k"), "rooms", rooms))
	}
	for _, tc := range []struct {
		name  string
		rooms any // nil: no claim
		room  string
		want  Reason
	}{
		{"no claim, global", nil, "", ok},
		{"no claim, any room", nil, "lobby", ok},
		{"listed", []string{"lobby", "ops"}, "ops", ok},
		{"not listed", []string{"lobby"}, "ops", RoomNotAllowed},
		{"case matters", []string{"lobby"}, "Lobby", RoomNotAllowed},
		{"rooms claim, global not listed", []string{"lobby"}, "", RoomNotAllowed},
		{"global listed", []string{"", "lobby"}, "", ok},
		{"star, room", []string{"*"}, "anything", ok},
		{"star, global", []string{"*"}, "", ok},
		{"empty list, global", []string{}, "", RoomNotAllowed},
		{"empty list, room", []string{}, "lobby", RoomNotAllowed},
		{"null claim", json.RawMessage("null"), "lobby", ok},
	} {
		r := req("k", tc.room, tok(tc.rooms))
		check(t, a, tc.name, r, tc.want)
		// An admitted request carries the claim on, for the v1 joins after it.
		if list, isList := tc.rooms.([]string); tc.want == ok && (isList != (r.Rooms != nil) || isList && fmt.Sprint(list) != fmt.Sprint(r.Rooms)) {
			t.Errorf("%s: request's Rooms %q, want the claim's %v", tc.name, r.Rooms, tc.rooms)
		}
	}
}

func TestPublicKeys(t *testing.T) {
	rk, ek := keys(t)
	good := claims("carol")
	for _, tc := range []struct {
		name    string
		pub     any
		alg     string
		signer  jwt.SigningMethod
		signKey any
	}{
		{"RS256", &rk.PublicKey, "RS256", jwt.SigningMethodRS256, rk},
		{"ES256", &ek.PublicKey, "ES256", jwt.SigningMethodES256, ek},
	} {
		pemBytes := pemPublic(t, tc.pub)
		a := newAuth(t, Config{PublicKeyPEM: pemBytes})
		if a.Algorithm() != tc.alg {
			t.Fatalf("%s: algorithm %q", tc.name, a.Algorithm())
		}
		check(t, a, tc.name+" valid", req("carol", "", sign(t, tc.signer, tc.signKey, good)), ok)
		check(t, a, tc.name+" wrong sub", req("dave", "", sign(t, tc.signer, tc.signKey, good)), WrongSubject)
		check(t, a, tc.name+" expired", req("carol", "", sign(t, tc.signer, tc.signKey,
			with(good, "exp", now.Add(-time.Minute).Unix()))), ExpiredToken)
		// Algorithm confusion: an HMAC token keyed with the public key's
		// own PEM (or DER) bytes must not pass as the asymmetric one.
		check(t, a, tc.name+" HS256 keyed with the PEM", req("carol", "", sign(t, jwt.SigningMethodHS256, pemBytes, good)), WrongAlgorithm)
		check(t, a, tc.name+" none", req("carol", "", unsigned(map[string]string{"alg": "none"}, good, "")), WrongAlgorithm)
		check(t, a, tc.name+" HS256 secret", req("carol", "", sign(t, jwt.SigningMethodHS256, secret, good)), WrongAlgorithm)
	}
	// RS256 key, a PS256 / RS512 token with the same private key.
	a := newAuth(t, Config{PublicKeyPEM: pemPublic(t, &rk.PublicKey)})
	check(t, a, "PS256", req("carol", "", sign(t, jwt.SigningMethodPS256, rk, good)), WrongAlgorithm)
	check(t, a, "RS512", req("carol", "", sign(t, jwt.SigningMethodRS512, rk, good)), WrongAlgorithm)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b := newAuth(t, Config{PublicKeyPEM: pemPublic(t, &ek.PublicKey)})
	check(t, b, "ES256 other key", req("carol", "", sign(t, jwt.SigningMethodES256, other, good)), InvalidToken)
}

func TestParsePublicKey(t *testing.T) {
	rk, ek := keys(t)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)})
	if _, alg, err := ParsePublicKey(pkcs1); err != nil || alg != "RS256" {
		t.Errorf("PKCS#1: %q, %v", alg, err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wsd"},
		NotBefore: now, NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ek.PublicKey, ek)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if _, alg, err := ParsePublicKey(cert); err != nil || alg != "ES256" {
		t.Errorf("certificate: %q, %v", alg, err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	priv, _ := x509.MarshalPKCS8PrivateKey(ek)
	for name, data := range map[string][]byte{
		"RSA 1024":    pemPublic(t, &small.PublicKey),
		"P-384":       pemPublic(t, &p384.PublicKey),
		"private key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		"not PEM":     []byte("hello"),
		"bad DER":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}),
	} {
		if _, _, err := ParsePublicKey(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := New(Config{PublicKeyPEM: data}); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
	if _, err := New(Config{HMACSecret: secret, PublicKeyPEM: pemPublic(t, &ek.PublicKey)}); err == nil {
		t.Error("secret and public key together accepted")
	}
	if _, err := New(Config{AllowedOrigins: []string{"nope"}}); err == nil {
		t.Error("bad origin accepted")
	}
}

func TestOpenWithoutConfig(t *testing.T) {
	a := newAuth(t, Config{})
	if a.Enabled() || a.Hook() != nil {
		t.Fatal("empty config enabled")
	}
	check(t, a, "no token", req("k", "room", ""), ok)
	check(t, a, "garbage token ignored", req("k", "", "garbage"), ok)
}

func TestOriginAndToken(t *testing.T) {
	a := newAuth(t, Config{HMACSecret: secret, AllowedOrigins: []string{"https://app.example.com"}})
	tok := sign(t, jwt.SigningMethodHS256, secret, claims("k"))
	r := req("k", "", tok)
	check(t, a, "no origin", r, ok)
	r.Origin = []byte("https://app.example.com")
	check(t, a, "allowed origin", r, ok)
	r.Origin = []byte("https://evil.example.net")
	check(t, a, "refused origin", r, OriginNotAllowed)
	r.Token = nil
	check(t, a, "origin checked before token", r, OriginNotAllowed)

	o := newAuth(t, Config{AllowedOrigins: []string{"https://app.example.com"}})
	if o.Hook() == nil || o.Algorithm() != "" {
		t.Fatal("origin-only authorizer")
	}
	check(t, o, "origin only, no token needed", &codec.Request{Key: []byte("k"), Origin: []byte("https://app.example.com")}, ok)
	check(t, o, "origin only, refused", &codec.Request{Key: []byte("k"), Origin: []byte("http://app.example.com")}, OriginNotAllowed)
}

func TestFailuresReport(t *testing.T) {
	a := newAuth(t, Config{HMACSecret: secret})
	a.Authorize(req("k", "", ""))
	a.Authorize(req("k", "", ""))
	a.Authorize(req("k", "", "x"))
	got := map[string]uint64{}
	a.Failures(func(r string, n uint64) { got[r] = n })
	if len(got) != len(Reasons()) || got["missing_token"] != 2 || got["invalid_token"] != 1 || got["expired_token"] != 0 {
		t.Errorf("Failures = %v", got)
	}
	for _, r := range Reasons() {
		if strings.Contains(r.String(), " ") || r.String() == "unknown" {
			t.Errorf("reason %d named %q", r, r)
		}
	}
}

// The token path allocates what golang-jwt needs to decode and verify and
// little more; a refusal by Origin or a missing token allocates nothing.
func TestAuthorizeAllocations(t *testing.T) {
	a := newAuth(t, Config{HMACSecret: secret, AllowedOrigins: []string{"https://*.example.com"}})
	tok := sign(t, jwt.SigningMethodHS256, secret, with(claims("alice"), "rooms", []string{"lobby"}))
	good := &codec.Request{Key: []byte("alice"), Room: []byte("lobby"), Token: []byte(tok), Origin: []byte("https://a.example.com")}
	n := testing.AllocsPerRun(200, func() {
		if err := a.Authorize(good); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations per accepted HS256 handshake: %v", n)
	if n > 60 {
		t.Errorf("%v allocations per accepted handshake, want at most 60", n)
	}
	cheap := []*codec.Request{
		{Key: []byte("alice"), Origin: []byte("https://evil.test")},
		{Key: []byte("alice")},
	}
	if n := testing.AllocsPerRun(200, func() {
		for _, r := range cheap {
			a.Authorize(r)
		}
	}); n != 0 {
		t.Errorf("origin and missing-token refusals allocate %v times", n)
	}
}

func BenchmarkAuthorizeHS256(b *testing.B) {
	a := newAuth(b, Config{HMACSecret: secret, AllowedOrigins: []string{"https://*.example.com"}})
	tok := sign(b, jwt.SigningMethodHS256, secret, claims("alice"))
	r := &codec.Request{Key: []byte("alice"), Token: []byte(tok), Origin: []byte("https://a.example.com")}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Authorize(r); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzAuthorizeToken feeds arbitrary tokens and Authorization headers to
// an HS256 authorizer: it never panics, every refusal is a known reason
// with 401 or 403, and whatever it admits really is signed with the
// secret, unexpired, and names the key.
func FuzzAuthorizeToken(f *testing.F) {
	valid := sign(f, jwt.SigningMethodHS256, secret, with(claims("alice"), "rooms", []string{"lobby", ""}))
	f.Add(valid, "", "alice", "lobby")
	f.Add("", "Bearer "+valid, "alice", "")
	f.Add(valid, "", "bob", "")
	f.Add(unsigned(map[string]string{"alg": "none"}, claims("alice"), ""), "", "alice", "")
	f.Add(unsigned(map[string]any{"alg": 5}, claims("alice"), "xx"), "", "alice", "")
	f.Add("a.b.c", "bearer a.b.c", "alice", "")
	f.Add("..", "Bearer", "", "")
	a := newAuth(f, Config{HMACSecret: secret})
	f.Fuzz(func(t *testing.T, token, header, key, room string) {
		r := &codec.Request{Key: []byte(key), Token: []byte(token), Authorization: []byte(header), Room: []byte(room)}
		err := a.Authorize(r)
		if err != nil {
			if _, known := ReasonOf(err); !known {
				t.Fatalf("unknown refusal %v", err)
			}
			if s := codec.StatusOf(err); s != 401 && s != 403 {
				t.Fatalf("status %d", s)
			}
			return
		}
		tok := token
		if tok == "" {
			tok = string(BearerToken([]byte(header)))
		}
		var c Claims
		parsed, perr := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return secret, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithExpirationRequired())
		if perr != nil || !parsed.Valid || c.Subject != key || !c.AllowsRoom([]byte(room)) {
			t.Fatalf("admitted token %q for key %q room %q: %v", tok, key, room, perr)
		}
	})
}

// -jwt-audience and -jwt-issuer: when set, aud must contain the audience
// and iss must be the issuer; when not, neither is looked at.
func TestAudienceAndIssuer(t *testing.T) {
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, c) }
	good := with(with(claims("alice"), "aud", []string{"chat", "other"}), "iss", "https://id.example")
	for _, tc := range []struct {
		name     string
		aud, iss string
		claims   jwt.MapClaims
		want     Reason
	}{
		{"neither asked", "", "", good, ok},
		{"neither asked, none given", "", "", claims("alice"), ok},
		{"audience in the list", "chat", "", good, ok},
		{"audience as a string", "chat", "", with(good, "aud", "chat"), ok},
		{"audience not in the list", "admin", "", good, InvalidToken},
		{"no aud", "chat", "", with(good, "aud", nil), InvalidToken},
		{"issuer", "", "https://id.example", good, ok},
		{"other issuer", "", "https://id.example", with(good, "iss", "https://evil.example"), InvalidToken},
		{"issuer differs in case", "", "https://id.example", with(good, "iss", "https://ID.example"), InvalidToken},
		{"no iss", "", "https://id.example", with(good, "iss", nil), InvalidToken},
		{"both", "chat", "https://id.example", good, ok},
		{"both, wrong issuer", "chat", "https://other.example", good, InvalidToken},
	} {
		a := newAuth(t, Config{HMACSecret: secret, Audience: tc.aud, Issuer: tc.iss})
		check(t, a, tc.name, req("alice", "", hs(tc.claims)), tc.want)
	}
}
