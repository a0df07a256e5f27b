package codec

import (
	"net/http"
	"strconv"

	"github.com/gobwas/ws"
)

// Reject returns a handshake refusal with an HTTP status and a one-line
// reason: an Upgrader answers it (and StatusOf reads it back) as that
// status. Packages that refuse handshakes (auth, session) build their
// refusals here, so none of them needs to know gobwas/ws.
func Reject(status int, reason string) error {
	return ws.RejectConnectionError(ws.RejectionStatus(status), ws.RejectionReason(reason))
}

// StatusOf returns the HTTP status a handshake error was answered with.
func StatusOf(err error) int {
	if rej, ok := err.(*ws.ConnectionRejectedError); ok && rej.StatusCode() != 0 {
		return rej.StatusCode()
	}
	return http.StatusBadRequest
}

// appendHTTPError appends a complete HTTP/1.1 error response with a
// one-line plain-text reason, for refusals made outside the upgrader (a
// request head over the size cap, a failed authorization).
func appendHTTPError(dst []byte, status int, reason string) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(reason)+1), 10)
	dst = append(dst, "\r\n\r\n"...)
	dst = append(dst, reason...)
	return append(dst, '\n')
}

// AppendRejection appends the response for a handshake error: its status
// (see StatusOf) and its text as the reason.
func AppendRejection(dst []byte, err error) []byte {
	return appendHTTPError(dst, StatusOf(err), err.Error())
}
