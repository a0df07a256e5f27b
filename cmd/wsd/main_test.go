package main

import (
	"os"
	"testing"
)

// TestMain runs the tests, then stops the headless Chromium the browser
// tests share (browser_test.go), which outlives any one test.
func TestMain(m *testing.M) {
	code := m.Run()
	browserStop()
	os.Exit(code)
}
