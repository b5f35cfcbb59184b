package testjaeger

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// startJaeger starts Jaeger for one test, or skips when the binary is
// absent and MANDATE_E2E is unset; with MANDATE_E2E set a missing binary fails.
func startJaeger(t *testing.T) *Jaeger {
	t.Helper()
	binary.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), DefaultStartTimeout)
	defer cancel()
	began := time.Now()
	j, err := Start(ctx, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("jaeger ready in %v: otlp %s query %s", time.Since(began).Round(time.Millisecond), j.OTLPEndpoint(), j.QueryURL())
	t.Cleanup(func() {
		if err := j.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("jaeger log (tail):\n%s", j.LogTail(16<<10))
		}
	})
	return j
}

// TestJaegerStoresAndFindsOTLPSpans: a parent and a child span sent over
// OTLP/HTTP by the OpenTelemetry SDK come back from the query API as one
// trace, found by service, by tag and by id, with the parent link, the
// span kind, the attributes and the service name intact.
func TestJaegerStoresAndFindsOTLPSpans(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	ctx := t.Context()

	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(j.OTLPEndpoint()+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "testjaeger-svc"))))
	tr := tp.Tracer("testjaeger")
	pctx, parent := tr.Start(ctx, "parent op", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("user.id", "user-alice"), attribute.Bool("flag", true), attribute.Int("n", 7)))
	_, child := tr.Start(pctx, "child op", trace.WithSpanKind(trace.SpanKindClient))
	child.End()
	parent.End()
	// Another trace by someone else, which the tag query must not return.
	_, other := tr.Start(ctx, "parent op", trace.WithAttributes(attribute.String("user.id", "user-bob")))
	other.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("exporting to jaeger: %v", err)
	}
	traceID := parent.SpanContext().TraceID().String()

	var found []Trace
	deadline := time.Now().Add(20 * time.Second)
	for {
		found, err = j.Search(ctx, Query{Service: "testjaeger-svc", Tags: map[string]string{"user.id": "user-alice"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(found) == 1 && len(found[0].Spans) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s the tag search found %d traces (want 1 with 2 spans)", len(found))
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := found[0]
	if got.TraceID != traceID {
		t.Fatalf("found trace %s, want %s", got.TraceID, traceID)
	}

	all, err := j.FindTraces(ctx, "testjaeger-svc")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Errorf("FindTraces found %d traces, want 2 (alice's and bob's)", len(all))
	}
	services, err := j.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(services, ","), "testjaeger-svc") {
		t.Errorf("services %v lack testjaeger-svc", services)
	}

	byID, err := j.Trace(ctx, traceID)
	if err != nil {
		t.Fatal(err)
	}
	ps, cs := byID.SpansNamed("parent op"), byID.SpansNamed("child op")
	if len(ps) != 1 || len(cs) != 1 {
		t.Fatalf("trace by id:\n%s", byID.Summary())
	}
	p, c := ps[0], cs[0]
	type view struct{ Service, Kind, Parent, User, Flag, N string }
	tag := func(s Span, k string) string { v, _ := s.Tag(k); return v }
	gotView := []view{
		{byID.Service(p), p.Kind(), p.ParentSpanID(), tag(p, "user.id"), tag(p, "flag"), tag(p, "n")},
		{byID.Service(c), c.Kind(), c.ParentSpanID(), "", "", ""},
	}
	wantView := []view{
		{"testjaeger-svc", "server", "", "user-alice", "true", "7"},
		{"testjaeger-svc", "client", p.SpanID, "", "", ""},
	}
	if d := cmp.Diff(wantView, gotView); d != "" {
		t.Errorf("spans (-want +got):\n%s\n%s", d, byID.Summary())
	}
	if p.SpanID != parent.SpanContext().SpanID().String() {
		t.Errorf("parent span id %s, want %s", p.SpanID, parent.SpanContext().SpanID())
	}

	_, err = j.Trace(ctx, "0123456789abcdef0123456789abcdef")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown trace id: err = %v, want ErrNotFound", err)
	}
}

// TestJaegerCloseKillsProcessAndCleansUp: after Close the process is gone,
// its port is free, the config directory is removed, and Close is idempotent.
func TestJaegerCloseKillsProcessAndCleansUp(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	pid := j.proc.Pid()
	if _, err := os.Stat(filepath.Join(j.dir, "config.yaml")); err != nil {
		t.Fatalf("config file: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if st := j.proc.State(); st == nil || st.Success() {
		t.Errorf("pid %d state after Close: %v, want killed", pid, st)
	}
	if _, err := os.Stat(j.dir); !os.IsNotExist(err) {
		t.Errorf("config dir %s after Close: %v", j.dir, err)
	}
	if _, err := j.Services(context.Background()); err == nil {
		t.Error("query API still answers after Close")
	}
}

func TestAvailableMissingBinary(t *testing.T) {
	t.Parallel()
	path, ok := Available(Options{Binary: filepath.Join(t.TempDir(), "no-jaeger")})
	if ok || !strings.HasSuffix(path, "no-jaeger") {
		t.Fatalf("Available(missing) = %s, %v", path, ok)
	}
	_, err := Start(context.Background(), Options{Binary: path})
	if err == nil || !strings.Contains(err.Error(), "build.sh") {
		t.Fatalf("Start(missing) = %v, want an error naming the build script", err)
	}
}

// TestDecodeQueryAPIModel decodes a response body in the shape Jaeger's
// query API returns and checks the helpers read it correctly.
func TestDecodeQueryAPIModel(t *testing.T) {
	t.Parallel()
	raw := `{"data":[{"traceID":"abc","spans":[
	  {"traceID":"abc","spanID":"s1","operationName":"tools/call crm_who","references":[],
	   "startTime":1,"duration":2,"processID":"p1",
	   "tags":[{"key":"user.id","type":"string","value":"user-alice"},{"key":"span.kind","type":"string","value":"server"},
	           {"key":"ok","type":"bool","value":true},{"key":"n","type":"int64","value":42}]},
	  {"traceID":"abc","spanID":"s2","operationName":"credentials.exchange","processID":"p1",
	   "references":[{"refType":"CHILD_OF","traceID":"abc","spanID":"s1"}],"tags":[]}],
	 "processes":{"p1":{"serviceName":"mandate","tags":[]}}}],"errors":null}`
	var env apiResponse
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		t.Fatal(err)
	}
	var traces []Trace
	if err := json.Unmarshal(env.Data, &traces); err != nil {
		t.Fatal(err)
	}
	tr := traces[0]
	s1, _ := tr.Span("s1")
	s2, _ := tr.Span("s2")
	for _, tc := range []struct{ name, got, want string }{
		{"user.id", first(s1.Tag("user.id")), "user-alice"},
		{"kind", s1.Kind(), "server"},
		{"bool tag", first(s1.Tag("ok")), "true"},
		{"int tag", first(s1.Tag("n")), "42"},
		{"root parent", s1.ParentSpanID(), ""},
		{"child parent", s2.ParentSpanID(), "s1"},
		{"service", tr.Service(s2), "mandate"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if _, ok := s1.Tag("absent"); ok {
		t.Error("absent tag reported present")
	}
}

func first(s string, _ bool) string { return s }
