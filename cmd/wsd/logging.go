package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// logOutput is where log lines go: stderr, or a file that SIGUSR1 reopens
// after logrotate renamed it.
type logOutput struct {
	mu   sync.Mutex
	path string
	f    *os.File
	w    io.Writer
}

func openLogOutput(path string, stderr io.Writer) (*logOutput, error) {
	l := &logOutput{path: path, w: stderr}
	if path == "" {
		return l, nil
	}
	f, err := openLogFile(path)
	if err != nil {
		return nil, fmt.Errorf("-log-file: %w", err)
	}
	l.f, l.w = f, f
	return l, nil
}

func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
}

func (l *logOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Reopen opens the log file's path again and switches to it; reports
// false when logging to stderr.
func (l *logOutput) Reopen() (bool, error) {
	if l.path == "" {
		return false, nil
	}
	f, err := openLogFile(l.path)
	if err != nil {
		return true, err
	}
	l.mu.Lock()
	old := l.f
	l.f, l.w = f, f
	l.mu.Unlock()
	return true, old.Close()
}

func (l *logOutput) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}

// newLogger returns the logger, its level (changed by a reload) and its
// output (reopened on SIGUSR1).
func newLogger(o *options, stderr io.Writer) (*slog.Logger, *slog.LevelVar, *logOutput, error) {
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, nil, nil, fmt.Errorf("-log-level: %w", err)
	}
	out, err := openLogOutput(o.logFile, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(out, hopts)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(out, hopts)
	}
	return slog.New(h), level, out, nil
}
