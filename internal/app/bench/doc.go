// Package bench holds the pieces of Mandate's benchmark harness that are
// shared by its commands: latency statistics, process CPU time and resident
// set from /proc, Go memory statistics for debug listeners, and reading
// (without verifying) the subject of a JWT.
//
// The commands live under cmd/:
//
//	echoserver    reference go-sdk MCP upstream (echo, sleep10ms, whoami)
//	loadgen       go-sdk client load generator: calls, tools/list, setup, a new
//	              user's first call (cold), idle sessions (memory per session)
//	rproxy        do-nothing httputil.ReverseProxy: the floor any hop pays
//	benchidp      devidp on a fixed port, writing user tokens to files; with
//	              -signin-redirect-uri also Mandate's sign-in client
//	benchsignin   signs those users in at Mandate's authorization server
//	              (registration, login_hint, consent, code) and writes Mandate's
//	              tokens; measures the token endpoint (code and refresh grants)
//	mandateprof   mandate serve plus bench hooks: CPU profile, injected trace
//	              sampler with a discarding exporter, discarded audit, /memstats
//	benchsummary  medians over rounds and ratios between targets
//
// run.sh builds them all plus the mandate binary and runs the scenarios
// with the targets interleaved; BENCHMARKS.md at the repository root records
// the method and the numbers it printed.
package bench
