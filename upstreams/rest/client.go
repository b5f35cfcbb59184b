package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// ErrTooLarge is returned by Call.Do when a response exceeds the
// upstream's max_result_bytes; the body is discarded.
var ErrTooLarge = errors.New("response exceeds max_result_bytes")

// TransportError is a failure to talk to the platform at all (connection,
// TLS, a body cut short). Its message never contains the request URL.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return upstreams.DescribeError(e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }

// Platform is what differs between REST platforms. Kind and Name are
// required; the hooks have working zero values.
type Platform struct {
	// Kind is the upstream kind ("salesforce"): it prefixes JSON-RPC error
	// messages ("upstream crm (salesforce): …") and names the debug record
	// of each REST call ("salesforce call").
	Kind string
	// Name is the platform's name in messages for users ("Salesforce").
	Name string
	// Flows names the credential flows that yield a per-user token, for
	// the error of flow none ("jwt_bearer or token_exchange").
	Flows string
	// TooLargeHint ends the message of a response over max_result_bytes
	// ("select fewer fields or add a LIMIT").
	TooLargeHint string
	// InstanceURL returns the base URL for calls made with tok, or "" for
	// the configured url (without its trailing slash). Nil: always the
	// configured url.
	InstanceURL func(tok *credentials.Token) string
	// ParseError turns a non-2xx answer into the platform's error value;
	// retried is true when it came after one fresh token. Nil: a generic
	// *StatusError.
	ParseError func(resp *http.Response, body []byte, retried bool) error
	// ClassifyAPI maps the platform's error values (those ParseError
	// returns) to what the caller sees; ok is false for other errors.
	ClassifyAPI func(c *Call, err error) (f Failure, ok bool)
	// LogAttrs returns the key-value pairs that describe a request in the
	// debug record of each call (never a query text, id or record
	// content).
	LogAttrs func(method, path string) []any
}

