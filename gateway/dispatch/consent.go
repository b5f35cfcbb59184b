package dispatch

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Asking the user to connect their account, in the protocol (issue 16).
//
// A call fails with a *credentials.ConsentRequiredError (anywhere in the
// adapter's error chain: when the upstream session is opened, when the
// listing that admits a tool is fetched, or during the call) when the
// user has no grant at the upstream, or a broken one, or one that lacks
// scopes. The answer depends on what the client can do:
//
//   - A client that declared URL elicitation (capabilities.elicitation.url)
//     on a revision before 2026-07-28: the JSON-RPC error -32042 (URL
//     elicitation required) with data.elicitations[0] = {mode: "url", url,
//     message, elicitationId}. When the connect service reports that the
//     user connected through that link, the session gets
//     notifications/elicitation/complete (ElicitationCompleted).
//   - A 2026-07-28 client (per-request capabilities) that declared URL
//     elicitation, for tools/call, prompts/get and resources/read: an
//     input_required result whose inputRequests hold the elicitation and
//     whose requestState is sealed (AES-256-GCM under StateKey) and bound
//     to the user, the upstream, the call (method, name or URI, arguments)
//     and an expiry, so that any replica can take the retry. The retry
//     (params.inputResponses and the exact requestState) is checked and
//     runs the call again, which now finds the grant.
//   - Any other client: tools/call answers a tool error (isError) that
//     says what to open and why; other methods a JSON-RPC error
//     (CodeCredentials) saying the same.
//
// The URL is the connect service's (ConnectLink). It is not a bearer
// secret (the page checks that the signed-in user is the one it was made
// for), but it is kept out of the audit record, spans and logs anyway:
// those say error_class consent_required and the reason.
//
// The audit outcome of such a call is error, with error_class
// consent_required: nothing refused the user (a denial is policy's or the
// rate limit's), the call could not run until the user acts — the same
// as other credential failures.

// RequestStateTTL is how long the requestState of an input_required
// result is accepted: the time a user has to connect and let the client
// retry.
const RequestStateTTL = 15 * time.Minute

// connectInputKey is the key of the URL elicitation in inputRequests and
// inputResponses.
const connectInputKey = "mandate_connect"

// Error classes of the audit record.
const (
	errClassConsentRequired = "consent_required"
	errClassConsentDeclined = "consent_declined"
	errClassRequestState    = "invalid_request_state"
)

// maxRequestState bounds the requestState Mandate opens.
const maxRequestState = 4 << 10

// maxPendingElicitations bounds the elicitation ids remembered for
// notifications/elicitation/complete.
const maxPendingElicitations = 10000

// consentState is what a requestState holds.
type consentState struct {
	Issuer   string `json:"i"`
	Subject  string `json:"s"`
	Upstream string `json:"u"`
	Call     []byte `json:"c"` // callDigest
	Exp      int64  `json:"e"`
}

// errRequestState* are the refusals of a retry's requestState.
var (
	errStateInvalid = errors.New("requestState is invalid or was altered")
	errStateExpired = errors.New("requestState has expired; call again without it")
	errStateOther   = errors.New("requestState was issued for another call or user")
)

const requestStatePurpose = "mandate/request-state/v1"

// consentRuntime is the Dispatcher's state for consent answers, built on
// first use.
type consentRuntime struct {
	once sync.Once
	aead cipher.AEAD
	err  error

	mu      sync.Mutex
	pending map[string]pendingElicitation // elicitation id → the session that was asked
}

type pendingElicitation struct {
	ss  *mcp.ServerSession
	exp time.Time
}

func (g *Dispatcher) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// sealer returns the AEAD of requestState (StateKey, or a random key when
// none is set: one replica only).
func (g *Dispatcher) sealer() (cipher.AEAD, error) {
	r := &g.consent
	r.once.Do(func() {
		key := g.StateKey
		if len(key) == 0 {
			key = make([]byte, 32)
			_, _ = rand.Read(key)
		}
		if len(key) != 32 {
			r.err = fmt.Errorf("request state key: %d bytes, want 32", len(key))
			return
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(requestStatePurpose))
		block, err := aes.NewCipher(m.Sum(nil))
		if err != nil {
			r.err = err
			return
		}
		r.aead, r.err = cipher.NewGCM(block)
	})
	return r.aead, r.err
}

