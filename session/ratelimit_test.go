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

func TestByteRateLimit(t *testing.T) {
	l := newRateLimit(100, 200) // 100 B/s, bursts of 200 B
	var s rateState
	now := int64(time.Hour)
	for i, tc := range []struct {
		n    int
		want bool
	}{
		{150, true},  // within the burst
		{100, true},  // the burst is not spent yet: this one is owed
		{1, false},   // owed bytes must be paid back first
		{200, false}, // still owed
	} {
		if got := l.allow(&s, now, tc.n); got != tc.want {
			t.Fatalf("step %d: %d bytes allowed %v, want %v", i, tc.n, got, tc.want)
		}
	}
	if !l.allow(&s, now+int64(2*time.Second), 100) {
		t.Fatal("two seconds later the bucket has refilled")
	}
}

// TestSetRateLimitZero: a reload means what Config means: 0 is the
// default rate, a negative rate unlimited.
func TestSetRateLimitZero(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rate      float64
		burst     int
		wantBurst int // messages allowed at one instant; -1: unlimited
	}{
		{"zero is the default", 0, 0, DefaultMsgBurst},
		{"negative is unlimited", -1, 0, -1},
		{"explicit", 5, 3, 3},
	} {
		h := &Hub{rate: newRateLimit(1, 1)}
		h.SetRateLimit(tc.rate, tc.burst)
		var s rateState
		n := 0
		for n < 2*DefaultMsgBurst && h.rate.allow(&s, int64(time.Hour), 1) {
			n++
		}
		if tc.wantBurst < 0 {
			if n != 2*DefaultMsgBurst {
				t.Errorf("%s: refused after %d messages, want unlimited", tc.name, n)
			}
		} else if n != tc.wantBurst {
			t.Errorf("%s: %d messages allowed at once, want %d", tc.name, n, tc.wantBurst)
		}
	}
}
