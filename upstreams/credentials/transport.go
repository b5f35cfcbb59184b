package credentials

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mandate-gw/mandate/internal/callinfo"
)

// ErrAuthorizationPresent is returned by Transport when the outgoing request
// already carries an Authorization header: the transport owns that header,
// so nothing set elsewhere (least of all the user's inbound token) can reach
// the upstream.
var ErrAuthorizationPresent = errors.New("credentials: outgoing request already carries an Authorization header; refusing to send it")

// Transport returns a RoundTripper that sends each request with
// "Authorization: Bearer <platform token>" from src.Token(req.Context()),
// and records the credential used in the request's callinfo (see
// Authorize).
// On a 401 from the upstream it invalidates that token, obtains a new one and
// retries once (requests with a body are retried only when req.GetBody is
// set, as http.NewRequest does for in-memory bodies). For flow none it adds
// nothing. base nil means http.DefaultTransport.
func Transport(src Source, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{src: src, base: base}
}

type transport struct {
	src  Source
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(req.Header.Values("Authorization")) > 0 {
		closeBody(req)
		return nil, ErrAuthorizationPresent
	}
	ctx := req.Context()
	res, err := t.src.Token(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if res.Token == nil { // flow none
		return t.base.RoundTrip(req)
	}
	r1 := withToken(req, res)
	resp, err := t.base.RoundTrip(r1)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// The upstream refused the token: drop it, get another, retry once.
	t.src.Invalidate(ctx, res.Token)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !replayable {
		return resp, nil
	}
	res2, err := t.src.Token(ctx)
	if err != nil {
		return resp, nil // keep the upstream's 401; the caller sees why
	}
	r2 := withToken(req, res2)
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		r2.Body = body
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return t.base.RoundTrip(r2)
}

func withToken(req *http.Request, res Result) *http.Request {
	r := req.Clone(req.Context())
	Authorize(r, res)
	return r
}

// Authorize sets "Authorization: Bearer <token>" on req from res (a Result
// of Source.Token) and records the credential facts — flow, platform
// subject, service account, cache hit — in the operation's callinfo
// (callinfo.FromContext(req.Context())), which the gateway's audit record
// and spans read. It is the one place those facts are written: Transport
// uses it, and adapters that must see the token before they can build the
// request (a REST platform whose API base comes with the token) call it
// instead of setting the header themselves. A nil res.Token (flow none)
// sets and records nothing.
func Authorize(req *http.Request, res Result) {
	tok := res.Token
	if tok == nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken.Reveal())
	callinfo.FromContext(req.Context()).Credential(tok.Flow, tok.PlatformSubject, tok.ServiceAccount, res.CacheHit)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// String describes the transport without secrets.
func (t *transport) String() string { return fmt.Sprintf("credentials.Transport(%T)", t.src) }
