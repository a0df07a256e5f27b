// Package auth decides who may open a WebSocket on wsd: a JWT presented at
// the handshake (query parameter token= or Authorization: Bearer) whose
// subject is the connection's specialKey and whose optional rooms claim
// lists the room it asks for, and an Origin policy against cross-site
// WebSocket hijacking. Authorizer.Authorize plugs into
// session.Config.Authorize; it refuses with 401 or 403 before the 101 is
// written and counts every refusal by reason.
package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsd-chat/wsd/codec"
)

// Config configures an Authorizer. With neither HMACSecret nor PublicKeyPEM
// no token is asked for; with no AllowedOrigins every Origin passes.
type Config struct {
	// HMACSecret turns on HS256 tokens signed with this secret.
	HMACSecret []byte
	// PublicKeyPEM turns on RS256 (an RSA key, 2048 bits or more) or
	// ES256 (an ECDSA P-256 key) tokens: a PKIX "PUBLIC KEY", a PKCS#1
	// "RSA PUBLIC KEY" or a "CERTIFICATE" block.
	PublicKeyPEM []byte
	// AllowedOrigins lists the browser origins that may connect; see
	// OriginPolicy.
	AllowedOrigins []string
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Issuer, when set, must be the token's iss.
	Issuer string
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Reason is why a handshake was refused.
type Reason int

// Refusal reasons, the values of wsd_auth_failures_total's reason label.
const (
	MissingToken     Reason = iota // 401: no token= and no Authorization: Bearer
	InvalidToken                   // 401: malformed, bad signature, no exp, not yet valid, bad claims
	WrongAlgorithm                 // 401: signed with another alg than the configured one ("none" too)
	ExpiredToken                   // 401: exp in the past
	WrongSubject                   // 403: sub is not the specialKey
	RoomNotAllowed                 // 403: the rooms claim does not list the requested room
	OriginNotAllowed               // 403: Origin header present and not allowed
	numReasons
)

var reasonNames = [numReasons]string{
	"missing_token", "invalid_token", "wrong_algorithm", "expired_token",
	"wrong_subject", "room_not_allowed", "origin_not_allowed",
}

func (r Reason) String() string {
	if r >= 0 && r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every Reason, for exporting zeros.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// Refusals are values, so refusing allocates nothing beyond the token parse.
var refusals = [numReasons]error{
	MissingToken:     codec.Reject(http.StatusUnauthorized, "missing token: pass token= or Authorization: Bearer"),
	InvalidToken:     codec.Reject(http.StatusUnauthorized, "invalid token"),
	WrongAlgorithm:   codec.Reject(http.StatusUnauthorized, "invalid token: unexpected signing algorithm"),
	ExpiredToken:     codec.Reject(http.StatusUnauthorized, "token expired"),
	WrongSubject:     codec.Reject(http.StatusForbidden, "token subject is not this specialKey"),
	RoomNotAllowed:   codec.Reject(http.StatusForbidden, "token does not allow this room"),
	OriginNotAllowed: codec.Reject(http.StatusForbidden, "origin not allowed"),
}

// ReasonOf returns the Reason of an error Authorize returned.
func ReasonOf(err error) (Reason, bool) {
	for r, e := range refusals {
		if err == e {
			return Reason(r), true
		}
	}
	return 0, false
}

// Claims are the token claims wsd reads: the registered ones (sub, exp,
// nbf, ...) and rooms.
type Claims struct {
	// Rooms, when present, lists the rooms the token may join. The global
	// room is "" and must be listed as such; "*" allows every room, the
	// global one included. Absent (or null): any room. Empty array: none.
	Rooms []string `json:"rooms,omitempty"`
	jwt.RegisteredClaims
}

// AllowsRoom reports whether the claims let a connection join room
// ("" is the global room).
func (c *Claims) AllowsRoom(room []byte) bool {
	if c.Rooms == nil {
		return true
	}
	for _, r := range c.Rooms {
		if r == "*" || r == string(room) {
			return true
		}
	}
	return false
}

// Authorizer checks handshakes. It is safe for concurrent use.
type Authorizer struct {
	origins  *OriginPolicy
	alg      string // "" when tokens are off
	key      any
	parser   *jwt.Parser
	keyFunc  jwt.Keyfunc
	failures [numReasons]atomic.Uint64
}

// New builds an Authorizer from cfg.
func New(cfg Config) (*Authorizer, error) {
	a := &Authorizer{}
	var err error
	if a.origins, err = NewOriginPolicy(cfg.AllowedOrigins); err != nil {
		return nil, err
	}
	switch {
	case len(cfg.HMACSecret) > 0 && len(cfg.PublicKeyPEM) > 0:
		return nil, errors.New("auth: set either an HMAC secret or a public key, not both")
	case len(cfg.HMACSecret) > 0:
		a.alg, a.key = jwt.SigningMethodHS256.Alg(), bytes.Clone(cfg.HMACSecret)
	case len(cfg.PublicKeyPEM) > 0:
		pub, alg, err := ParsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		a.alg, a.key = alg, pub
	}
	if a.alg != "" {
		opts := []jwt.ParserOption{
			jwt.WithValidMethods([]string{a.alg}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(cfg.Leeway),
		}
		if cfg.Now != nil {
			opts = append(opts, jwt.WithTimeFunc(cfg.Now))
		}
		if cfg.Audience != "" {
			opts = append(opts, jwt.WithAudience(cfg.Audience))
		}
		if cfg.Issuer != "" {
			opts = append(opts, jwt.WithIssuer(cfg.Issuer))
		}
		a.parser = jwt.NewParser(opts...)
		key := a.key
		a.keyFunc = func(t *jwt.Token) (any, error) {
			// WithValidMethods already refused any other alg; check again
			// so a key can never meet a method it was not meant for.
			if t.Method == nil || t.Method.Alg() != a.alg {
				return nil, errWrongAlg
			}
			// RFC 7515 4.1.11: a token naming extensions in crit that
			// the recipient does not implement (wsd implements none)
			// must be refused.
			if _, ok := t.Header["crit"]; ok {
				return nil, errCrit
			}
			if !numericDates(t.Raw) {
				return nil, errDate
			}
			return key, nil
		}
	}
	return a, nil
}

var (
	errWrongAlg = errors.New("unexpected signing algorithm")
	errCrit     = errors.New("crit header: no extension is understood")
	errDate     = errors.New("exp, nbf or iat is not a JSON number")
)

// numericDates reports whether the exp, nbf and iat claims of a compact
// token, where present, are JSON numbers (RFC 7519 2: NumericDate). The
// JWT library also reads quoted numbers ("exp":"9999999999"), which other
// verifiers refuse; a token is read one way everywhere or not at all.
func numericDates(raw string) bool {
	parts := strings.SplitN(raw, ".", 3)
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var dates struct {
		Exp, Nbf, Iat json.RawMessage
	}
	if err := json.Unmarshal(payload, &dates); err != nil {
		return false
	}
	for _, d := range []json.RawMessage{dates.Exp, dates.Nbf, dates.Iat} {
		if d != nil && (len(d) == 0 || d[0] != '-' && (d[0] < '0' || d[0] > '9')) {
			return false
		}
	}
	return true
}

// ParsePublicKey reads an RSA or ECDSA P-256 public key from PEM and
// returns it with the one algorithm wsd accepts for it.
func ParsePublicKey(data []byte) (crypto.PublicKey, string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("auth: public key: no PEM block")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, "", fmt.Errorf("auth: public key: PEM block %q, want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("auth: public key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("auth: RSA public key of %d bits, want 2048 or more", k.N.BitLen())
		}
		return k, jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("auth: ECDSA public key on %s, want P-256 (ES256)", k.Curve.Params().Name)
		}
		return k, jwt.SigningMethodES256.Alg(), nil
	}
	return nil, "", fmt.Errorf("auth: public key of type %T, want RSA or ECDSA P-256", pub)
}

// Algorithm returns the accepted JWT algorithm, "" when tokens are off.
func (a *Authorizer) Algorithm() string { return a.alg }

// Enabled reports whether Authorize checks anything at all.
func (a *Authorizer) Enabled() bool { return a.alg != "" || a.origins != nil }

// Hook returns Authorize for session.Config.Authorize, or nil when there
// is nothing to check, so an open server pays nothing.
func (a *Authorizer) Hook() func(*codec.Request) error {
	if !a.Enabled() {
		return nil
	}
	return a.Authorize
}

// Failures calls f with every Reason and how many handshakes it refused.
func (a *Authorizer) Failures(f func(reason string, n uint64)) {
	for r := range a.failures {
		f(reasonNames[r], a.failures[r].Load())
	}
}

// Failed returns how many handshakes were refused for r.
func (a *Authorizer) Failed(r Reason) uint64 { return a.failures[r].Load() }

// Authorize checks a handshake that passed the protocol checks: first the
// Origin, then the token. A nil error admits it; otherwise the error is a
// codec.Reject refusal carrying 401 or 403.
func (a *Authorizer) Authorize(req *codec.Request) error {
	if len(req.Origin) > 0 && !a.origins.Allowed(req.Origin) {
		return a.refuse(OriginNotAllowed)
	}
	if a.alg == "" {
		return nil
	}
	tok := req.Token // a token query parameter wins over a bearer token
	if len(tok) == 0 {
		tok = BearerToken(req.Authorization)
	}
	if len(tok) == 0 {
		return a.refuse(MissingToken)
	}
	claims, r := a.verify(tok)
	if r >= 0 {
		return a.refuse(r)
	}
	if claims.Subject != string(req.Key) {
		return a.refuse(WrongSubject)
	}
	if !claims.AllowsRoom(req.Room) {
		return a.refuse(RoomNotAllowed)
	}
	// The claim goes on with the request: a v1 connection's later joins
	// are checked against it too (session reads it).
	req.Rooms = claims.Rooms
	return nil
}

// verify parses and verifies a token; r is -1 when it is good.
func (a *Authorizer) verify(tok []byte) (*Claims, Reason) {
	claims := &Claims{}
	t, err := a.parser.ParseWithClaims(string(tok), claims, a.keyFunc)
	switch {
	case err == nil && t.Valid:
		return claims, -1
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ExpiredToken
	case t != nil && t.Header != nil && t.Header["alg"] != a.alg:
		return nil, WrongAlgorithm
	}
	return nil, InvalidToken
}

func (a *Authorizer) refuse(r Reason) error {
	a.failures[r].Add(1)
	return refusals[r]
}
