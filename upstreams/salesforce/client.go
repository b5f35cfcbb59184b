package salesforce

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	"github.com/mandate-gw/mandate/upstreams/rest"
)

// APIError is an error answer of the Salesforce REST API: the first element
// of its documented body [{"message":…,"errorCode":…}].
type APIError struct {
	Status     int
	Code       string   // errorCode, e.g. INVALID_SESSION_ID, MALFORMED_QUERY
	Message    string   // sanitised, one line
	Fields     []string // fields, when Salesforce names them (DML errors)
	LimitInfo  string   // Sforce-Limit-Info header (api-usage=n/m)
	RetryAfter time.Duration
	// Retried is true when the refusal came after one fresh token.
	Retried bool
	// version is set on a 404 for a resource that exists in every org
	// (query, search): the org does not serve this API version.
	version string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("salesforce: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// call is one tool call or resource read (rest.Call: its context, token,
// REST plumbing) with the adapter's Salesforce settings.
type call struct {
	*rest.Call
	a *Adapter
}

func (a *Adapter) call(rc *rest.Call) *call { return &call{Call: rc, a: a} }

func (a *Adapter) dataPath(rest string) string {
	return "/services/data/" + a.version + rest
}

// instanceURL is the token's instance_url when it is a plain absolute
// http(s) URL, else "" (the configured URL).
func instanceURL(tok *credentials.Token) string {
	if s := tok.ExtraString("instance_url"); s != "" {
		if u, err := url.Parse(s); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
			u.User == nil && u.RawQuery == "" && u.Fragment == "" {
			return strings.TrimRight(s, "/")
		}
	}
	return ""
}

// get sends GET path?query to the user's instance with the user's token
// (rest.Call.Do: a 401 — INVALID_SESSION_ID — re-exchanges and retries once).
func (c *call) get(path string, query url.Values) ([]byte, error) {
	resp, err := c.Do(http.MethodGet, path, query, nil)
	if err != nil {
		// Only sobjects/{type}/{id} can be missing for this user; a 404
		// anywhere else means the org does not serve the API version
		// (it answers NOT_FOUND for /services/data/vNN.N/… it does not
		// know, REST API Developer Guide, "Status Codes and Error Responses").
		var e *APIError
		if errors.As(err, &e) && e.Status == http.StatusNotFound && !strings.Contains(path, "/sobjects/") {
			e.version = c.a.version
		}
		return nil, err
	}
	return resp.Body, nil
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

func parseAPIError(resp *http.Response, body []byte, retried bool) error {
	e := &APIError{Status: resp.StatusCode, LimitInfo: rest.Sanitize(resp.Header.Get("Sforce-Limit-Info"), 200), Retried: retried, RetryAfter: rest.RetryAfter(resp.Header)}
	var arr []struct {
		Message   string   `json:"message"`
		ErrorCode string   `json:"errorCode"`
		Fields    []string `json:"fields"`
	}
	if json.Unmarshal(body, &arr) == nil && len(arr) > 0 {
		e.Code, e.Message = rest.Sanitize(arr[0].ErrorCode, 100), rest.Sanitize(arr[0].Message, 1000)
		for i, f := range arr[0].Fields {
			if i == 20 {
				break
			}
			e.Fields = append(e.Fields, rest.Sanitize(f, 100))
		}
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
		e.Code = rest.Sanitize(one.ErrorCode+one.Error, 100)
		e.Message = rest.Sanitize(one.Message+one.Description, 1000)
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// who names the platform identity the call ran as.
func who(tok *credentials.Token) string {
	switch {
	case tok == nil || tok.PlatformSubject == "":
		return "your Salesforce user"
	case tok.ServiceAccount:
		return fmt.Sprintf("the service account %q", tok.PlatformSubject)
	default:
		return fmt.Sprintf("Salesforce user %q", tok.PlatformSubject)
	}
}

// classifyAPI maps Salesforce's refusals (*APIError) to what the user sees.
func classifyAPI(c *rest.Call, err error) (rest.Failure, bool) {
	var e *APIError
	if !errors.As(err, &e) {
		return rest.Failure{}, false
	}
	what := e.Code
	if what != "" {
		what += ": "
	}
	what += e.Message
	switch {
	case e.Status == http.StatusUnauthorized:
		return rest.Failure{Code: upstreams.CodeUpstreamUnauthorized, Message: fmt.Sprintf(
			"Salesforce refused the session Mandate obtained for %s, also after obtaining a fresh one (%s). The user may be frozen or deactivated, or the connected app's access revoked; ask your Salesforce administrator.", who(c.Token()), what)}, true
	case e.Code == "REQUEST_LIMIT_EXCEEDED" || e.Status == http.StatusTooManyRequests:
		retry := "retry after the org's rolling 24-hour API allowance frees up"
		if e.RetryAfter > 0 {
			retry = fmt.Sprintf("retry after %d seconds", int(e.RetryAfter.Round(time.Second)/time.Second))
		}
		usage := ""
		if e.LimitInfo != "" {
			usage = " (" + e.LimitInfo + ")"
		}
		return rest.Failure{Code: upstreams.CodeRateLimited, Message: fmt.Sprintf("Salesforce's API request limit is exhausted%s [%s]; this is the platform's limit, not a Mandate fault: %s.", usage, what, retry)}, true
	case e.Status == http.StatusNotFound && e.version != "":
		return rest.Failure{Code: upstreams.CodeUpstreamUnavailable, Message: fmt.Sprintf(
			"Salesforce answered %s for a resource every org has: the org does not serve REST API version %s. Set the upstream's salesforce.api_version to one it serves (GET /services/data/ on the instance lists them; Mandate's default is %s); this is a Mandate configuration problem, not your access.", what, e.version, upstreams.DefaultSalesforceAPIVersion)}, true
	case e.Status == http.StatusNotFound:
		return rest.Failure{Code: mcp.CodeResourceNotFound, Message: fmt.Sprintf(
			"Salesforce has no such record visible to %s (%s). It may not exist, or Salesforce's sharing rules do not share it with this user.%s", who(c.Token()), what, c.ServiceAccountNote())}, true
	case e.Status == http.StatusForbidden || strings.HasPrefix(e.Code, "INSUFFICIENT_ACCESS") || e.Code == "API_DISABLED_FOR_ORG" || e.Code == "API_CURRENTLY_DISABLED":
		return rest.Failure{Code: upstreams.CodeUpstreamUnauthorized, Message: fmt.Sprintf(
			"Salesforce refused this request for %s (%s). This is Salesforce's access control for that user, not a Mandate fault; ask your Salesforce administrator if you need access.%s", who(c.Token()), what, c.ServiceAccountNote())}, true
	case e.Code == "INVALID_TYPE":
		return rest.Failure{Code: upstreams.CodeUpstreamUnauthorized, Message: fmt.Sprintf(
			"Salesforce refused this request for %s (%s). Either the object does not exist or the user's profile has no access to it.%s", who(c.Token()), what, c.ServiceAccountNote())}, true
	case e.Status >= 500:
		return rest.Failure{Code: upstreams.CodeUpstreamUnavailable, Message: fmt.Sprintf("Salesforce is unavailable (HTTP %d: %s); retry later.", e.Status, what)}, true
	default:
		return rest.Failure{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("Salesforce rejected the request (HTTP %d %s).", e.Status, what)}, true
	}
}
