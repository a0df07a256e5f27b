package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// FuzzPublish sends arbitrary bodies to POST /publish: the answer is always
// JSON with 200 (and a delivered count), 400 or 413 — never a panic or a
// 5xx — and the server keeps serving.
func FuzzPublish(f *testing.F) {
	for _, body := range []string{
		`{"text":"hi"}`, `{"room":"lobby","text":"hi"}`, `{"key":"alice","text":"hi"}`, `{"room":"*","text":"x"}`,
		`{"text":"hi"} trailing`, `{"text":1}`, `{"bogus":true}`, `{"room":"bad room","text":"x"}`,
		`{"text":"\ud800"}`, `[]`, `null`, ``, `{`, strings.Repeat("[", 5000),
	} {
		f.Add(body)
	}
	srv := testserver.Start(f, server.Config{Workers: 1, Session: session.Config{MaxMessage: 256}})
	h := admin.NewHandler(srv, admin.Options{})
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(body))
		req.Host = "127.0.0.1:9090" // no token: only requests to an address are served
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("non-JSON answer %q: %v", rec.Body.String(), err)
		}
		if _, ok := out["delivered"]; rec.Code == http.StatusOK && !ok {
			t.Fatalf("200 without a delivered count: %q", rec.Body.String())
		}
	})
}
