//go:build race

package gateway

// raceEnabled reports whether the test binary was built with -race (scales
// the fault tests down: the race detector makes every request ~5-10x slower).
const raceEnabled = true
