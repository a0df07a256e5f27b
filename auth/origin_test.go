package auth

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestOriginPolicy(t *testing.T) {
	policy := []string{
		"https://chat.example.com",
		"https://*.example.org",
		"http://localhost:*",
		"http://127.0.0.1:8080",
		"HTTPS://Mixed.Case.NET",
		"https://[::1]:8443",
		"https://default.example:443",
	}
	p, err := NewOriginPolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://chat.example.com", true},
		{"https://CHAT.Example.COM", true},
		{"HTTPS://chat.example.com", true},
		{"https://chat.example.com:443", true}, // default port
		{"https://chat.example.com:8443", false},
		{"http://chat.example.com", false}, // scheme differs
		{"wss://chat.example.com", false},
		{"https://chat.example.com/", false}, // not a bare origin
		{"https://chat.example.com/path", false},
		{"https://user@chat.example.com", false},
		{"https://chat.example.com.evil.com", false},
		{"https://evilchat.example.com", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://A.EXAMPLE.ORG", true},
		{"https://example.org", false}, // wildcard needs a label
		{"https://.example.org", false},
		{"https://a..example.org", false},
		{"https://evilexample.org", false},
		{"https://a.example.org.evil.net", false},
		{"https://a.example.org:8443", false},
		{"http://a.example.org", false},
		{"http://localhost", true},
		{"http://localhost:3000", true},
		{"http://LOCALHOST:1", true},
		{"https://localhost:3000", false},
		{"http://127.0.0.1:8080", true},
		{"http://127.0.0.1", false},
		{"http://127.0.0.1:80", false},
		{"https://mixed.case.net", true},
		{"https://[::1]:8443", true},
		{"https://[::1]", false},
		{"https://default.example", true},
		{"null", false},
		{"", false},
		{"chat.example.com", false},
		{"https://", false},
		{"https://chat.example.com:", false},
		{"https://chat.example.com:99999999", false},
		{"https://chat.example.com:44a", false},
		{"https://chat example.com", false},
		{"https://chat.example.com\x00", false},
		{"://chat.example.com", false},
		{"1https://chat.example.com", false},
	} {
		if got := p.Allowed([]byte(tc.origin)); got != tc.ok {
			t.Errorf("Allowed(%q) = %v, want %v", tc.origin, got, tc.ok)
		}
	}
}

func TestOriginPolicySpecialEntries(t *testing.T) {
	if p, err := NewOriginPolicy(nil); p != nil || err != nil {
		t.Errorf("empty list: %v, %v; want no policy", p, err)
	}
	if p, err := NewOriginPolicy([]string{" ", ""}); p != nil || err != nil {
		t.Errorf("blank list: %v, %v; want no policy", p, err)
	}
	var none *OriginPolicy
	if !none.Allowed([]byte("https://anything")) {
		t.Error("nil policy refuses")
	}
	p, _ := NewOriginPolicy([]string{"*"})
	if !p.Allowed([]byte("https://anything")) || !p.Allowed([]byte("null")) {
		t.Error(`"*" refuses`)
	}
	p, _ = NewOriginPolicy([]string{"null", "https://a.test"})
	if !p.Allowed([]byte("null")) || !p.Allowed([]byte("https://a.test")) || p.Allowed([]byte("https://b.test")) {
		t.Error(`"null" entry`)
	}
	got := ParseOriginList(" https://a.test, ,https://*.b.test ,")
	if strings.Join(got, "|") != "https://a.test|https://*.b.test" {
		t.Errorf("ParseOriginList = %q", got)
	}
}

func TestOriginPatternErrors(t *testing.T) {
	for _, s := range []string{
		"example.com", "https://", "https://*", "https://*.", "https://a.*.com",
		"https://*example.com", "https://ex ample.com", "https://example.com/path",
		"https://example.com:port", "https://example.com:", "ht tp://example.com",
		"https://**.example.com", "https://[::1", "*://example.com",
	} {
		if _, err := NewOriginPolicy([]string{s}); err == nil {
			t.Errorf("NewOriginPolicy(%q) accepted", s)
		}
	}
}

