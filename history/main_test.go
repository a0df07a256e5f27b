package history

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes what it opens: Close leaves no goroutine behind, of
// the Log, its connection or its embedded server.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
