package history

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Every test closes what it opens: Close leaves no goroutine behind, of
// the Log, its connection or its embedded server.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, l := range readLogs {
		l.Close()
	}
	for _, d := range readDirs {
		os.RemoveAll(d)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
