//go:build !race

package wstest

// raceEnabled reports whether this binary was built with -race.
const raceEnabled = false
