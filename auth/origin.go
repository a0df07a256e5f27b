package auth

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// OriginPolicy decides which browser origins may open a WebSocket, the
// defence against cross-site WebSocket hijacking: a page on another site
// can make a victim's browser connect with the victim's cookies, but it
// cannot forge the Origin header.
//
// An entry is scheme://host[:port]:
//
//	https://chat.example.com        exactly that origin (port 443 implied)
//	https://*.example.com           any subdomain, one or more labels deep,
//	                                but not example.com itself
//	http://localhost:8080           that port only
//	http://localhost:*              any port
//	null                            the opaque origin of sandboxed frames and file://
//	*                               every origin (the same as no policy)
//
// Schemes and hosts compare case-insensitively; a default port (80 for
// http/ws, 443 for https/wss) equals no port. An Origin that is not a bare
// scheme://host[:port] (a path, credentials, spaces) matches nothing.
//
// A wildcard over a bare public suffix (https://*.com, https://*.co.uk,
// https://*.github.io) is refused with ErrPublicSuffixWildcard: it would
// admit every site anyone can register there. See publicSuffix.
type OriginPolicy struct {
	patterns []originPattern
	any      bool
	null     bool
}

type originPattern struct {
	scheme string // lower case
	host   string // lower case; for a wildcard, the suffix with its leading dot
	wild   bool
	port   string // "" for the scheme's default port, "*" for any
}

// NewOriginPolicy parses a list of allowed origins. An empty list returns
// nil: no policy.
func NewOriginPolicy(list []string) (*OriginPolicy, error) {
	p := &OriginPolicy{}
	n := 0
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n++
		switch strings.ToLower(s) {
		case "*":
			p.any = true
			continue
		case "null":
			p.null = true
			continue
		}
		pat, err := parseOriginPattern(s)
		if err != nil {
			return nil, err
		}
		p.patterns = append(p.patterns, pat)
	}
	if n == 0 {
		return nil, nil
	}
	return p, nil
}

// ParseOriginList splits a comma-separated -allowed-origins value.
func ParseOriginList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ErrPublicSuffixWildcard is wrapped by NewOriginPolicy's error for a
// wildcard pattern whose remainder is a public suffix.
var ErrPublicSuffixWildcard = errors.New("wildcard over a public suffix")

// publicSuffix reports whether domain (lower case, no trailing dot) is a
// public suffix: a name under which unrelated parties register their own
// sites, so that "*." in front of it admits sites wsd's operator does not
// control. It asks the Public Suffix List compiled into
// golang.org/x/net/publicsuffix, and counts both of its sections:
//
//   - ICANN entries: top-level and registry domains (com, co.uk, *.ck);
//   - private entries: domains whose owner hands out subdomains to anyone
//     (github.io, blogspot.com, s3.amazonaws.com) — for an Origin check
//     they are as public as com: any GitHub user can publish a page at
//     something.github.io.
//
// A name the list does not know is not a public suffix here, although the
// list's implicit "*" rule calls every unknown top-level label one:
// localhost, internal, test, corp and the like are not delegated on the
// internet, so only the operator's own network names hosts under them, and
// http://*.localhost:* is a reasonable development setting.
//
// A wildcard rule (*.np, *.sch.uk, *.kobe.jp) makes every child of its
// domain a public suffix, so a pattern over that domain admits sites
// registered under any of them: that counts too.
func publicSuffix(domain string) bool {
	return isPublicSuffix(domain) || isPublicSuffix("x."+domain)
}

// isPublicSuffix reports whether domain is itself on the list (not only
// under the implicit rule).
func isPublicSuffix(domain string) bool {
	ps, icann := publicsuffix.PublicSuffix(domain)
	if ps != domain {
		return false
	}
	// Every private entry has a dot; a one-label answer that is not ICANN
	// came from the implicit rule.
	return icann || strings.Contains(domain, ".")
}

func parseOriginPattern(s string) (originPattern, error) {
	bad := func(why string) (originPattern, error) {
		return originPattern{}, fmt.Errorf("allowed origin %q: %s (want scheme://host[:port], host may start with *.)", s, why)
	}
	scheme, hostport, ok := splitOrigin([]byte(s))
	if !ok {
		return bad("not an origin")
	}
	pat := originPattern{scheme: strings.ToLower(string(scheme))}
	wild := false
	if bytes.HasPrefix(hostport, []byte("*.")) {
		wild = true
		hostport = hostport[1:] // keep the dot
	}
	// A "*" port is allowed in patterns only.
	var host, port []byte
	if bytes.HasSuffix(hostport, []byte(":*")) {
		host, port = hostport[:len(hostport)-2], []byte("*")
		if !validHost(host, wild) {
			return bad("bad host")
		}
	} else {
		var ok bool
		if wild {
			host, port, ok = splitHostPort(append([]byte("x"), hostport...))
			if ok {
				host = host[1:]
			}
		} else {
			host, port, ok = splitHostPort(hostport)
		}
		if !ok || !validHost(host, wild) {
			return bad("bad host or port")
		}
		port = normalPort(pat.scheme, port)
	}
	pat.host = strings.ToLower(string(host))
	pat.wild = wild
	pat.port = string(port)
	if wild && publicSuffix(pat.host[1:]) {
		suffix := pat.host[1:]
		return originPattern{}, fmt.Errorf("allowed origin %q: %w (%s): it would admit every site registered under it; use your own domain, e.g. %s://*.example.%s",
			s, ErrPublicSuffixWildcard, suffix, pat.scheme, suffix)
	}
	return pat, nil
}

