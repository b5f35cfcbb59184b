// Package bench holds the pieces of Mandate's benchmark harness that are
// shared by its commands: latency statistics, process CPU time from /proc,
// and reading (without verifying) the subject of a JWT.
//
// The commands live under cmd/:
//
//	echoserver    reference go-sdk MCP upstream (echo, sleep10ms, whoami)
//	loadgen       go-sdk client load generator (calls/s, p50/p90/p99/max, CPU per call)
//	rproxy        do-nothing httputil.ReverseProxy: the floor any hop pays
//	benchidp      devidp on a fixed port, writing user tokens to a file
//	mandateprof   mandate serve with a CPU profile of a time window
//	benchsummary  medians over rounds and ratios between targets
//
// run.sh builds them all plus the mandate binary and runs the scenarios
// with the targets interleaved; BENCHMARKS.md at the repository root records
// the method and the numbers it printed.
package bench
