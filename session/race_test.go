//go:build race

package session

// raceEnabled reports whether the tests run with -race (sync.Pool drops
// items at random then, so allocation counts mean nothing).
const raceEnabled = true
