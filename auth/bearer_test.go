package auth

import "testing"

// TestBearerToken: the one parse of Authorization: Bearer, which the
// upgrade's authorization and the admin API share.
func TestBearerToken(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"Bearer abc", "abc"},
		{"bearer abc", "abc"},
		{"BEARER abc", "abc"},
		{"Bearer  abc ", "abc"},
		{"Bearer a b", "a b"},
		{"Bearer ", ""},
		{"Bearer", ""},
		{"Bearer    ", ""},
		{"Basic YWxpY2U6cHc=", ""},
		{"Bearerabc", ""},
		{"", ""},
	} {
		got := BearerToken([]byte(tc.header))
		if string(got) != tc.want || (got == nil) != (tc.want == "") {
			t.Errorf("BearerToken(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}
