package salesforce

import (
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

// errTimeout is the cancellation cause of a call that ran past the
// upstream's timeout.
var errTimeout = errors.New("salesforce upstream timeout")

// errTooLarge: a response exceeded max_result_bytes.
var errTooLarge = errors.New("response exceeds max_result_bytes")

// errNoToken: the credentials source is flow none.
var errNoToken = errors.New("the upstream's credentials flow yields no token (flow none); Salesforce needs a per-user token, configure flow jwt_bearer")

// APIError is an error answer of the Salesforce REST API: the first element
// of its documented body [{"message":…,"errorCode":…}].
type APIError struct {
	Status     int
	Code       string // errorCode, e.g. INVALID_SESSION_ID, MALFORMED_QUERY
	Message    string // sanitised, one line
	LimitInfo  string // Sforce-Limit-Info header (api-usage=n/m)
	RetryAfter time.Duration
	// Retried is true when the refusal came after one fresh token.
	Retried bool
}

func (e *APIError) Error() string {
	return fmt.Sprintf("salesforce: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// transportError is a failure to talk to Salesforce at all.
type transportError struct{ err error }

func (e *transportError) Error() string { return describe(e.err) }
func (e *transportError) Unwrap() error { return e.err }

// call is one tool call or resource read: its context (with the adapter's
// timeout) and the token it used last.
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

func (a *Adapter) dataPath(rest string) string {
	return "/services/data/" + a.version + rest
}

// instanceURL is the token's instance_url when it is a plain absolute
// http(s) URL, else the configured URL.
func (a *Adapter) instanceURL(tok *credentials.Token) string {
	if s := tok.ExtraString("instance_url"); s != "" {
		if u, err := url.Parse(s); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
			u.User == nil && u.RawQuery == "" && u.Fragment == "" {
			return strings.TrimRight(s, "/")
		}
	}
	return a.fallback
}

// get sends GET path?query to the user's instance with the user's token.
// On a 401 it invalidates the token, obtains a fresh one and retries once.
func (c *call) get(path string, query url.Values) ([]byte, error) {
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
		u := c.a.instanceURL(res.Token) + path
		if len(query) > 0 {
			u += "?" + query.Encode()
		}
		req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("building request: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+res.Token.AccessToken.Reveal())
		req.Header.Set("Accept", "application/json")
		start := time.Now()
		resp, err := c.a.client.Do(req)
		if err != nil {
			return nil, &transportError{err: err}
		}
		body, rerr := readLimited(resp.Body, c.a.maxBytes)
		resp.Body.Close()
		c.a.log.Debug("salesforce call", "upstream", c.a.name, "path", pathOnly(path), "status", resp.StatusCode,
			"platform_subject", res.Token.PlatformSubject, "duration", time.Since(start))
		if rerr != nil {
			if errors.Is(rerr, errTooLarge) {
				return nil, rerr
			}
			return nil, &transportError{err: rerr}
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			// INVALID_SESSION_ID: the session expired or was revoked. Drop
			// the cached token, exchange again, retry once.
			c.a.src.Invalidate(c.ctx, res.Token)
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, parseAPIError(resp, body, attempt > 0)
		}
		return body, nil
	}
}

// pathOnly drops ids from a REST path for logs.
func pathOnly(p string) string {
	if i := strings.Index(p, "/sobjects/"); i >= 0 {
		return p[:i] + "/sobjects/…"
	}
	if i := strings.Index(p, "/query/"); i >= 0 {
		return p[:i] + "/query/…"
	}
	return p
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
	e := &APIError{Status: resp.StatusCode, LimitInfo: sanitize(resp.Header.Get("Sforce-Limit-Info"), 200), Retried: retried}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	var arr []struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(body, &arr) == nil && len(arr) > 0 {
		e.Code, e.Message = sanitize(arr[0].ErrorCode, 100), sanitize(arr[0].Message, 1000)
		return e
	}
	// Some endpoints answer a single object, or OAuth-style errors.
	var one struct {
		Message     string `json:"message"`
		ErrorCode   string `json:"errorCode"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &one) == nil {
		e.Code = sanitize(one.ErrorCode+one.Error, 100)
		e.Message = sanitize(one.Message+one.Description, 1000)
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// sanitize makes one printable line of an upstream string, cut to n bytes.
func sanitize(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return clip(strings.TrimSpace(s), n)
}

// describe renders a transport error without URLs (they carry the query).
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

// failure is a classified error: what the user is told and how a resource
// read reports it.
type failure struct {
	code int64 // JSON-RPC code for resources/read
	msg  string
}

// who names the platform identity the call ran as.
func (c *call) who() string {
	switch {
	case c.tok == nil || c.tok.PlatformSubject == "":
		return "your Salesforce user"
	case c.tok.ServiceAccount:
		return fmt.Sprintf("the service account %q", c.tok.PlatformSubject)
	default:
		return fmt.Sprintf("Salesforce user %q", c.tok.PlatformSubject)
	}
}

func (c *call) serviceAccountNote() string {
	if c.tok != nil && c.tok.ServiceAccount {
		return " This upstream's credentials use a service account (flow client_credentials), so Salesforce checked that account's access, not yours."
	}
	return ""
}

// classify maps err to what the caller sees. A non-nil error return means
// the caller's own context ended: the call is abandoned, not failed.
func (c *call) classify(err error) (failure, error) {
	if perr := c.parent.Err(); perr != nil {
		return failure{}, fmt.Errorf("upstream %s: %w", c.a.name, context.Cause(c.parent))
	}
	if errors.Is(context.Cause(c.ctx), errTimeout) {
		return failure{CodeUpstreamTimeout, fmt.Sprintf("Salesforce did not answer within %s; retry, or narrow the request.", c.a.timeout)}, nil
	}
	var ce *credentials.Error
	if errors.As(err, &ce) {
		return failure{CodeCredentialsUnavailable, ce.Error()}, nil
	}
	if errors.Is(err, errTooLarge) {
		return failure{CodeResultTooLarge, fmt.Sprintf("Salesforce's response exceeded the upstream's max_result_bytes (%d bytes) and was discarded; select fewer fields or add a LIMIT.", c.a.maxBytes)}, nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return c.classifyAPI(ae), nil
	}
	var te *transportError
	if errors.As(err, &te) {
		return failure{CodeUpstreamUnavailable, "could not reach Salesforce: " + te.Error()}, nil
	}
	if errors.Is(err, errNoToken) {
		return failure{CodeCredentialsUnavailable, err.Error()}, nil
	}
	var re *jsonrpc.Error
	if errors.As(err, &re) {
		return failure{re.Code, re.Message}, nil
	}
	return failure{CodeUpstreamUnavailable, "Salesforce call failed: " + err.Error()}, nil
}

func (c *call) classifyAPI(e *APIError) failure {
	what := e.Code
	if what != "" {
		what += ": "
	}
	what += e.Message
	switch {
	case e.Status == http.StatusUnauthorized:
		return failure{CodeUpstreamUnauthorized, fmt.Sprintf(
			"Salesforce refused the session Mandate obtained for %s, also after obtaining a fresh one (%s). The user may be frozen or deactivated, or the connected app's access revoked; ask your Salesforce administrator.", c.who(), what)}
	case e.Code == "REQUEST_LIMIT_EXCEEDED" || e.Status == http.StatusTooManyRequests:
		retry := "retry after the org's rolling 24-hour API allowance frees up"
		if e.RetryAfter > 0 {
			retry = fmt.Sprintf("retry after %d seconds", int(e.RetryAfter.Round(time.Second)/time.Second))
		}
		usage := ""
		if e.LimitInfo != "" {
			usage = " (" + e.LimitInfo + ")"
		}
		return failure{CodeRateLimited, fmt.Sprintf("Salesforce's API request limit is exhausted%s [%s]; this is the platform's limit, not a Mandate fault: %s.", usage, what, retry)}
	case e.Status == http.StatusNotFound:
		return failure{mcp.CodeResourceNotFound, fmt.Sprintf(
			"Salesforce has no such record visible to %s (%s). It may not exist, or Salesforce's sharing rules do not share it with this user.%s", c.who(), what, c.serviceAccountNote())}
	case e.Status == http.StatusForbidden || strings.HasPrefix(e.Code, "INSUFFICIENT_ACCESS") || e.Code == "API_DISABLED_FOR_ORG" || e.Code == "API_CURRENTLY_DISABLED":
		return failure{CodeUpstreamUnauthorized, fmt.Sprintf(
			"Salesforce refused this request for %s (%s). This is Salesforce's access control for that user, not a Mandate fault; ask your Salesforce administrator if you need access.%s", c.who(), what, c.serviceAccountNote())}
	case e.Code == "INVALID_TYPE":
		return failure{CodeUpstreamUnauthorized, fmt.Sprintf(
			"Salesforce refused this request for %s (%s). Either the object does not exist or the user's profile has no access to it.%s", c.who(), what, c.serviceAccountNote())}
	case e.Status >= 500:
		return failure{CodeUpstreamUnavailable, fmt.Sprintf("Salesforce is unavailable (HTTP %d: %s); retry later.", e.Status, what)}
	default:
		return failure{jsonrpc.CodeInvalidParams, fmt.Sprintf("Salesforce rejected the request (HTTP %d %s).", e.Status, what)}
	}
}

// toolFailure turns err into a tool error result (or a Go error when the
// caller's context ended).
func (c *call) toolFailure(err error) (*mcp.CallToolResult, error) {
	f, cerr := c.classify(err)
	if cerr != nil {
		return nil, cerr
	}
	return toolError(f.msg), nil
}

// rpcFailure turns err into a *jsonrpc.Error for resources/read.
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