// TestOriginPublicSuffixWildcard: a wildcard whose remainder is a public
// suffix — an ICANN one or a private one of the Public Suffix List — is
// refused, naming the pattern and the suffix; one a level below, or over
// a name the list does not know, is kept.
func TestOriginPublicSuffixWildcard(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		refused bool
		suffix  string // named in the refusal
	}{
		{"https://*.com", true, "com"},
		{"https://*.COM", true, "com"},
		{"http://*.com:*", true, "com"},
		{"wss://*.com:8443", true, "com"},
		{"https://*.co.uk", true, "co.uk"},
		{"https://*.uk", true, "uk"},
		{"https://*.github.io", true, "github.io"},       // private section
		{"https://*.blogspot.com", true, "blogspot.com"}, // private section
		{"https://*.s3.amazonaws.com", true, "s3.amazonaws.com"},
		{"https://*.foo.ck", true, "foo.ck"},         // "*.ck": every x.ck is a suffix
		{"https://*.xn--fiqs8s", true, "xn--fiqs8s"}, // .中国, as punycode
		{"https://*.home.arpa", true, "home.arpa"},
		// Wildcard rules: every child of these is a public suffix.
		{"https://*.np", true, "np"},
		{"https://*.sch.uk", true, "sch.uk"},
		{"https://*.nom.br", true, "nom.br"},
		{"https://*.kobe.jp", true, "kobe.jp"},
		{"https://*.ck", true, "ck"},
		{"https://*.compute.amazonaws.com", true, "compute.amazonaws.com"},

		{"https://*.example.com", false, ""},
		{"https://*.example.co.uk", false, ""},
		{"https://*.wsd-chat.github.io", false, ""},
		{"https://*.amazonaws.com", false, ""}, // a registrable domain; its children are suffixes
		{"https://*.www.ck", false, ""},        // "!www.ck": the exception
		{"http://*.localhost:*", false, ""},    // unknown to the list: the operator's own names
		{"https://*.internal", false, ""},
		{"https://*.corp", false, ""},
		{"https://com", false, ""}, // not a wildcard: that one origin
		{"https://co.uk", false, ""},
		{"https://github.io", false, ""},
	} {
		p, err := NewOriginPolicy([]string{"https://ok.example", tc.pattern})
		if !tc.refused {
			if err != nil || p == nil {
				t.Errorf("%q refused: %v", tc.pattern, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q accepted", tc.pattern)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, ErrPublicSuffixWildcard) || !strings.Contains(msg, `"`+tc.pattern+`"`) ||
			!strings.Contains(msg, "("+tc.suffix+")") || strings.Contains(msg, "\n") {
			t.Errorf("%q: error %q; want ErrPublicSuffixWildcard naming the pattern and %q on one line", tc.pattern, msg, tc.suffix)
		}
	}
	// A syntax error is not this one.
	if _, err := NewOriginPolicy([]string{"https://*."}); err == nil || errors.Is(err, ErrPublicSuffixWildcard) {
		t.Errorf("https://*.: %v", err)
	}
}

func TestOriginAllowedDoesNotAllocate(t *testing.T) {
	p, _ := NewOriginPolicy([]string{"https://a.test", "https://*.example.com", "http://localhost:*"})
	origins := [][]byte{[]byte("https://x.y.example.com"), []byte("https://evil.test"), []byte("http://localhost:9")}
	if n := testing.AllocsPerRun(100, func() {
		for _, o := range origins {
			p.Allowed(o)
		}
	}); n != 0 {
		t.Errorf("Allowed allocates %v times", n)
	}
}

// FuzzOriginAllowed checks the matcher against a slow reference built on
// net/url and strings: it never admits what the reference refuses, and it
// ignores ASCII case.
func FuzzOriginAllowed(f *testing.F) {
	for _, s := range [][2]string{
		{"https://*.example.com", "https://a.example.com"},
		{"https://*.example.com", "https://example.com"},
		{"http://localhost:*", "http://localhost:8080"},
		{"https://a.test", "https://A.TEST:443"},
		{"https://[::1]:8443", "https://[::1]:8443"},
		{"https://a.test", "https://a.test/"},
		{"https://a.test", "null"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		p, err := NewOriginPolicy([]string{pattern})
		if err != nil || p == nil || p.any || p.null {
			return
		}
		got := p.Allowed([]byte(origin))
		if got != p.Allowed([]byte(asciiUpper(origin))) {
			t.Fatalf("pattern %q: Allowed(%q) depends on case", pattern, origin)
		}
		if !got {
			return
		}
		pat := p.patterns[0]
		u, err := url.Parse(strings.ToLower(origin))
		if err != nil {
			t.Fatalf("pattern %q admitted %q, which net/url refuses: %v", pattern, origin, err)
		}
		if u.Scheme != pat.scheme || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("pattern %q admitted %q (%#v)", pattern, origin, u)
		}
		host := u.Host
		if port := u.Port(); port != "" {
			host = host[:len(host)-len(port)-1]
			if pat.port != "*" && port != pat.port && !(pat.port == "" && (port == "443" || port == "80")) {
				t.Fatalf("pattern %q admitted %q: port %q", pattern, origin, port)
			}
		} else if pat.port != "" && pat.port != "*" {
			t.Fatalf("pattern %q admitted %q without a port", pattern, origin)
		}
		switch {
		case pat.wild:
			if !strings.HasSuffix(host, pat.host) || len(host) == len(pat.host) || strings.HasPrefix(host, ".") {
				t.Fatalf("pattern %q admitted %q: host %q", pattern, origin, host)
			}
		case host != pat.host:
			t.Fatalf("pattern %q admitted %q: host %q", pattern, origin, host)
		}
	})
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
