package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

var (
	errTimeout  = errors.New("servicenow upstream timeout")
	errTooLarge = errors.New("response exceeds max_result_bytes")
	errNoToken  = errors.New("the upstream's credentials flow yields no token (flow none); ServiceNow needs a per-user token, configure flow jwt_bearer or token_exchange")
)

// APIError is an error answer of the ServiceNow REST API, from its
// documented body {"error":{"message":…,"detail":…},"status":"failure"}.
type APIError struct {
	Status     int
	Message    string
	Detail     string
	RetryAfter time.Duration
	// Retried is true when the refusal came after one fresh token.
	Retried bool
}

func (e *APIError) Error() string {
	return fmt.Sprintf("servicenow: HTTP %d: %s", e.Status, e.what())
}

func (e *APIError) what() string {
	if e.Detail == "" {
		return e.Message
	}
	return e.Message + ": " + e.Detail
}

type transportError struct{ err error }

func (e *transportError) Error() string { return describe(e.err) }
func (e *transportError) Unwrap() error { return e.err }

// call is one tool call or resource read.
type call struct {
	a      *Adapter
	parent context.Context
	ctx    context.Context
	tok    *credentials.Token
}

func (a *Adapter) newCall(parent context.Context) (*call, context.CancelFunc) {
	ctx, cancel := context.WithTimeoutCause(parent, a.timeout, errTimeout)
	return &call{a: a, parent: parent, ctx: ctx}, cancel
}

// response is a successful answer.
type response struct {
	header http.Header
	body   []byte
}

// do sends one Table API request as the caller. On a 401 it invalidates the
// token, obtains a fresh one and retries once (a 401 means nothing was
// executed, so retrying a POST or PATCH is safe).
func (c *call) do(method, path string, query url.Values, body any) (*response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		res, err := c.a.src.Token(c.ctx)
		if err != nil {
			return nil, err
		}
		if res.Token == nil {
			return nil, errNoToken
		}
		callinfo.FromContext(c.ctx).Credential(res.Token.Flow, res.Token.PlatformSubject, res.Token.ServiceAccount, res.CacheHit)
		c.tok = res.Token
		u := c.a.base + path
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
		req.Header.Set("Authorization", "Bearer "+res.Token.AccessToken.Reveal())
		req.Header.Set("Accept", "application/json")
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := c.a.client.Do(req)
		if err != nil {
			return nil, &transportError{err: err}
		}
		data, rerr := readLimited(resp.Body, c.a.maxBytes)
		resp.Body.Close()
		c.a.log.Debug("servicenow call", "upstream", c.a.name, "method", method, "table", tableOf(path), "status", resp.StatusCode,
			"platform_subject", res.Token.PlatformSubject, "duration", time.Since(start))
		if rerr != nil {
			if errors.Is(rerr, errTooLarge) {
				return nil, rerr
			}
			return nil, &transportError{err: rerr}
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			c.a.src.Invalidate(c.ctx, res.Token)
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, parseAPIError(resp, data, attempt > 0)
		}
		return &response{header: resp.Header, body: data}, nil
	}
}

// tableOf returns the table of a Table API path, for logs.
func tableOf(p string) string {
	t, _, _ := strings.Cut(strings.TrimPrefix(p, "/api/now/table/"), "/")
	return t
}

func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errTooLarge
	}
	return b, nil
}

