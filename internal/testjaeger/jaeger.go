package testjaeger

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EnvBinary names the environment variable that points at a jaeger binary.
const EnvBinary = "MANDATE_JAEGER_BIN"

// DefaultStartTimeout bounds Start when ctx has no earlier deadline.
const DefaultStartTimeout = 60 * time.Second

// DefaultMaxTraces is the in-memory store's capacity when Options.MaxTraces is 0.
const DefaultMaxTraces = 10000

// maxLogBytes bounds the captured Jaeger log; older output is dropped.
const maxLogBytes = 1 << 20

// ErrNotFound is returned by Trace when Jaeger has no trace with that id.
var ErrNotFound = errors.New("testjaeger: trace not found")

// Options configures Start. The zero value works: it finds the binary via
// $MANDATE_JAEGER_BIN or <repo>/bin/jaeger, keeps at most DefaultMaxTraces
// traces and discards progress logs.
type Options struct {
	// Binary is the path of the jaeger executable. Empty: $MANDATE_JAEGER_BIN,
	// else bin/jaeger at the root of the Mandate repository.
	Binary string
	// Logger receives start/stop events (never Jaeger's own output). Nil
	// discards them.
	Logger *slog.Logger
	// MaxTraces is the in-memory store's capacity. 0: DefaultMaxTraces.
	MaxTraces int
}

// Jaeger is a running Jaeger all-in-one process with in-memory storage.
// Its methods are safe for concurrent use.
type Jaeger struct {
	cmd       *exec.Cmd
	dir       string // temporary directory holding the config file
	otlpURL   string // http://127.0.0.1:port, OTLP/HTTP receiver
	queryURL  string // http://127.0.0.1:port, query API and UI
	healthURL string // healthcheckv2 /status
	log       *tailBuffer
	logger    *slog.Logger
	http      *http.Client
	exited    chan struct{}
	waitErr   error // set before exited is closed
	closeOnce sync.Once
	closeErr  error
}

// Available reports the jaeger binary Start would run and whether it exists
// as an executable regular file.
func Available(opts Options) (path string, ok bool) {
	path = resolveBinary(opts)
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return path, false
	}
	return path, true
}

func resolveBinary(opts Options) string {
	// Relative paths are made absolute: Jaeger runs in a temporary directory.
	for _, p := range []string{opts.Binary, os.Getenv(EnvBinary)} {
		if p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
			return p
		}
	}
	if root, ok := repoRoot(); ok {
		return filepath.Join(root, "bin", "jaeger")
	}
	return filepath.Join("bin", "jaeger")
}

// repoRoot finds the main module's root: first upward from the working
// directory (tests run in their package directory), then from this source file.
func repoRoot() (string, bool) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if isMainModule(filepath.Join(dir, "go.mod")) {
				return dir, true
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", false
}

func isMainModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == "github.com/mandate-gw/mandate"
		}
	}
	return false
}

