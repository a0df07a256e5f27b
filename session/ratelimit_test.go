package session

import (
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	const sec = int64(time.Second)
	for _, tc := range []struct {
		name    string
		rate    float64
		burst   int
		arrival []int64 // nanos
		allowed []bool
	}{
		{"unlimited", 0, 0, []int64{0, 0, 0, 0}, []bool{true, true, true, true}},
		{"burst then refuse", 10, 3, []int64{0, 0, 0, 0}, []bool{true, true, true, false}},
		{"refill at the rate", 10, 1, []int64{0, sec / 20, sec / 10, sec / 10}, []bool{true, false, true, false}},
		{"idle restores the burst", 1, 2, []int64{0, 0, 0, 10 * sec, 10 * sec, 10 * sec}, []bool{true, true, false, true, true, false}},
	} {
		l := newRateLimit(tc.rate, float64(tc.burst))
		var s rateState
		for i, at := range tc.arrival {
			if got := l.allow(&s, at+sec, 1); got != tc.allowed[i] {
				t.Errorf("%s: message %d at %v: allowed %v, want %v", tc.name, i, time.Duration(at), got, tc.allowed[i])
			}
		}
	}
}
