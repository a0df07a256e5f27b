package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/server"
)

// The admin API refuses what a web page could make a browser send to it:
// cross-site requests (Sec-Fetch-Site or a foreign Origin) and, without a
// token, requests to a DNS name (rebinding). Tools and backends (curl: no
// Origin, no Sec-Fetch-Site, addressed by IP) are served.
func TestBrowserGuard(t *testing.T) {
	srv := testserver.Start(t, server.Config{Workers: 1})
	open := admin.NewHandler(srv, admin.Options{})
	tokened := admin.NewHandler(srv, admin.Options{Token: "tok"})
	for _, tc := range []struct {
		name    string
		h       http.Handler
		method  string
		path    string
		host    string
		headers map[string]string
		want    int
	}{
		{"curl publish by IP", open, "POST", "/publish", "127.0.0.1:9090", nil, 200},
		{"curl publish by localhost", open, "POST", "/publish", "localhost:9090", nil, 200},
		{"curl publish by IPv6", open, "POST", "/publish", "[::1]:9090", nil, 200},
		{"rebound name, no token", open, "POST", "/publish", "evil.example:9090", nil, 403},
		{"rebound name, GET stats, no token", open, "GET", "/stats", "evil.example:9090", nil, 403},
		{"a name with a token", tokened, "POST", "/publish", "admin.internal:9090", map[string]string{"Authorization": "Bearer tok"}, 200},
		{"cross-site fetch", open, "POST", "/publish", "127.0.0.1:9090", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-site img to pprof", open, "GET", "/debug/pprof/", "127.0.0.1:9090", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"foreign Origin, old browser", open, "POST", "/disconnect", "127.0.0.1:9090", map[string]string{"Origin": "https://evil.example"}, 403},
		{"same-origin page", open, "POST", "/publish", "127.0.0.1:9090", map[string]string{"Origin": "http://127.0.0.1:9090", "Sec-Fetch-Site": "same-origin"}, 200},
		{"typed into the address bar", open, "GET", "/stats", "127.0.0.1:9090", map[string]string{"Sec-Fetch-Site": "none"}, 200},
	} {
		body := `{"text":"hi"}`
		if strings.HasSuffix(tc.path, "disconnect") {
			body = `{"key":"nobody"}`
		}
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(body))
		req.Host = tc.host
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %s %s Host %s: status %d (%s), want %d", tc.name, tc.method, tc.path, tc.host, rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
		}
	}
}