// StatusError is the error of a non-2xx answer when Platform.ParseError is
// nil.
type StatusError struct {
	Status  int
	Retried bool
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// Deps are what a Client needs from the process; the same fields as the
// adapters' Deps.
type Deps struct {
	// Credentials obtains the calling user's platform token. Required.
	Credentials credentials.Source
	// HTTPClient sends the requests. Nil means a client over a clone of
	// http.DefaultTransport. Redirects are never followed (the Client
	// copies it and sets CheckRedirect).
	HTTPClient *http.Client
	// Logger receives one debug record per REST call (never a token). Nil
	// discards.
	Logger *slog.Logger
}

// Client is the plumbing of one native REST upstream: the user's platform
// token on every request, one retry with a fresh token after a 401,
// responses bounded by max_result_bytes, calls bounded by the upstream's
// timeout, errors mapped to the JSON-RPC codes of package upstreams, the
// credential recorded in callinfo (by credentials.Authorize). It also opens
// the upstream's Sessions (Open). Safe for concurrent use.
type Client struct {
	name     string
	p        Platform
	base     string // cfg.URL without trailing slash
	maxBytes int64
	timeout  time.Duration
	src      credentials.Source
	http     *http.Client
	log      *slog.Logger
	noToken  error
	deadline error // cancellation cause of a call past the timeout
	closed   atomic.Bool
}

// ParseInstanceURL parses the configured URL of a native upstream: an
// absolute http(s) URL with a host and no query or fragment. ok is false
// when raw is not one; the kinds' Validate hooks word the message.
func ParseInstanceURL(raw string) (u *url.URL, ok bool) {
	u, err := url.Parse(raw)
	return u, err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.RawQuery == "" && u.Fragment == ""
}

// New validates cfg as an upstream of kind p.Kind (cfg's zero fields take
// their defaults, upstreams.Config.WithDefaults) and builds its Client.
// Every problem is reported, joined.
func New(cfg upstreams.Config, p Platform, deps Deps) (*Client, error) {
	cfg = cfg.WithDefaults()
	path := "upstreams[" + cfg.Name + "]"
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, fmt.Errorf("%s adapter: upstream name is empty", p.Kind))
	}
	if err := cfg.WithKind(p.Kind).ValidateKind(path); err != nil {
		errs = append(errs, err)
	}
	if cfg.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: must be positive", path))
	}
	if deps.Credentials == nil {
		errs = append(errs, fmt.Errorf("%s adapter %s: Deps.Credentials is required", p.Kind, cfg.Name))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c := &Client{
		name:     cfg.Name,
		p:        p,
		base:     strings.TrimRight(cfg.URL, "/"),
		maxBytes: cfg.MaxResultBytes,
		timeout:  cfg.Timeout,
		src:      deps.Credentials,
		log:      deps.Logger,
		noToken:  fmt.Errorf("the upstream's credentials flow yields no token (flow none); %s needs a per-user token, configure flow %s", p.Name, p.Flows),
		deadline: errors.New(p.Kind + " upstream timeout"),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if deps.HTTPClient != nil {
		h := *deps.HTTPClient
		c.http = &h
	} else {
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// Name is the upstream's configured name.
func (cl *Client) Name() string { return cl.name }

// Close marks the upstream closed: Open and every session's calls fail
// after it with CodeSessionClosed. Idempotent.
func (cl *Client) Close() error {
	cl.closed.Store(true)
	return nil
}

// Timeout is the upstream's per-call timeout.
func (cl *Client) Timeout() time.Duration { return cl.timeout }

// MaxResultBytes is the upstream's response bound.
func (cl *Client) MaxResultBytes() int64 { return cl.maxBytes }

// Errorf returns a *jsonrpc.Error whose message names the upstream and its
// kind: "upstream crm (salesforce): …".
func (cl *Client) Errorf(code int64, format string, args ...any) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: "upstream " + cl.name + " (" + cl.p.Kind + "): " + fmt.Sprintf(format, args...)}
}

// NewCall starts one tool call or resource read: parent bounded by the
// upstream's timeout. Call cancel when it is done.
func (cl *Client) NewCall(parent context.Context) (*Call, context.CancelFunc) {
	ctx, cancel := context.WithTimeoutCause(parent, cl.timeout, cl.deadline)
	return &Call{cl: cl, parent: parent, ctx: ctx}, cancel
}

// Call is one tool call or resource read: its context (with the
// upstream's timeout) and the token it used last. Not safe for concurrent
// use.
type Call struct {
	cl     *Client
	parent context.Context
	ctx    context.Context
	tok    *credentials.Token
}

// Context is the call's context (the caller's, bounded by the timeout).
func (c *Call) Context() context.Context { return c.ctx }

// Token is the platform token of the call's last request, or nil before
// the first.
func (c *Call) Token() *credentials.Token { return c.tok }

// Client is the call's Client.
func (c *Call) Client() *Client { return c.cl }

// Errorf is Client.Errorf.
func (c *Call) Errorf(code int64, format string, args ...any) *jsonrpc.Error {
	return c.cl.Errorf(code, format, args...)
}

// Response is a successful (2xx) answer.
type Response struct {
	Header http.Header
	Body   []byte
}

// Do sends method base+path?query as the caller, with body (if not nil)
// as JSON. On a 401 it invalidates the token, obtains a fresh one and
// retries once (a 401 means nothing was executed, so retrying a POST or
// PATCH is safe). Errors: the Source's (*credentials.Error), ErrTooLarge,
// *TransportError, or what Platform.ParseError returns for a non-2xx
// answer.
func (c *Call) Do(method, path string, query url.Values, body any) (*Response, error) {
	cl := c.cl
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		res, err := cl.src.Token(c.ctx)
		if err != nil {
			return nil, err
		}
		if res.Token == nil {
			return nil, cl.noToken
		}
		c.tok = res.Token
		u := cl.base
		if cl.p.InstanceURL != nil {
			if s := cl.p.InstanceURL(res.Token); s != "" {
				u = s
			}
		}
		u += path
		if len(query) > 0 {
			u += "?" + query.Encode()
		}
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(c.ctx, method, u, rd)
		if err != nil {
			return nil, fmt.Errorf("building request: %w", err)
		}
		credentials.Authorize(req, res) // the header, and the credential in callinfo
		req.Header.Set("Accept", "application/json")
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := cl.http.Do(req)
		if err != nil {
			return nil, &TransportError{Err: err}
		}
		data, rerr := readLimited(resp.Body, cl.maxBytes)
		resp.Body.Close()
		attrs := []any{"upstream", cl.name}
		if cl.p.LogAttrs != nil {
			attrs = append(attrs, cl.p.LogAttrs(method, path)...)
		}
		attrs = append(attrs, "status", resp.StatusCode, "platform_subject", res.Token.PlatformSubject, "duration", time.Since(start))
		cl.log.Debug(cl.p.Kind+" call", attrs...)
		if rerr != nil {
			if errors.Is(rerr, ErrTooLarge) {
				return nil, rerr
			}
			return nil, &TransportError{Err: rerr}
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			// The session expired or was revoked: drop the cached token,
			// exchange again, retry once.
			cl.src.Invalidate(c.ctx, res.Token)
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			if cl.p.ParseError == nil {
				return nil, &StatusError{Status: resp.StatusCode, Retried: attempt > 0}
			}
			return nil, cl.p.ParseError(resp, data, attempt > 0)
		}
		return &Response{Header: resp.Header, Body: data}, nil
	}
}

