package servicenow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	"github.com/mandate-gw/mandate/upstreams/rest"
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

// call is one tool call or resource read (rest.Call: its context, token,
// REST plumbing) with the adapter's ServiceNow settings.
type call struct {
	*rest.Call
	a *Adapter
}

func (a *Adapter) call(rc *rest.Call) *call { return &call{Call: rc, a: a} }

// tableOf returns the table of a Table API path, for logs.
func tableOf(p string) string {
	t, _, _ := strings.Cut(strings.TrimPrefix(p, "/api/now/table/"), "/")
	return t
}

func parseAPIError(resp *http.Response, body []byte, retried bool) error {
	e := &APIError{Status: resp.StatusCode, Retried: retried, RetryAfter: retryAfter(resp.Header, time.Now())}
	var b struct {
		Error struct {
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.Message = rest.Sanitize(b.Error.Message, 500)
		if d, ok := b.Error.Detail.(string); ok {
			e.Detail = rest.Sanitize(d, 1000)
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// retryAfter is how long a 429 asks to wait: Retry-After, else the time
// left until X-RateLimit-Reset (a UNIX time). ServiceNow docs, "Inbound
// REST API rate limiting": requests a rate limit rule matches carry
// X-RateLimit-Limit, X-RateLimit-Reset and X-RateLimit-Rule; a request over
// the limit answers 429 Too Many Requests with Retry-After (seconds).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if d := rest.RetryAfter(h); d > 0 {
		return d
	}
	if reset, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil && reset > now.Unix() {
		return min(time.Unix(reset, 0).Sub(now), 24*time.Hour)
	}
	return 0
}

// rpcFailure is rest.Call.RPCFailure plus, for ServiceNow's 429, the wait
// as JSON-RPC error data {"retryAfterSeconds":N} — the same data Mandate's
// own per-user limit sends — so a client can back off without parsing the
// message.
func (c *call) rpcFailure(err error) error {
	rerr := c.RPCFailure(err)
	var e *APIError
	var re *jsonrpc.Error
	if errors.As(err, &e) && e.Status == http.StatusTooManyRequests && e.RetryAfter > 0 &&
		errors.As(rerr, &re) && re.Code == upstreams.CodeRateLimited {
		re.Data = json.RawMessage(fmt.Sprintf(`{"retryAfterSeconds":%d}`, retrySeconds(e.RetryAfter)))
	}
	return rerr
}

func retrySeconds(d time.Duration) int { return max(1, int(d.Round(time.Second)/time.Second)) }

// who names the platform identity the call ran as.
func who(tok *credentials.Token) string {
	switch {
	case tok == nil || tok.PlatformSubject == "":
		return "your ServiceNow account"
	case tok.ServiceAccount:
		return fmt.Sprintf("the service account %q", tok.PlatformSubject)
	case tok.Flow == credentials.FlowJWTBearer:
		return fmt.Sprintf("ServiceNow user %q", tok.PlatformSubject)
	default:
		return fmt.Sprintf("your ServiceNow account (token subject %q)", tok.PlatformSubject)
	}
}

// classifyAPI maps ServiceNow's refusals (*APIError) to what the user sees.
func classifyAPI(c *rest.Call, err error) (rest.Failure, bool) {
	var e *APIError
	if !errors.As(err, &e) {
		return rest.Failure{}, false
	}
	what := e.what()
	switch {
	case e.Status == http.StatusUnauthorized:
		return rest.Failure{Code: upstreams.CodeUpstreamUnauthorized, Message: fmt.Sprintf(
			"ServiceNow did not accept the credentials Mandate obtained for %s, also after obtaining fresh ones (%s). The account may not exist in ServiceNow or be inactive, or the instance does not trust this token; ask your ServiceNow administrator.", who(c.Token()), what)}, true
	case e.Status == http.StatusTooManyRequests:
		retry := "retry later"
		if e.RetryAfter > 0 {
			retry = fmt.Sprintf("retry after %d seconds", retrySeconds(e.RetryAfter))
		}
		return rest.Failure{Code: upstreams.CodeRateLimited, Message: fmt.Sprintf("ServiceNow's rate limit for %s is exhausted (%s); this is the platform's limit, not a Mandate fault: %s.", who(c.Token()), what, retry)}, true
	case e.Status == http.StatusNotFound:
		return rest.Failure{Code: mcp.CodeResourceNotFound, Message: fmt.Sprintf(
			"ServiceNow has no such record that %s can read (%s). It may not exist, or ServiceNow's ACLs hide it from this user.%s", who(c.Token()), what, c.ServiceAccountNote())}, true
	case e.Status == http.StatusForbidden:
		return rest.Failure{Code: upstreams.CodeUpstreamUnauthorized, Message: fmt.Sprintf(
			"ServiceNow refused this request for %s (%s). This is ServiceNow's access control for that user, not a Mandate fault; ask your ServiceNow administrator if you need access.%s", who(c.Token()), what, c.ServiceAccountNote())}, true
	case e.Status >= 500:
		return rest.Failure{Code: upstreams.CodeUpstreamUnavailable, Message: fmt.Sprintf("ServiceNow is unavailable (HTTP %d: %s); retry later.", e.Status, what)}, true
	default:
		return rest.Failure{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("ServiceNow rejected the request (HTTP %d: %s).", e.Status, what)}, true
	}
}
