//go:build !race

package gateway

// raceEnabled reports whether the test binary was built with -race.
const raceEnabled = false
