package main

import (
	"io"
	"os"
	"testing"
)

var tempDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bench-test-")
	if err != nil {
		panic(err)
	}
	tempDir = dir
	flagOutput = io.Discard
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
