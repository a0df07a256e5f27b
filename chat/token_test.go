package chat

import "testing"

func TestRoomToken(t *testing.T) {
	for _, tc := range []struct{ room, tok string }{
		{"", "="},
		{"lobby", "lobby"},
		{"a.b.c", "a~b~c"},
		{"x:y-z_1", "x:y-z_1"},
		{"..", "~~"},
	} {
		if got := RoomToken(tc.room); got != tc.tok {
			t.Errorf("RoomToken(%q) = %q, want %q", tc.room, got, tc.tok)
		}
		if room, ok := TokenRoom(tc.tok); !ok || room != tc.room {
			t.Errorf("TokenRoom(%q) = %q %v, want %q", tc.tok, room, ok, tc.room)
		}
	}
	for _, tok := range []string{"", "a.b", "a b", "a*", ">", "==", "a=", "a!", string(make([]byte, MaxRoomLen+1))} {
		if room, ok := TokenRoom(tok); ok {
			t.Errorf("TokenRoom(%q) = %q, want refused", tok, room)
		}
	}
}
