package credentials

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mandate-gw/mandate/internal/errtext"
	"github.com/mandate-gw/mandate/internal/secret"
)

// Grant type URNs.
const (
	grantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	grantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	grantClientCredentials = "client_credentials"
	clientAssertionType    = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// maxResponse bounds what is read from a token endpoint.
const maxResponse = 1 << 20

// endpoint posts token requests to one token URL with one client's
// authentication.
type endpoint struct {
	url      string
	clientID string
	auth     string // client_secret_basic | client_secret_post | private_key_jwt | "" (none)
	secret   secret.String
	signer   *assertionSigner // for private_key_jwt
	client   *http.Client
	now      func() time.Time
}

// post sends form to the token endpoint and returns the parsed success
// response or an *Error (Upstream/Flow left for the caller to fill).
func (e *endpoint) post(ctx context.Context, form url.Values) (*tokenResponse, error) {
	req, err := e.request(ctx, form)
	if err != nil {
		return nil, &Error{Err: err}
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, &Error{Err: redactURLError(err), Retryable: ctx.Err() == nil}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, &Error{Status: resp.StatusCode, Err: fmt.Errorf("reading token response: %w", err), Retryable: true}
	}
	if len(body) > maxResponse {
		return nil, &Error{Status: resp.StatusCode, Err: errors.New("token response larger than 1 MiB")}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Scrub before parsing, so truncation cannot leave part of a token.
		body = []byte(scrub(string(body), form, e.secret.Reveal()))
		return nil, parseErrorResponse(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Location"), body)
	}
	tr, err := parseTokenResponse(body, e.now())
	if err != nil {
		return nil, &Error{Status: resp.StatusCode, Err: err}
	}
	return tr, nil
}

func (e *endpoint) request(ctx context.Context, form url.Values) (*http.Request, error) {
	var basic bool
	switch e.auth {
	case AuthClientSecretBasic:
		basic = true
	case AuthClientSecretPost:
		form.Set("client_id", e.clientID)
		form.Set("client_secret", e.secret.Reveal())
	case AuthPrivateKeyJWT:
		a, err := e.signer.sign(e.clientID, e.clientID, e.url, "", e.now())
		if err != nil {
			return nil, fmt.Errorf("signing client assertion: %w", err)
		}
		form.Set("client_id", e.clientID)
		form.Set("client_assertion_type", clientAssertionType)
		form.Set("client_assertion", a)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 §2.3.1: form-urlencode id and secret before base64.
		req.SetBasicAuth(url.QueryEscape(e.clientID), url.QueryEscape(e.secret.Reveal()))
	}
	return req, nil
}

// redactURLError drops the URL (its query never holds secrets here, but
// be safe) and the internal address from the cause: the message reaches
// users. The cause stays in the chain for errors.Is.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &causeError{msg: ue.Op + " token endpoint: " + errtext.Transport(ue.Err), err: ue.Err}
	}
	return err
}

// causeError is an error with its own message that still unwraps to its cause.
type causeError struct {
	msg string
	err error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.err }

// tokenResponse is a parsed RFC 6749 §5.1 / RFC 8693 §2.2.1 response.
type tokenResponse struct {
	AccessToken     string
	TokenType       string
	IssuedTokenType string
	Scope           string
	Expiry          time.Time
	Extra           map[string]any
	// RefreshToken and IDToken are kept out of Extra (and so out of
	// Token); only the authorization_code flow reads them.
	RefreshToken string
	IDToken      string
}

// parseTokenResponse parses a successful token response. expires_in may be a
// number or a numeric string (Entra v1 sends strings).
func parseTokenResponse(body []byte, now time.Time) (*tokenResponse, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("token response is not a JSON object")
	}
	tr := &tokenResponse{}
	str := func(k string) (string, error) {
		v, ok := m[k]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("token response field %s is not a string", k)
		}
		return s, nil
	}
	var err error
	if tr.AccessToken, err = str("access_token"); err != nil {
		return nil, err
	}
	if tr.AccessToken == "" {
		return nil, errors.New("token response has no access_token")
	}
	if !validTokenChars(tr.AccessToken) {
		return nil, errors.New("token response access_token contains characters not allowed in an HTTP header")
	}
	if tr.TokenType, err = str("token_type"); err != nil {
		return nil, err
	}
	if tr.IssuedTokenType, err = str("issued_token_type"); err != nil {
		return nil, err
	}
	if tr.Scope, err = str("scope"); err != nil {
		return nil, err
	}
	if tr.RefreshToken, err = str("refresh_token"); err != nil {
		return nil, err
	}
	if tr.IDToken, err = str("id_token"); err != nil {
		return nil, err
	}
	if v, ok := m["expires_in"]; ok && v != nil {
		var secs int64
		switch x := v.(type) {
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return nil, fmt.Errorf("token response expires_in %q is not a number", x)
			}
			secs = int64(f)
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("token response expires_in %q is not a number", x)
			}
			secs = n
		default:
			return nil, errors.New("token response expires_in is not a number")
		}
		if secs < 0 || secs > 10*365*24*3600 {
			return nil, fmt.Errorf("token response expires_in %d is out of range", secs)
		}
		tr.Expiry = now.Add(time.Duration(secs) * time.Second)
	}
	for _, k := range []string{"access_token", "token_type", "issued_token_type", "scope", "expires_in", "refresh_token", "id_token"} {
		delete(m, k)
	}
	if len(m) > 0 {
		for k, v := range m {
			if n, ok := v.(json.Number); ok {
				if i, err := n.Int64(); err == nil {
					m[k] = i
				} else if f, err := n.Float64(); err == nil {
					m[k] = f
				}
			}
		}
		tr.Extra = m
	}
	return tr, nil
}

