package clients

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// maxFormBytes bounds the token and revocation endpoints' form bodies when
// Authenticate parses them.
const maxFormBytes = 64 << 10

const basicChallenge = `Basic realm="mandate", charset="UTF-8"`

// Authenticate identifies and authenticates the client of a token or
// revocation request (a POSTed form): client_secret_basic (the
// Authorization header; id and secret form-urlencoded, RFC 6749 §2.3.1),
// client_secret_post (client_id and client_secret in the form), or none (a
// public client names itself with client_id in the form). A confidential
// client must authenticate; a public client must not send a secret (an
// empty Basic password is tolerated); using two methods at once is
// invalid_request. Failures are 401 invalid_client, with a Basic challenge
// when Basic was attempted. It parses the form (at most 64 KiB) if the
// caller has not.
func (r *Registry) Authenticate(req *http.Request) (*Client, *Error) {
	if req.PostForm == nil && req.Body != nil {
		req.Body = http.MaxBytesReader(nil, req.Body, maxFormBytes)
	}
	if err := req.ParseForm(); err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: "the request body is not a valid form (application/x-www-form-urlencoded, at most 64 KiB)"}
	}
	if req.URL.Query().Has("client_secret") {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: "client_secret must not be sent in the URL"}
	}
	form := req.PostForm
	for _, k := range []string{"client_id", "client_secret"} {
		if len(form[k]) > 1 {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: k + " is repeated"}
		}
	}
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	_, secretInForm := form["client_secret"]

	basicID, basicSecret, basic, berr := parseBasic(req.Header.Get("Authorization"))
	if berr != nil {
		return nil, berr
	}
	id, secret, method := formID, formSecret, AuthClientSecretPost
	switch {
	case basic && secretInForm:
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: "the client used two authentication methods (client_secret_basic and client_secret_post); use one"}
	case basic && formID != "" && formID != basicID:
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: "client_id in the form differs from the one in the Authorization header"}
	case basic:
		id, secret, method = basicID, basicSecret, AuthClientSecretBasic
	case !secretInForm:
		method = AuthNone
	}
	fail := func(desc string) *Error {
		e := &Error{Status: http.StatusUnauthorized, Code: "invalid_client", Description: desc}
		if basic {
			e.WWWAuthenticate = basicChallenge
		}
		return e
	}
	if id == "" {
		return nil, fail("client authentication is missing: send client_id (and a client secret for a confidential client)")
	}
	c, hash, e := r.resolve(req.Context(), id)
	if e != nil {
		if e.Code != "invalid_client" {
			return nil, e
		}
		return nil, fail(e.Description)
	}
	switch {
	case hash == nil && secret != "":
		return nil, fail(fmt.Sprintf("client %s is public (token_endpoint_auth_method none): it has no secret, so it must not send one", clip(id)))
	case hash == nil:
		return c, nil
	case method == AuthNone || secret == "":
		return nil, fail(fmt.Sprintf("client %s is confidential and must authenticate (client_secret_basic or client_secret_post)", clip(id)))
	}
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], hash) != 1 {
		return nil, fail("client authentication failed: wrong client secret")
	}
	return c, nil
}

// parseBasic decodes an Authorization: Basic header (RFC 7617; id and
// secret form-urlencoded first, RFC 6749 §2.3.1). ok is false when the
// header is absent or another scheme.
func parseBasic(h string) (id, secret string, ok bool, e *Error) {
	scheme, val, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false, nil
	}
	bad := &Error{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "the Authorization header is not valid Basic credentials (base64 of form-urlencoded client_id:client_secret)", WWWAuthenticate: basicChallenge}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
	if err != nil {
		return "", "", false, bad
	}
	u, p, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false, bad
	}
	if id, err = url.QueryUnescape(u); err != nil {
		return "", "", false, bad
	}
	if secret, err = url.QueryUnescape(p); err != nil {
		return "", "", false, bad
	}
	if id == "" {
		return "", "", false, bad
	}
	return id, secret, true, nil
}