// callDigest binds a requestState to one call: the method, the name or
// URI as the client sent it, and the arguments (canonical JSON, so that a
// client that re-encodes the same arguments matches).
func (c *call) callDigest() []byte {
	h := sha256.New()
	for _, s := range []string{c.method, c.name, c.uri} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	switch {
	case len(c.rawArgs) > 0:
		dec := json.NewDecoder(bytes.NewReader(c.rawArgs))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil {
			b, _ := json.Marshal(canonicalNumbers(v)) // map keys sorted
			h.Write(b)
		} else {
			h.Write(c.rawArgs)
		}
	case c.promptArgs != nil:
		b, _ := json.Marshal(c.promptArgs) // map keys sorted
		h.Write(b)
	}
	return h.Sum(nil)
}

// canonicalNumbers writes every number of v one way (1, 1.0 and 1e0 are
// the same number).
func canonicalNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return json.Number(strconv.FormatInt(i, 10))
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
	case map[string]any:
		for k, e := range x {
			x[k] = canonicalNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = canonicalNumbers(e)
		}
	}
	return v
}

func (g *Dispatcher) sealState(c *call) (string, error) {
	aead, err := g.sealer()
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(consentState{Issuer: c.id.Issuer, Subject: c.id.Subject, Upstream: c.upstream,
		Call: c.callDigest(), Exp: g.now().Add(RequestStateTTL).Unix()})
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(requestStatePurpose))), nil
}

// openState checks a retry's requestState against the call.
func (g *Dispatcher) openState(c *call, sealed string) error {
	aead, err := g.sealer()
	if err != nil {
		return err
	}
	if len(sealed) > maxRequestState {
		return errStateInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return errStateInvalid
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, raw[:n], raw[n:], []byte(requestStatePurpose))
	if err != nil {
		return errStateInvalid
	}
	var st consentState
	if json.Unmarshal(plain, &st) != nil {
		return errStateInvalid
	}
	if st.Issuer != c.id.Issuer || st.Subject != c.id.Subject || st.Upstream != c.upstream ||
		!hmac.Equal(st.Call, c.callDigest()) {
		return errStateOther
	}
	if !g.now().Before(time.Unix(st.Exp, 0)) {
		return errStateExpired
	}
	return nil
}

// resume checks the retry of an input_required answer (a call with a
// requestState): a requestState that is not Mandate's for this user and
// this call is refused (invalid params); a declined or cancelled
// elicitation ends the call; otherwise the call runs again.
func (g *Dispatcher) resume(c *call) (mcp.Result, error) {
	if err := g.openState(c, c.requestState); err != nil {
		c.outcome, c.errClass, c.errMsg = audit.OutcomeError, errClassRequestState, err.Error()
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	}
	if er, ok := c.inputResponses[connectInputKey].(*mcp.ElicitResult); ok && er.Action != "accept" {
		msg := fmt.Sprintf("you did not connect your %s account (%s), so the call was not made; call again to be asked again", c.upstream, er.Action)
		c.outcome, c.errClass, c.errMsg = audit.OutcomeError, errClassConsentDeclined, msg
		return c.userError(msg)
	}
	return nil, nil
}

// userError answers msg as a tool error for tools/call and as a JSON-RPC
// error (CodeCredentials) for the other methods.
func (c *call) userError(msg string) (mcp.Result, error) {
	if c.method == "tools/call" {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}, nil
	}
	return nil, &jsonrpc.Error{Code: CodeCredentials, Message: msg}
}

// consentRequired answers err when it says that the user must connect
// their account at the call's upstream (ok false otherwise).
func (g *Dispatcher) consentRequired(c *call, err error) (res mcp.Result, rerr error, ok bool) {
	var cre *credentials.ConsentRequiredError
	if !errors.As(err, &cre) {
		return nil, nil, false
	}
	res, rerr = g.askToConnect(c, cre)
	return res, rerr, true
}

