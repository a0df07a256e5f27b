package cluster

// The wire format, for the tests in cluster_test that put forged and
// malformed messages on the bus.
type (
	Message = message
	Kind    = msgKind
)

const (
	KindRoom  = kindRoom
	KindClaim = kindClaim
	KindHold  = kindHold
)

var KeyToken = keyToken
