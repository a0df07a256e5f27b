package admin

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The admin API is for operators' tools and backends, not for web pages. A
// page on any site could otherwise drive it from the browser of someone
// who can reach the admin address (an operator's workstation, a box
// running `go run ./cmd/wsd`): a cross-site POST with a text/plain body
// needs no CORS preflight, an <img> can start a CPU profile, and DNS
// rebinding makes a page same-origin with the admin address. browserGuard
// refuses all three:
//
//   - a request a browser marks as cross-site or same-site
//     (Sec-Fetch-Site), whatever its method;
//   - a state-changing request whose Origin is not the admin address
//     (net/http's CrossOriginProtection, for browsers that do not send
//     Sec-Fetch-Site);
//   - without an admin token, a request whose Host is a name other than
//     localhost: a rebound name still carries it, while tools address the
//     admin listener by IP or localhost. (With a token, a rebinding page
//     cannot present it.)
func browserGuard(next http.Handler, token func() string) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused: the admin API is not for web pages")
	}))
	protected := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "cross-site", "same-site":
			writeError(w, http.StatusForbidden, "cross-site request refused: the admin API is not for web pages")
			return
		}
		if token() == "" && !addressedByIP(r.Host) {
			writeError(w, http.StatusForbidden, "without an admin token the admin API answers only requests to an IP address or localhost")
			return
		}
		protected.ServeHTTP(w, r)
	})
}

// addressedByIP reports whether host (a Host header) names an IP address
// or localhost.
func addressedByIP(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return strings.EqualFold(host, "localhost")
}