// Start runs Jaeger (the collector-based v2 binary) with a generated config:
// in-memory storage, an OTLP/HTTP receiver and the query API on free
// 127.0.0.1 ports, and waits until it reports healthy and its query API
// answers. ctx bounds only the start-up (DefaultStartTimeout if it has no
// deadline); the process lives until Close.
func Start(ctx context.Context, opts Options) (*Jaeger, error) {
	bin, ok := Available(opts)
	if !ok {
		return nil, fmt.Errorf("testjaeger: no executable jaeger binary at %s (build it with internal/testjaeger/build/build.sh or set %s)", bin, EnvBinary)
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Free ports are found by binding and releasing them, so another process
	// may take one before Jaeger binds it; retry a few times when that happens.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		j, err := start(ctx, bin, opts, logger)
		if err == nil {
			return j, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

// ports are the loopback ports one Jaeger process listens on.
type ports struct {
	otlpHTTP, queryHTTP, queryGRPC, health int
}

// configYAML renders Jaeger's configuration. Every listener binds
// 127.0.0.1; the collector's own metrics endpoint (default :8888) is off so
// that several Jaegers can run at once.
func configYAML(p ports, maxTraces int) string {
	return fmt.Sprintf(`# Generated by internal/testjaeger.
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
      encoding: console

extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:%[4]d
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:%[2]d
    grpc:
      endpoint: 127.0.0.1:%[3]d
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: %[5]d

receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%[1]d

processors:
  batch:
    timeout: 50ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, p.otlpHTTP, p.queryHTTP, p.queryGRPC, p.health, maxTraces)
}

func start(ctx context.Context, bin string, opts Options, logger *slog.Logger) (_ *Jaeger, err error) {
	began := time.Now()
	var p ports
	for _, dst := range []*int{&p.otlpHTTP, &p.queryHTTP, &p.queryGRPC, &p.health} {
		if *dst, err = freePort(); err != nil {
			return nil, err
		}
	}
	maxTraces := opts.MaxTraces
	if maxTraces <= 0 {
		maxTraces = DefaultMaxTraces
	}
	dir, err := os.MkdirTemp("", "testjaeger-")
	if err != nil {
		return nil, fmt.Errorf("testjaeger: creating a config directory: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(p, maxTraces)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testjaeger: writing %s: %w", cfgPath, err)
	}

	logBuf := &tailBuffer{max: maxLogBytes}
	cmd := exec.Command(bin, "--config=file:"+cfgPath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + os.TempDir()}
	cmd.Dir = dir
	cmd.Stdout = logBuf
	cmd.Stderr = logBuf
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testjaeger: starting %s: %w", bin, err)
	}
	j := &Jaeger{
		cmd:       cmd,
		dir:       dir,
		otlpURL:   "http://127.0.0.1:" + strconv.Itoa(p.otlpHTTP),
		queryURL:  "http://127.0.0.1:" + strconv.Itoa(p.queryHTTP),
		healthURL: "http://127.0.0.1:" + strconv.Itoa(p.health) + "/status",
		log:       logBuf,
		logger:    logger,
		http:      &http.Client{Timeout: 30 * time.Second},
		exited:    make(chan struct{}),
	}
	go func() {
		j.waitErr = cmd.Wait()
		close(j.exited)
	}()

	if err := j.waitReady(ctx); err != nil {
		_ = j.Close()
		if strings.Contains(logBuf.String(), "address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return nil, err
	}
	logger.Info("jaeger started", "otlp_endpoint", j.otlpURL, "query_url", j.queryURL,
		"pid", cmd.Process.Pid, "startup", time.Since(began).Round(time.Millisecond))
	return j, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testjaeger: finding a free loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("testjaeger: releasing port %d: %w", port, err)
	}
	return port, nil
}

// waitReady polls the health check until it answers 200 (every component
// started), then the query API's /api/services until it answers 200.
func (j *Jaeger) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, u := range []string{j.healthURL, j.queryURL + "/api/services"} {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return fmt.Errorf("testjaeger: %w", err)
			}
			resp, err := j.http.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-j.exited:
				return fmt.Errorf("testjaeger: jaeger exited before becoming ready (%v); its log:\n%s", j.waitErr, j.log.String())
			case <-ctx.Done():
				return fmt.Errorf("testjaeger: waiting for %s: %w; jaeger log:\n%s", u, ctx.Err(), j.log.String())
			case <-tick.C:
			}
		}
	}
	return nil
}

// OTLPEndpoint is the base URL of the OTLP/HTTP receiver
// (http://127.0.0.1:port, no path): set OTEL_EXPORTER_OTLP_ENDPOINT to it,
// or send spans to OTLPEndpoint()+"/v1/traces".
func (j *Jaeger) OTLPEndpoint() string { return j.otlpURL }

// QueryURL is the base URL of the query API and UI (http://127.0.0.1:port).
func (j *Jaeger) QueryURL() string { return j.queryURL }

// Log returns Jaeger's captured output (the last MiB of it).
func (j *Jaeger) Log() string { return j.log.String() }

// LogTail returns at most the last n bytes of Jaeger's captured output.
func (j *Jaeger) LogTail(n int) string {
	s := j.log.String()
	if n >= 0 && len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Close kills Jaeger's process group, waits for it to exit and removes its
// config directory. Calling it again is harmless.
func (j *Jaeger) Close() error {
	j.closeOnce.Do(func() {
		select {
		case <-j.exited:
			// Exited on its own: that is worth reporting.
			if j.waitErr != nil {
				j.closeErr = fmt.Errorf("testjaeger: jaeger had already exited: %w", j.waitErr)
			}
		default:
			if err := killGroup(j.cmd.Process.Pid); err != nil {
				// The group may be gone already; fall back to the process itself.
				if kerr := j.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
					j.closeErr = fmt.Errorf("testjaeger: killing jaeger: %w", errors.Join(err, kerr))
				}
			}
			<-j.exited
		}
		j.http.CloseIdleConnections()
		if err := os.RemoveAll(j.dir); err != nil && j.closeErr == nil {
			j.closeErr = fmt.Errorf("testjaeger: removing %s: %w", j.dir, err)
		}
		j.logger.Info("jaeger stopped", "query_url", j.queryURL)
	})
	return j.closeErr
}

// Query selects traces for FindTraces. Service is required.
type Query struct {
	// Service is the service.name of the process that emitted the spans.
	Service string
	// Operation, if set, is a span name the trace must contain.
	Operation string
	// Tags, if set, must all match on one span (exact string values).
	Tags map[string]string
	// Lookback bounds the search window. 0: one hour.
	Lookback time.Duration
	// Limit bounds the number of traces returned. 0: 100.
	Limit int
}

// FindTraces returns the traces of the last hour that contain spans of
// service (GET /api/traces?service=…), at most 100.
func (j *Jaeger) FindTraces(ctx context.Context, service string) ([]Trace, error) {
	return j.Search(ctx, Query{Service: service})
}

// Search returns the traces matching q (GET /api/traces).
func (j *Jaeger) Search(ctx context.Context, q Query) ([]Trace, error) {
	if q.Service == "" {
		return nil, errors.New("testjaeger: Search: empty service")
	}
	v := url.Values{}
	v.Set("service", q.Service)
	if q.Operation != "" {
		v.Set("operation", q.Operation)
	}
	if len(q.Tags) > 0 {
		b, err := json.Marshal(q.Tags)
		if err != nil {
			return nil, fmt.Errorf("testjaeger: encoding tags: %w", err)
		}
		v.Set("tags", string(b))
	}
	lookback := q.Lookback
	if lookback <= 0 {
		lookback = time.Hour
	}
	now := time.Now()
	v.Set("start", strconv.FormatInt(now.Add(-lookback).UnixMicro(), 10))
	v.Set("end", strconv.FormatInt(now.Add(time.Minute).UnixMicro(), 10))
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	v.Set("limit", strconv.Itoa(limit))
	var traces []Trace
	if err := j.get(ctx, "/api/traces?"+v.Encode(), &traces); err != nil {
		return nil, err
	}
	return traces, nil
}

// Trace returns one trace by its hex id (GET /api/traces/{id}), or an
// error wrapping ErrNotFound when Jaeger has none.
func (j *Jaeger) Trace(ctx context.Context, traceID string) (*Trace, error) {
	if traceID == "" || strings.ContainsAny(traceID, "/?#") {
		return nil, fmt.Errorf("testjaeger: Trace: bad trace id %q", traceID)
	}
	var traces []Trace
	if err := j.get(ctx, "/api/traces/"+traceID, &traces); err != nil {
		return nil, err
	}
	if len(traces) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, traceID)
	}
	return &traces[0], nil
}

// Services lists the service names Jaeger has seen (GET /api/services).
func (j *Jaeger) Services(ctx context.Context) ([]string, error) {
	var names []string
	if err := j.get(ctx, "/api/services", &names); err != nil {
		return nil, err
	}
	return names, nil
}

// apiResponse is the query API's envelope.
type apiResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Code    int    `json:"code"`
		Message string `json:"msg"`
	} `json:"errors"`
}

// get fetches path from the query API and decodes the envelope's data into out.
func (j *Jaeger) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.queryURL+path, nil)
	if err != nil {
		return fmt.Errorf("testjaeger: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.http.Do(req)
	if err != nil {
		return fmt.Errorf("testjaeger: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("testjaeger: GET %s: reading response: %w", path, err)
	}
	var env apiResponse
	decodeErr := json.Unmarshal(raw, &env)
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: GET %s: HTTP 404", ErrNotFound, path)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strconv.Quote(truncate(string(raw), 512))
		if decodeErr == nil && len(env.Errors) > 0 {
			msg = env.Errors[0].Message
		}
		return fmt.Errorf("testjaeger: GET %s: HTTP %d: %s", path, resp.StatusCode, msg)
	}
	if decodeErr != nil {
		return fmt.Errorf("testjaeger: GET %s: decoding response: %w", path, decodeErr)
	}
	if len(env.Errors) > 0 {
		return fmt.Errorf("testjaeger: GET %s: %s (code %d)", path, env.Errors[0].Message, env.Errors[0].Code)
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("testjaeger: GET %s: decoding data: %w", path, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
