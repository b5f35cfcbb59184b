// Package testjaeger runs a real Jaeger v1.76.0 (the OpenTelemetry-collector
// based "v2" binary) on loopback for tests that prove traces reach a real
// trace backend and can be found there the way an SRE would find them.
//
// The binary is built out of band by internal/testenv/testjaeger/build/build.sh (a
// separate Go module, so the main module's go vet/go test never compile
// Jaeger) into <repo>/bin/jaeger, or named by $MANDATE_JAEGER_BIN or
// [Options.Binary].
//
// Start writes a config file into a temporary directory and runs
// `jaeger --config=file:<it>`: in-memory storage, an OTLP/HTTP receiver, the
// query API/UI and a health check, each on a free 127.0.0.1 port (no gRPC
// OTLP receiver, no collector self-metrics on :8888). It waits until the
// health check reports every component started and the query API answers.
// Jaeger's own output is kept in a bounded buffer ([Jaeger.Log]). Close
// kills the process group and removes the temporary directory.
//
// Usage from a test:
//
//	if _, ok := testjaeger.Available(testjaeger.Options{}); !ok {
//		t.Skip("jaeger binary missing: run internal/testenv/testjaeger/build/build.sh")
//	}
//	j, err := testjaeger.Start(ctx, testjaeger.Options{})
//	if err != nil { t.Fatal(err) }
//	t.Cleanup(func() { j.Close() })
//	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPEndpoint()) // or otlptracehttp.WithEndpointURL
//	// … emit spans, flush the tracer provider …
//	traces, err := j.Search(ctx, testjaeger.Query{Service: "mandate",
//		Tags: map[string]string{"user.id": "user-alice"}})
//	tr, err := j.Trace(ctx, traces[0].TraceID)
//
// The binary built by `go build` has no UI assets embedded (Jaeger's
// release builds add them), so the UI page is a placeholder; the query API
// this package uses is complete.
//
// Spans arrive asynchronously (the collector batches for 50 ms, then
// stores): poll Search/Trace with a deadline rather than asserting once.
// In the query API's model a span's kind is the tag span.kind, its parent
// is the CHILD_OF reference, and its service is Trace.Processes[ProcessID].
//
// This package must not import "testing": it is also used by test helpers
// of other packages.
package testjaeger