// Allowed reports whether a handshake carrying this Origin header may
// proceed. It does not allocate.
func (p *OriginPolicy) Allowed(origin []byte) bool {
	if p == nil || p.any {
		return true
	}
	if len(origin) == 4 && bytes.EqualFold(origin, []byte("null")) {
		return p.null
	}
	scheme, hostport, ok := splitOrigin(origin)
	if !ok {
		return false
	}
	host, port, ok := splitHostPort(hostport)
	if !ok || !validHost(host, false) {
		return false
	}
	for i := range p.patterns {
		if p.patterns[i].match(scheme, host, port) {
			return true
		}
	}
	return false
}

func (pat *originPattern) match(scheme, host, port []byte) bool {
	if !equalFoldString(scheme, pat.scheme) {
		return false
	}
	if pat.port != "*" && string(normalPort(pat.scheme, port)) != pat.port {
		return false
	}
	if !pat.wild {
		return equalFoldString(host, pat.host)
	}
	// host = label(s) + ".example.com"; validHost rules out empty labels.
	return len(host) > len(pat.host) && equalFoldString(host[len(host)-len(pat.host):], pat.host)
}

// splitOrigin splits scheme://rest and checks the scheme's characters.
func splitOrigin(s []byte) (scheme, rest []byte, ok bool) {
	i := bytes.Index(s, []byte("://"))
	if i <= 0 {
		return nil, nil, false
	}
	scheme, rest = s[:i], s[i+3:]
	for j, c := range scheme {
		switch {
		case isAlpha(c):
		case j > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'):
		default:
			return nil, nil, false
		}
	}
	return scheme, rest, len(rest) > 0
}

// splitHostPort splits host[:port] or [v6]:port; the port, if present,
// is 1-5 digits.
func splitHostPort(s []byte) (host, port []byte, ok bool) {
	if len(s) > 0 && s[0] == '[' {
		end := bytes.IndexByte(s, ']')
		if end < 0 {
			return nil, nil, false
		}
		host, s = s[:end+1], s[end+1:]
		if len(s) == 0 {
			return host, nil, true
		}
		if s[0] != ':' {
			return nil, nil, false
		}
		port = s[1:]
	} else if i := bytes.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	} else {
		return s, nil, len(s) > 0
	}
	if len(port) == 0 || len(port) > 5 {
		return nil, nil, false
	}
	for _, c := range port {
		if !isDigit(c) {
			return nil, nil, false
		}
	}
	return host, port, len(host) > 0
}

// validHost accepts a DNS name or IPv4 address (labels of letters, digits,
// '-' and '_', no empty label) or a bracketed IPv6 address. With
// wildSuffix, host is ".example.com": the suffix of a wildcard.
func validHost(h []byte, wildSuffix bool) bool {
	if len(h) == 0 {
		return false
	}
	if h[0] == '[' {
		if wildSuffix || len(h) < 3 || h[len(h)-1] != ']' {
			return false
		}
		for _, c := range h[1 : len(h)-1] {
			if !isDigit(c) && !isHexAlpha(c) && c != ':' && c != '.' {
				return false
			}
		}
		return true
	}
	if wildSuffix {
		if h[0] != '.' {
			return false
		}
		h = h[1:]
	}
	prevDot := true // no leading dot
	for _, c := range h {
		switch {
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
			continue
		case isAlpha(c), isDigit(c), c == '-', c == '_':
		default:
			return false
		}
		prevDot = false
	}
	return !prevDot
}

// normalPort drops a scheme's default port.
func normalPort(scheme string, port []byte) []byte {
	switch string(port) {
	case "80":
		if scheme == "http" || scheme == "ws" {
			return nil
		}
	case "443":
		if scheme == "https" || scheme == "wss" {
			return nil
		}
	}
	return port
}

// equalFoldString compares ASCII case-insensitively without allocating.
func equalFoldString(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isAlpha(c byte) bool    { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isHexAlpha(c byte) bool { return c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
