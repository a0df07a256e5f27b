package main

import (
	"os"
	"testing"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// TestMain runs the tests, then stops the headless Chromium the browser
// tests share (browser_test.go), which outlives any one test, and removes
// the wsd binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	browserStop()
	wstest.RemoveBinary()
	os.Exit(code)
}