func parseAPIError(resp *http.Response, body []byte, retried bool) *APIError {
	e := &APIError{Status: resp.StatusCode, Retried: retried}
	if s := strings.TrimSpace(resp.Header.Get("Retry-After")); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	var b struct {
		Error struct {
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.Message = sanitize(b.Error.Message, 500)
		if d, ok := b.Error.Detail.(string); ok {
			e.Detail = sanitize(d, 1000)
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

func sanitize(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return clip(strings.TrimSpace(s), n)
}

func describe(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected EOF (connection closed mid-response)"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

type failure struct {
	code int64 // JSON-RPC code for resources/read
	msg  string
}

// who names the platform identity the call ran as.
func (c *call) who() string {
	switch {
	case c.tok == nil || c.tok.PlatformSubject == "":
		return "your ServiceNow account"
	case c.tok.ServiceAccount:
		return fmt.Sprintf("the service account %q", c.tok.PlatformSubject)
	case c.tok.Flow == credentials.FlowJWTBearer:
		return fmt.Sprintf("ServiceNow user %q", c.tok.PlatformSubject)
	default:
		return fmt.Sprintf("your ServiceNow account (token subject %q)", c.tok.PlatformSubject)
	}
}

func (c *call) serviceAccountNote() string {
	if c.tok != nil && c.tok.ServiceAccount {
		return " This upstream's credentials use a service account (flow client_credentials), so ServiceNow checked that account's access, not yours."
	}
	return ""
}

// classify maps err to what the caller sees; a non-nil error return means
// the caller's own context ended.
func (c *call) classify(err error) (failure, error) {
	if perr := c.parent.Err(); perr != nil {
		return failure{}, fmt.Errorf("upstream %s: %w", c.a.name, context.Cause(c.parent))
	}
	if errors.Is(context.Cause(c.ctx), errTimeout) {
		return failure{CodeUpstreamTimeout, fmt.Sprintf("ServiceNow did not answer within %s; retry, or narrow the request.", c.a.timeout)}, nil
	}
	var ce *credentials.Error
	if errors.As(err, &ce) {
		return failure{CodeCredentialsUnavailable, ce.Error()}, nil
	}
	if errors.Is(err, errTooLarge) {
		return failure{CodeResultTooLarge, fmt.Sprintf("ServiceNow's response exceeded the upstream's max_result_bytes (%d bytes) and was discarded; request fewer fields or a smaller limit.", c.a.maxBytes)}, nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return c.classifyAPI(ae), nil
	}
	var te *transportError
	if errors.As(err, &te) {
		return failure{CodeUpstreamUnavailable, "could not reach ServiceNow: " + te.Error()}, nil
	}
	if errors.Is(err, errNoToken) {
		return failure{CodeCredentialsUnavailable, err.Error()}, nil
	}
	var re *jsonrpc.Error
	if errors.As(err, &re) {
		return failure{re.Code, re.Message}, nil
	}
	return failure{CodeUpstreamUnavailable, "ServiceNow call failed: " + err.Error()}, nil
}

func (c *call) classifyAPI(e *APIError) failure {
	what := e.what()
	switch {
	case e.Status == http.StatusUnauthorized:
		return failure{CodeUpstreamUnauthorized, fmt.Sprintf(
			"ServiceNow did not accept the credentials Mandate obtained for %s, also after obtaining fresh ones (%s). The account may not exist in ServiceNow or be inactive, or the instance does not trust this token; ask your ServiceNow administrator.", c.who(), what)}
	case e.Status == http.StatusTooManyRequests:
		retry := "retry later"
		if e.RetryAfter > 0 {
			retry = fmt.Sprintf("retry after %d seconds", int(e.RetryAfter.Round(time.Second)/time.Second))
		}
		return failure{CodeRateLimited, fmt.Sprintf("ServiceNow's rate limit for %s is exhausted (%s); this is the platform's limit, not a Mandate fault: %s.", c.who(), what, retry)}
	case e.Status == http.StatusNotFound:
		return failure{mcp.CodeResourceNotFound, fmt.Sprintf(
			"ServiceNow has no such record that %s can read (%s). It may not exist, or ServiceNow's ACLs hide it from this user.%s", c.who(), what, c.serviceAccountNote())}
	case e.Status == http.StatusForbidden:
		return failure{CodeUpstreamUnauthorized, fmt.Sprintf(
			"ServiceNow refused this request for %s (%s). This is ServiceNow's access control for that user, not a Mandate fault; ask your ServiceNow administrator if you need access.%s", c.who(), what, c.serviceAccountNote())}
	case e.Status >= 500:
		return failure{CodeUpstreamUnavailable, fmt.Sprintf("ServiceNow is unavailable (HTTP %d: %s); retry later.", e.Status, what)}
	default:
		return failure{jsonrpc.CodeInvalidParams, fmt.Sprintf("ServiceNow rejected the request (HTTP %d: %s).", e.Status, what)}
	}
}

func (c *call) toolFailure(err error) (*mcp.CallToolResult, error) {
	f, cerr := c.classify(err)
	if cerr != nil {
		return nil, cerr
	}
	return toolError(f.msg), nil
}

func (c *call) rpcFailure(err error) error {
	f, cerr := c.classify(err)
	if cerr != nil {
		return cerr
	}
	return c.a.rpcError(f.code, "%s", f.msg)
}

func toolError(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}