// validTokenChars reports whether s can go into an Authorization header
// (printable ASCII, no spaces).
func validTokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// oauthErrorBody is RFC 6749 §5.2 plus Entra's additions.
type oauthErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorURI         string `json:"error_uri"`
	ErrorCodes       []int  `json:"error_codes"`
	Claims           string `json:"claims"`
	SubError         string `json:"suberror"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

// parseErrorResponse turns a non-2xx token endpoint answer into *Error.
func parseErrorResponse(status int, contentType, location string, body []byte) *Error {
	e := &Error{Status: status, Retryable: status >= 500 || status == http.StatusTooManyRequests}
	if status >= 300 && status < 400 {
		// The target goes to the operational log only (without query,
		// fragment or user info): users are not shown internal addresses.
		e.Description = "the token endpoint redirected; Mandate does not follow redirects (the request carries the user's token), set token_url to the final URL (Mandate's log names the target)"
		if u, err := url.Parse(location); err == nil && location != "" {
			u.RawQuery, u.Fragment, u.User = "", "", nil
			e.redirectTo = sanitize(u.String(), 200)
		}
		return e
	}
	var eb oauthErrorBody
	mt, _, _ := mime.ParseMediaType(contentType)
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
		// Not an OAuth error body (HTML from a proxy, or JSON without error).
		if mt == "" {
			mt = "no content type"
		}
		e.Description = "the token endpoint answered with a non-OAuth error body (" + sanitize(mt, 60) + ")"
		return e
	}
	e.Code = sanitize(eb.Error, 64)
	e.Description = sanitize(redactJWTs(firstLine(eb.ErrorDescription)), 300)
	e.Claims = eb.Claims
	if len(e.Claims) > 4096 || !utf8.ValidString(e.Claims) {
		e.Claims = ""
	}
	switch e.Code {
	case "interaction_required", "login_required":
		e.Interaction = true
	case "consent_required":
		e.Interaction, e.Consent = true, true
	case "invalid_grant":
		if hasCode(eb, 65001) {
			e.Interaction, e.Consent = true, true
		} else if hasCode(eb, 50076) || hasCode(eb, 50079) || e.Claims != "" {
			e.Interaction = true
		}
	case "temporarily_unavailable":
		e.Retryable = true
	}
	if e.Claims != "" {
		e.Interaction = true
	}
	return e
}

func hasCode(eb oauthErrorBody, code int) bool {
	for _, c := range eb.ErrorCodes {
		if c == code {
			return true
		}
	}
	return strings.Contains(eb.ErrorDescription, "AADSTS"+strconv.Itoa(code)+":")
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// sanitize removes control and non-printable characters and cuts s to max
// bytes (on a rune boundary), so server text is safe in logs and messages.
func sanitize(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || !unicode.IsPrint(r) && r != ' ' {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sensitiveParams are the request parameters that carry tokens or secrets.
var sensitiveParams = []string{"subject_token", "actor_token", "assertion", "client_assertion", "client_secret", "refresh_token", "code", "code_verifier", "token"}

// scrub removes from a server's error text any token or secret this request
// sent, in case the server echoes it.
func scrub(s string, form url.Values, clientSecret string) string {
	vals := []string{clientSecret}
	for _, k := range sensitiveParams {
		vals = append(vals, form.Get(k))
	}
	for _, v := range vals {
		if len(v) >= 6 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// jwtLike matches compact JWS/JWE text a server might echo in an error
// description; it is replaced before the text reaches a log or a user.
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_.-]*`)

func redactJWTs(s string) string {
	if !strings.Contains(s, "eyJ") {
		return s
	}
	return jwtLike.ReplaceAllString(s, "[token]")
}

// jwtClaims decodes the payload of a compact JWS without verifying it (the
// token is ours to use, not to trust; its claims only label audit records).
// It returns nil when tok is not a JWT.
func jwtClaims(tok string) map[string]any {
	first := strings.IndexByte(tok, '.')
	if first < 0 {
		return nil
	}
	rest := tok[first+1:]
	second := strings.IndexByte(rest, '.')
	if second < 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return nil // not a JWS (a JWE has four dots)
	}
	payload, err := base64.RawURLEncoding.DecodeString(rest[:second])
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(payload, &m) != nil {
		return nil
	}
	return m
}

// subjectOf picks the platform subject from a JWT's claims, first present
// of the names given.
func subjectOf(claims map[string]any, names ...string) string {
	for _, n := range names {
		if s, ok := claims[n].(string); ok && s != "" {
			return sanitize(s, 256)
		}
	}
	return ""
}
