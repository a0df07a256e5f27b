package server_test

import (
	"os"
	"testing"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// TestMain deletes the wsd binary the tests built (wstest.BuildBinary).
func TestMain(m *testing.M) {
	code := m.Run()
	wstest.RemoveBinary()
	os.Exit(code)
}