// DecodeJSON decodes a response body into v (numbers as json.Number); the
// error says the platform answered something unexpected.
func (c *Call) DecodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s answered with a body that is not the expected JSON: %v", c.cl.p.Name, err)
	}
	return nil
}

func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}

// Failure is a classified error: what the user is told, and the JSON-RPC
// code a resource read reports it with.
type Failure struct {
	Code    int64
	Message string
}

// ServiceAccountNote is a sentence (with a leading space) saying the call
// ran as a service account, or "" when it ran as the user.
func (c *Call) ServiceAccountNote() string {
	if c.tok != nil && c.tok.ServiceAccount {
		return " This upstream's credentials use a service account (flow client_credentials), so " + c.cl.p.Name + " checked that account's access, not yours."
	}
	return ""
}

// Classify maps err to what the caller sees. A non-nil error return means
// the caller's own context ended: the call is abandoned, not failed.
func (c *Call) Classify(err error) (Failure, error) {
	cl := c.cl
	if perr := c.parent.Err(); perr != nil {
		return Failure{}, fmt.Errorf("upstream %s: %w", cl.name, context.Cause(c.parent))
	}
	if errors.Is(context.Cause(c.ctx), cl.deadline) {
		return Failure{upstreams.CodeUpstreamTimeout, fmt.Sprintf("%s did not answer within %s; retry, or narrow the request.", cl.p.Name, cl.timeout)}, nil
	}
	var ce *credentials.Error
	if errors.As(err, &ce) {
		return Failure{upstreams.CodeCredentialsUnavailable, ce.Error()}, nil
	}
	if errors.Is(err, ErrTooLarge) {
		return Failure{upstreams.CodeResultTooLarge, fmt.Sprintf("%s's response exceeded the upstream's max_result_bytes (%d bytes) and was discarded; %s.", cl.p.Name, cl.maxBytes, cl.p.TooLargeHint)}, nil
	}
	if cl.p.ClassifyAPI != nil {
		if f, ok := cl.p.ClassifyAPI(c, err); ok {
			return f, nil
		}
	}
	var te *TransportError
	if errors.As(err, &te) {
		return Failure{upstreams.CodeUpstreamUnavailable, "could not reach " + cl.p.Name + ": " + te.Error()}, nil
	}
	if errors.Is(err, cl.noToken) {
		return Failure{upstreams.CodeCredentialsUnavailable, err.Error()}, nil
	}
	var re *jsonrpc.Error
	if errors.As(err, &re) {
		return Failure{re.Code, re.Message}, nil
	}
	return Failure{upstreams.CodeUpstreamUnavailable, cl.p.Name + " call failed: " + err.Error()}, nil
}

// ToolFailure turns err into a tool error result (or a Go error when the
// caller's context ended, or when the user must connect their account
// first: see RPCFailure).
func (c *Call) ToolFailure(err error) (*mcp.CallToolResult, error) {
	f, cerr := c.Classify(err)
	if cerr != nil {
		return nil, cerr
	}
	if cre := (*credentials.ConsentRequiredError)(nil); errors.As(err, &cre) {
		return nil, c.RPCFailure(err)
	}
	return ToolError(f.Message), nil
}

// RPCFailure turns err into a *jsonrpc.Error (for resources/read), or the
// Go error of Classify when the caller's context ended. When the user must
// connect their account first (a *credentials.ConsentRequiredError), the
// *jsonrpc.Error still wraps that error (upstreams.WithCause): the gateway
// answers it with a URL elicitation.
func (c *Call) RPCFailure(err error) error {
	f, cerr := c.Classify(err)
	if cerr != nil {
		return cerr
	}
	rerr := c.Errorf(f.Code, "%s", f.Message)
	if cre := (*credentials.ConsentRequiredError)(nil); errors.As(err, &cre) {
		return upstreams.WithCause(rerr, err)
	}
	return rerr
}

// JSONResource is a resources/read result holding v as indented JSON.
func (c *Call) JSONResource(uri string, v any) (*mcp.ReadResourceResult, error) {
	text, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, c.Errorf(jsonrpc.CodeInternalError, "encoding resource: %v", err)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(text)}}}, nil
}
