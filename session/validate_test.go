package session

import (
	"strings"
	"testing"
)

func TestValidRoom(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"lobby", true},
		{"team-1.eu:west_2", true},
		{"", false}, // the global room is no name; publishing to it takes ""
		{"a b", false},
		{"é", false},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
	} {
		if got := ValidRoom(tc.name); got != tc.want {
			t.Errorf("ValidRoom(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
