package testjaeger

import (
	"fmt"
	"strconv"
)

// Trace is one trace as Jaeger's query API returns it (the UI's JSON model).
type Trace struct {
	TraceID string `json:"traceID"`
	Spans   []Span `json:"spans"`
	// Processes maps a span's ProcessID to the process (service) that emitted it.
	Processes map[string]Process `json:"processes"`
	Warnings  []string           `json:"warnings"`
}

// Span is one span of a Trace. Times are in microseconds.
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	StartTime     int64       `json:"startTime"`
	Duration      int64       `json:"duration"`
	Tags          []KeyValue  `json:"tags"`
	ProcessID     string      `json:"processID"`
	Warnings      []string    `json:"warnings"`
}

// Reference links a span to another (refType CHILD_OF for the parent).
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// KeyValue is a tag: an OpenTelemetry attribute, or one Jaeger derives
// (span.kind, otel.status_code, …).
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Process is the emitter of spans: its service name and resource attributes.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// String renders the tag's value the way it was sent: strings as is,
// booleans and numbers in Go's default format.
func (kv KeyValue) String() string {
	switch v := kv.Value.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// Tag returns the value of the span's tag key and whether it is present.
func (s Span) Tag(key string) (string, bool) {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return kv.String(), true
		}
	}
	return "", false
}

// Kind is the span kind Jaeger records in the span.kind tag (server,
// client, internal, …); "" when absent.
func (s Span) Kind() string {
	k, _ := s.Tag("span.kind")
	return k
}

// ParentSpanID is the span id of the CHILD_OF reference; "" for a root span.
func (s Span) ParentSpanID() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Service returns the service.name of the process that emitted span s.
func (t Trace) Service(s Span) string {
	return t.Processes[s.ProcessID].ServiceName
}

// SpansNamed returns the spans whose operation name is name.
func (t Trace) SpansNamed(name string) []Span {
	var out []Span
	for _, s := range t.Spans {
		if s.OperationName == name {
			out = append(out, s)
		}
	}
	return out
}

// Span returns the span with id spanID.
func (t Trace) Span(spanID string) (Span, bool) {
	for _, s := range t.Spans {
		if s.SpanID == spanID {
			return s, true
		}
	}
	return Span{}, false
}

// Summary lists the trace's spans one per line (service, name, kind, ids),
// for test failure messages.
func (t Trace) Summary() string {
	out := "trace " + t.TraceID + "\n"
	for _, s := range t.Spans {
		out += fmt.Sprintf("  %s %q kind=%s span=%s parent=%s\n", t.Service(s), s.OperationName, s.Kind(), s.SpanID, s.ParentSpanID())
	}
	return out
}
