package session

import (
	"testing"
	"unicode/utf8"

	"github.com/wsd-chat/wsd/codec"
)

// TestPolicies: the table the documentation is made from says what the
// values wsd sends say, and every row is one a peer can receive.
func TestPolicies(t *testing.T) {
	ps := Policies()
	if len(ps) == 0 {
		t.Fatal("no policies")
	}
	names := map[string]bool{}
	refusals := false
	for _, p := range ps {
		if names[p.Name] {
			t.Errorf("%s: name used twice", p.Name)
		}
		names[p.Name] = true
		if p.When == "" {
			t.Errorf("%s: no when", p.Name)
		}
		switch {
		case p.Upgrade:
			refusals = true
			if p.Code < 400 || p.Code > 599 {
				t.Errorf("%s: HTTP status %d", p.Name, p.Code)
			}
		case refusals:
			t.Errorf("%s: a close after the refusals: the table's rows are out of their declared order", p.Name)
		default:
			// A close frame's reason fits its 125-byte payload after the code.
			if len(p.Reason) > 123 || !utf8.ValidString(p.Reason) {
				t.Errorf("%s: reason %q does not fit a close frame", p.Name, p.Reason)
			}
			// The code must be one the peer may receive (ParseClose accepts it).
			payload := codec.AppendClose(nil, uint16(p.Code), p.Reason)[2:]
			if _, _, err := codec.ParseClose(payload); err != nil {
				t.Errorf("%s: code %d: %v", p.Name, p.Code, err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		err  *codec.CloseError
	}{
		{"slow_consumer", errSlowConsumer}, {"outbound_budget", errOutboundBudget}, {"rate_limited", errRateLimited},
		{"byte_rate_limited", errByteRateLimited}, {"message_timeout", errMessageTimeout}, {"inflate_ratio", errInflateRatio},
		{"inbound_budget", errInboundBudget}, {"idle", errIdle}, {"shutdown", errShutdown}, {"replaced", errReplaced},
		{"disconnected", errDisconnected}, {"internal", errInternal},
		{"delivery_rate_limited", errDeliveryRateLimited}, {"delivery_rate_limited_ip", errDeliveryRateLimitedIP},
	} {
		p := policy(t, ps, tc.name)
		if p.Code != int(tc.err.Code) || p.Reason != tc.err.Reason || p.Upgrade {
			t.Errorf("%s: table says %d %q, wsd sends %d %q", tc.name, p.Code, p.Reason, tc.err.Code, tc.err.Reason)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
	}{{"over_capacity", errOverCapacity}, {"draining", errDraining}, {"busy", errBusy}, {"per_ip", errPerIP}} {
		p := policy(t, ps, tc.name)
		if p.Code != codec.StatusOf(tc.err) || p.Reason != tc.err.Error() || !p.Upgrade {
			t.Errorf("%s: table says %d %q, wsd sends %d %q", tc.name, p.Code, p.Reason, codec.StatusOf(tc.err), tc.err.Error())
		}
	}
	// The seed protocol's codes.
	if errReplaced.Code != 4001 || errReplaced.Reason != "replaced" {
		t.Error("a replaced connection must get 4001 replaced (the seed protocol's kick)")
	}
	if errDisconnected.Code != 4002 {
		t.Error("a disconnected connection must get 4002")
	}
}

func policy(t *testing.T, ps []Policy, name string) Policy {
	t.Helper()
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("%s: not in the table", name)
	return Policy{}
}
