package admin

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/wsd-chat/wsd/auth"
)

// authorized reports whether r carries the bearer token in force (any
// request does when none is set); otherwise it has answered 401.
func authorized(w http.ResponseWriter, r *http.Request, token func() string) bool {
	if t := token(); t != "" && !bearerMatches(r.Header.Get("Authorization"), t) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wsd"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return false
	}
	return true
}

// bearerMatches compares in constant time so the token cannot be guessed
// byte by byte from response times.
func bearerMatches(header, token string) bool {
	got := auth.BearerToken([]byte(header))
	return got != nil && subtle.ConstantTimeCompare(got, []byte(token)) == 1
}

// decodeBody reads r's body, at most limit bytes, as exactly one JSON value
// into v, refusing unknown fields and trailing data. It reports whether it
// did; otherwise it has answered 413 (body over limit) or 400.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		status := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, "bad request body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "bad request body: trailing data")
		return false
	}
	return true
}

// writeError answers status with {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
