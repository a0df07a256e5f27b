package main

import (
	"io"
	"os"
	"testing"

	"github.com/wsd-chat/wsd/internal/wstest"
)

var tempDir string

func TestMain(m *testing.M) {
	// The cluster scenario runs "bench natsd" as os.Executable(): here,
	// this test binary.
	if len(os.Args) > 1 && os.Args[1] == "natsd" {
		if err := runNatsd(os.Args[2:]); err != nil {
			panic(err)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "bench-test-")
	if err != nil {
		panic(err)
	}
	tempDir = dir
	flagOutput = io.Discard
	code := m.Run()
	os.RemoveAll(dir)
	wstest.RemoveBinary()
	os.Exit(code)
}