// askToConnect answers a call whose user must connect their account first:
// a URL elicitation in the form the client understands, or a message.
func (g *Dispatcher) askToConnect(c *call, cre *credentials.ConsentRequiredError) (mcp.Result, error) {
	why := upperFirst(cre.Error())
	c.outcome, c.errClass = audit.OutcomeError, errClassConsentRequired
	c.errMsg = why + " (reason " + orStr(cre.Reason, "no_grant") + ")"
	if g.ConnectLink == nil {
		return c.userError(why + ". But this Mandate has no per-user connections configured, so it cannot connect the account; ask its administrators.")
	}
	link, elicitationID, err := g.ConnectLink(c.id, c.upstream, orStr(cre.Reason, "no_grant"))
	if err != nil {
		g.Log.Warn("making the connect link failed", "upstream", c.upstream, "request_id", c.requestID, "error", err.Error())
		return c.userError(why + ". Mandate could not make the link to connect it; try again later.")
	}
	message := why + ". Open the link to sign in and allow access; then try again."
	caps := c.clientCaps()
	urlMode := caps != nil && caps.Elicitation != nil && caps.Elicitation.URL != nil
	switch {
	case urlMode && c.proto >= catalog.SessionlessProtocol:
		switch c.method {
		case "tools/call", "prompts/get", "resources/read":
			state, err := g.sealState(c)
			if err != nil {
				g.Log.Error("sealing a request state failed", "error", err.Error())
				break
			}
			return &inputRequired{Result: emptyResult(c.method), state: state, requests: mcp.InputRequestMap{
				connectInputKey: &mcp.ElicitParams{Mode: "url", Message: message, URL: link, ElicitationID: elicitationID},
			}}, nil
		}
	case urlMode:
		if elicitationID == "" {
			break
		}
		g.rememberElicitation(elicitationID, c.ss)
		rerr := mcp.URLElicitationRequiredError([]*mcp.ElicitParams{{Mode: "url", Message: message, URL: link, ElicitationID: elicitationID}})
		if je := (*jsonrpc.Error)(nil); errors.As(rerr, &je) {
			je.Message = why
		}
		return nil, rerr
	}
	return c.userError(fmt.Sprintf("%s. To connect it, open %s in your browser, sign in and allow access; then try again.", why, link))
}

// clientCaps are the calling client's capabilities: the request's own
// (_meta, 2026-07-28) or its session's (initialize).
func (c *call) clientCaps() *mcp.ClientCapabilities {
	if r, ok := c.req.(interface {
		ClientCapabilities() *mcp.ClientCapabilities
	}); ok {
		return r.ClientCapabilities()
	}
	if c.ss != nil {
		if ip := c.ss.InitializeParams(); ip != nil {
			return ip.Capabilities
		}
	}
	return nil
}

// rememberElicitation keeps which session was asked to open a link, for
// notifications/elicitation/complete (stateful sessions only).
func (g *Dispatcher) rememberElicitation(id string, ss *mcp.ServerSession) {
	if g.Stateless || ss == nil {
		return
	}
	r := &g.consent
	now := g.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]pendingElicitation{}
	}
	if len(r.pending) >= maxPendingElicitations {
		for k, p := range r.pending {
			if !now.Before(p.exp) {
				delete(r.pending, k)
			}
		}
		if len(r.pending) >= maxPendingElicitations {
			return // the notification is optional
		}
	}
	r.pending[id] = pendingElicitation{ss: ss, exp: now.Add(RequestStateTTL)}
}

// ElicitationCompleted tells the session that was asked to connect through
// the link with this elicitation id (a session on this replica, of a
// revision before 2026-07-28) that the user connected:
// notifications/elicitation/complete. The gateway calls it when the
// connect service reports a completed connection; unknown or expired ids
// are ignored. Safe for concurrent use.
func (g *Dispatcher) ElicitationCompleted(ctx context.Context, elicitationID string) {
	r := &g.consent
	r.mu.Lock()
	p, ok := r.pending[elicitationID]
	delete(r.pending, elicitationID)
	r.mu.Unlock()
	if !ok || !g.now().Before(p.exp) {
		return
	}
	if err := p.ss.NotifyElicitationComplete(ctx, &mcp.ElicitationCompleteParams{ElicitationID: elicitationID}); err != nil {
		g.Log.Debug("notifications/elicitation/complete not sent", "session_id", p.ss.ID(), "error", err.Error())
	}
}

// inputRequired is a 2026-07-28 input_required result of tools/call,
// prompts/get or resources/read. go-sdk sets the result type only on
// results of its own handlers (not on what receiving middleware answers),
// so it is written here: resultType, inputRequests and requestState, and
// no content. The embedded Result (the method's empty result) makes it an
// mcp.Result and carries _meta.
type inputRequired struct {
	mcp.Result
	requests mcp.InputRequestMap
	state    string
}

func (r *inputRequired) MarshalJSON() ([]byte, error) {
	reqs, err := json.Marshal(r.requests)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Meta          map[string]any  `json:"_meta,omitempty"`
		ResultType    string          `json:"resultType"`
		InputRequests json.RawMessage `json:"inputRequests"`
		RequestState  string          `json:"requestState"`
	}{r.GetMeta(), "input_required", reqs, r.state})
}

func emptyResult(method string) mcp.Result {
	switch method {
	case "prompts/get":
		return &mcp.GetPromptResult{}
	case "resources/read":
		return &mcp.ReadResourceResult{}
	}
	return &mcp.CallToolResult{}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
