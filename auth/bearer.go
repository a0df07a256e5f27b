package auth

import "bytes"

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header value (the scheme in any case, spaces around the token trimmed),
// or nil if there is none. It is the one parse of that header in wsd: the
// upgrade's authorization and the admin API accept exactly the same values.
func BearerToken(h []byte) []byte {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !bytes.EqualFold(h[:len(prefix)], []byte(prefix)) {
		return nil
	}
	if t := bytes.TrimSpace(h[len(prefix):]); len(t) > 0 {
		return t
	}
	return nil
}
