package sandbox

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/mandate-gw/mandate/upstreams/rest/resttest"
)

// keys are the app's signing key and a stranger's.
var keys = resttest.RSAKeys

type env struct {
	sb   *Server
	ts   *httptest.Server
	logs *resttest.SyncBuffer
}

func newEnv(t *testing.T, opts *Options) *env {
	t.Helper()
	key, _ := keys(t)
	if opts == nil {
		opts = &Options{}
	}
	logs := &resttest.SyncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Apps = append(opts.Apps,
		OAuthApp{Name: "Mandate", ClientID: "mandate", ClientSecret: "s3cret", JWTKeys: []crypto.PublicKey{&key.PublicKey}, RunAsUser: "svc.integration"},
		OAuthApp{Name: "Mandate by email", ClientID: "mandate-email", ClientSecret: "s3cret", JWTKeys: []crypto.PublicKey{&key.PublicKey}, UserField: "email", Issuer: "https://mandate.example.com"},
	)
	sb, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	return &env{sb: sb, ts: ts, logs: logs}
}

func sign(t *testing.T, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) assertionClaims(sub string) map[string]any {
	return map[string]any{"iss": "mandate", "sub": sub, "aud": "mandate", "exp": time.Now().Add(2 * time.Minute).Unix(), "iat": time.Now().Unix()}
}

func postForm(t *testing.T, u string, form url.Values) (int, map[string]any, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body, string(raw)
}

func (e *env) do(t *testing.T, method, tok, path string, body any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.ts.URL+path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

func (e *env) list(t *testing.T, tok, table string, params url.Values) (int, http.Header, []map[string]any, []byte) {
	t.Helper()
	status, h, raw := e.do(t, http.MethodGet, tok, "/api/now/table/"+table+"?"+params.Encode(), nil)
	var body struct {
		Result []map[string]any `json:"result"`
	}
	if status == 200 {
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
	}
	return status, h, body.Result, raw
}

func sysIDs(rows []map[string]any) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r["sys_id"].(string))
	}
	return out
}

func errBody(message, detail string) string {
	d := "null"
	if detail != "" {
		raw, _ := json.Marshal(detail)
		d = string(raw)
	}
	m, _ := json.Marshal(message)
	return `{"error":{"message":` + string(m) + `,"detail":` + d + `},"status":"failure"}` + "\n"
}

const deniedBody = `{"error":"server_error","error_description":"access_denied"}` + "\n"

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	key, other := keys(t)
	tests := []struct {
		name   string
		form   func(e *env) url.Values
		user   string // "" = refused
		reason string
	}{
		{"jwt bearer, sub = user_name", func(e *env) url.Values {
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", e.assertionClaims("rep"))}}
		}, "rep", ""},
		{"jwt bearer, sub = email", func(e *env) url.Values {
			c := e.assertionClaims("manager@acme.example")
			c["iss"], c["aud"] = "https://mandate.example.com", "mandate-email"
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate-email"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", c)}}
		}, "manager", ""},
		// ServiceNow requires aud = the client id: the token URL (Mandate's
		// old default) and the instance URL are refused, opaquely.
		{"aud = token URL", func(e *env) url.Values {
			c := e.assertionClaims("it.agent")
			c["aud"] = e.ts.URL + "/oauth_token.do"
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", c)}}
		}, "", "wrong audience (not the client id)"},
		{"aud = instance URL", func(e *env) url.Values {
			c := e.assertionClaims("it.agent")
			c["aud"] = e.ts.URL
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", c)}}
		}, "", "wrong audience (not the client id)"},
		{"client credentials", func(e *env) url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "client_id": {"mandate"}, "client_secret": {"s3cret"}}
		}, "svc.integration", ""},
		{"unknown user", func(e *env) url.Values {
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", e.assertionClaims("nobody"))}}
		}, "", "no sys_user with user_name matching sub"},
		{"email sub on a user_name app", func(e *env) url.Values {
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", e.assertionClaims("rep@acme.example"))}}
		}, "", "no sys_user with user_name matching sub"},
		{"wrong issuer", func(e *env) url.Values {
			c := e.assertionClaims("rep")
			c["iss"] = "someone-else"
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", c)}}
		}, "", "wrong issuer"},
		{"bad signature", func(e *env) url.Values {
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, other, jose.RS256, "", e.assertionClaims("rep"))}}
		}, "", "bad signature"},
		{"expired", func(e *env) url.Values {
			c := e.assertionClaims("rep")
			c["exp"] = time.Now().Add(-time.Minute).Unix()
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", c)}}
		}, "", "assertion expired"},
		{"exp missing", func(e *env) url.Values {
			c := e.assertionClaims("rep")
			delete(c, "exp")
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", c)}}
		}, "", "exp missing"},
		{"wrong audience", func(e *env) url.Values {
			c := e.assertionClaims("rep")
			c["aud"] = "https://other.service-now.com/oauth_token.do"
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, key, jose.RS256, "", c)}}
		}, "", "wrong audience"},
		{"HS256", func(e *env) url.Values {
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {sign(t, []byte("0123456789abcdef0123456789abcdef"), jose.HS256, "", e.assertionClaims("rep"))}}
		}, "", "algorithm not allowed"},
		{"alg none", func(e *env) url.Values {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
			c, _ := json.Marshal(e.assertionClaims("rep"))
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"s3cret"}, "assertion": {h + "." + base64.RawURLEncoding.EncodeToString(c) + "."}}
		}, "", "algorithm not allowed"},
		{"wrong client secret", func(e *env) url.Values {
			return url.Values{"grant_type": {GrantTypeJWTBearer}, "client_id": {"mandate"}, "client_secret": {"nope"}, "assertion": {sign(t, key, jose.RS256, "", e.assertionClaims("rep"))}}
		}, "", "wrong client_secret"},
		{"unknown client", func(e *env) url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "client_id": {"ghost"}, "client_secret": {"s3cret"}}
		}, "", "unknown client_id"},
		{"client credentials not enabled", func(e *env) url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "client_id": {"mandate-email"}, "client_secret": {"s3cret"}}
		}, "", "client credentials grant not enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			status, body, raw := postForm(t, e.ts.URL+"/oauth_token.do", tc.form(e))
			if tc.user == "" {
				if status != 401 || raw != deniedBody {
					t.Errorf("got %d %s, want 401 %s", status, raw, deniedBody)
				}
				if !strings.Contains(e.logs.String(), tc.reason) {
					t.Errorf("log does not give the reason %q:\n%s", tc.reason, e.logs.String())
				}
				return
			}
			if status != 200 {
				t.Fatalf("status %d %s", status, raw)
			}
			want := map[string]any{"access_token": body["access_token"], "scope": "useraccount", "token_type": "Bearer", "expires_in": float64(1799)}
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("token response (-want +got):\n%s", diff)
			}
			tok := body["access_token"].(string)
			if strings.Contains(e.logs.String(), tok) {
				t.Error("the access token was logged")
			}
			// The token works and identifies the mapped user.
			_, _, rows, raw2 := e.list(t, tok, "sys_user", url.Values{"sysparm_query": {"sys_id=javascript:gs.getUserID()"}, "sysparm_fields": {"user_name"}})
			if len(rows) != 1 || rows[0]["user_name"] != tc.user {
				t.Errorf("token runs as %s, want %s", raw2, tc.user)
			}
		})
	}
	e := newEnv(t, nil)
	if status, _, raw := postForm(t, e.ts.URL+"/oauth_token.do", url.Values{"grant_type": {"password"}, "client_id": {"mandate"}, "client_secret": {"s3cret"}}); status != 400 || !strings.Contains(raw, "unsupported_grant_type") {
		t.Errorf("password grant: %d %s", status, raw)
	}
}

// The exact incident sets each seed user sees; adapter tests assert the same.
func TestIncidentACLRecordSets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	all := []string{IncLaptop, IncVPN, IncCRMReport, IncDashboard, IncPrinter, IncEmail}
	tests := []struct {
		user string
		want []string
	}{
		{"it.agent", all},
		{"rep", []string{IncLaptop, IncVPN}},
		{"manager", []string{IncCRMReport, IncDashboard, IncEmail}},
		{"outsider", []string{}},
		{"svc.integration", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			tok, err := e.sb.IssueToken(tc.user)
			if err != nil {
				t.Fatal(err)
			}
			status, h, rows, raw := e.list(t, tok, "incident", nil)
			if status != 200 {
				t.Fatalf("%d %s", status, raw)
			}
			if diff := cmp.Diff(tc.want, sysIDs(rows)); diff != "" {
				t.Errorf("incidents (-want +got):\n%s", diff)
			}
			// The count is the query's, before ACLs (ServiceNow counts
			// rows, then removes those the user may not read).
			if got := h.Get("X-Total-Count"); got != itoa(len(all)) {
				t.Errorf("X-Total-Count %s, want %d", got, len(all))
			}
			for _, id := range all {
				status, _, raw := e.do(t, http.MethodGet, tok, "/api/now/table/incident/"+id, nil)
				visible := slices.Contains(tc.want, id)
				switch {
				case visible && status != 200:
					t.Errorf("GET %s: %d %s", id, status, raw)
				case !visible && (status != 404 || string(raw) != errBody("No Record found", "Record doesn't exist or ACL restricts the record retrieval")):
					t.Errorf("GET invisible %s: %d %s", id, status, raw)
				}
			}
			// Everyone can read users and groups.
			if _, _, rows, _ := e.list(t, tok, "sys_user", nil); len(rows) != 5 {
				t.Errorf("sys_user rows: %d", len(rows))
			}
			if _, _, rows, _ := e.list(t, tok, "sys_user_group", nil); len(rows) != 2 {
				t.Errorf("sys_user_group rows: %d", len(rows))
			}
		})
	}
}

func itoa(n int) string {
	raw, _ := json.Marshal(n)
	return string(raw)
}

func TestEncodedQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	agent, _ := e.sb.IssueToken("it.agent")
	rep, _ := e.sb.IssueToken("rep")
	tests := []struct {
		tok, query string
		want       []string
	}{
		{agent, "active=true^ORDERBYnumber", []string{IncLaptop, IncVPN, IncCRMReport, IncDashboard, IncPrinter}},
		{agent, "state=1^ORstate=2^ORDERBYDESCnumber", []string{IncDashboard, IncCRMReport, IncVPN, IncLaptop}},
		{agent, "stateIN6,7^ORDERBYnumber", []string{IncPrinter, IncEmail}},
		{agent, "stateNOT IN1,2,6^ORDERBYnumber", []string{IncEmail}},
		{agent, "state<3^assignment_group=" + GroupSalesOps + "^ORDERBYnumber", []string{IncCRMReport, IncDashboard}},
		{agent, "short_descriptionLIKEvpn", []string{IncVPN}},
		{agent, "short_descriptionNOT LIKEr^ORDERBYnumber", []string{IncEmail}},
		{agent, "numberSTARTSWITHINC001000^numberENDSWITH5", []string{IncPrinter}},
		{agent, "assigned_toISEMPTY^ORDERBYnumber", []string{IncVPN, IncCRMReport}},
		{agent, "assigned_toISNOTEMPTY^assigned_to!=" + UserITAgent, []string{IncDashboard}},
		{agent, "caller_id.email=manager@acme.example^ORDERBYnumber", []string{IncCRMReport, IncEmail}},
		{agent, "assignment_group.name=Sales Ops^NQstate=7^ORDERBYnumber", []string{IncCRMReport, IncDashboard, IncEmail}},
		{agent, "opened_at>=2026-10-07 00:00:00^ORDERBYopened_at", []string{IncDashboard, IncPrinter, IncEmail}},
		{agent, "priority>=4^ORDERBYDESCpriority^ORDERBYnumber", []string{IncDashboard, IncPrinter, IncVPN, IncCRMReport, IncEmail}},
		{agent, "caller_id=javascript:gs.getUserID()^ORDERBYnumber", []string{IncDashboard, IncPrinter}},
		{rep, "caller_id=javascript:gs.getUserID()^active=true", []string{IncLaptop, IncVPN}},
		{rep, "assignment_group=" + GroupSalesOps, []string{}},
		{agent, "ORDERBYcaller_id^ORDERBYnumber", []string{IncDashboard, IncPrinter, IncCRMReport, IncEmail, IncLaptop, IncVPN}},
	}
	for _, tc := range tests {
		status, _, rows, raw := e.list(t, tc.tok, "incident", url.Values{"sysparm_query": {tc.query}})
		if status != 200 {
			t.Errorf("%s: %d %s", tc.query, status, raw)
			continue
		}
		if diff := cmp.Diff(tc.want, sysIDs(rows)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.query, diff)
		}
	}
	// Invalid parts are ignored, as on the platform (with
	// glide.invalid_query.returns_no_rows off, its default): the rest of
	// the query runs and the answer has MORE rows.
	all := []string{IncLaptop, IncVPN, IncCRMReport, IncDashboard, IncPrinter, IncEmail}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"nosuchfield=1", all},
		{"caller_id.nosuch=x", all},
		{"short_description~vpn", all},
		{"=5", all},
		{"state=1^ORnosuch=2^ORDERBYnumber", []string{IncVPN, IncCRMReport}},
		{"nosuch=2^ORstate=1^ORDERBYnumber", []string{IncVPN, IncCRMReport}},
		{"short_descriptionLIKEvpn^ORDERBYnosuch", []string{IncVPN}},
		{"caller_id=" + UserRep + "^assigned_too=" + UserITAgent, []string{IncLaptop, IncVPN}},
	} {
		status, h, rows, raw := e.list(t, agent, "incident", url.Values{"sysparm_query": {tc.query}})
		if status != 200 || h.Get("X-Total-Count") != itoa(len(tc.want)) {
			t.Errorf("%s: %d %s", tc.query, status, raw)
			continue
		}
		if diff := cmp.Diff(tc.want, sysIDs(rows)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.query, diff)
		}
	}
	// With the property on, a query with an invalid part returns nothing.
	strict := newEnv(t, &Options{InvalidQueryReturnsNoRows: true})
	strictAgent, _ := strict.sb.IssueToken("it.agent")
	for q, want := range map[string][]string{"nosuchfield=1": {}, "state=1^ORnosuch=2": {}, "state=7": {IncEmail}} {
		status, h, rows, raw := strict.list(t, strictAgent, "incident", url.Values{"sysparm_query": {q}})
		if status != 200 || !cmp.Equal(want, sysIDs(rows)) || h.Get("X-Total-Count") != itoa(len(want)) {
			t.Errorf("returns_no_rows %s: %d %s", q, status, raw)
		}
	}
	// What the sandbox cannot run is refused outright.
	for _, q := range []string{"caller_id=javascript:gs.sleep(1000)", strings.Repeat("state=1^", 201)} {
		status, _, _, raw := e.list(t, agent, "incident", url.Values{"sysparm_query": {q}})
		var body errorBody
		_ = json.Unmarshal(raw, &body)
		if status != 400 || body.Error.Message != "Invalid query" || body.Status != "failure" || body.Error.Detail == nil {
			t.Errorf("%s: %d %.200s", q, status, raw)
		}
	}
}

func TestFieldsDisplayValuesAndPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	agent, _ := e.sb.IssueToken("it.agent")
	base := e.ts.URL
	get := func(params url.Values) (int, http.Header, string) {
		status, h, raw := e.do(t, http.MethodGet, agent, "/api/now/table/incident/"+IncLaptop+"?"+params.Encode(), nil)
		return status, h, string(raw)
	}
	fields := "number,caller_id,caller_id.email,state,nosuchfield"
	tests := []struct {
		params url.Values
		want   string
	}{
		{url.Values{"sysparm_fields": {fields}},
			`{"result":{"number":"INC0010001","caller_id":{"link":"` + base + `/api/now/table/sys_user/` + UserRep + `","value":"` + UserRep + `"},"caller_id.email":"rep@acme.example","state":"2"}}`},
		{url.Values{"sysparm_fields": {fields}, "sysparm_exclude_reference_link": {"true"}},
			`{"result":{"number":"INC0010001","caller_id":"` + UserRep + `","caller_id.email":"rep@acme.example","state":"2"}}`},
		{url.Values{"sysparm_fields": {fields}, "sysparm_display_value": {"true"}},
			`{"result":{"number":"INC0010001","caller_id":"Rita Rep","caller_id.email":"rep@acme.example","state":"In Progress"}}`},
		{url.Values{"sysparm_fields": {fields}, "sysparm_display_value": {"all"}, "sysparm_exclude_reference_link": {"true"}},
			`{"result":{"number":{"display_value":"INC0010001","value":"INC0010001"},"caller_id":{"display_value":"Rita Rep","value":"` + UserRep + `"},"caller_id.email":{"display_value":"rep@acme.example","value":"rep@acme.example"},"state":{"display_value":"In Progress","value":"2"}}}`},
	}
	for _, tc := range tests {
		status, _, got := get(tc.params)
		if status != 200 || got != tc.want+"\n" {
			t.Errorf("%v: %d\n got %s\nwant %s", tc.params, status, got, tc.want)
		}
	}

	status, h, rows, raw := e.list(t, agent, "incident", url.Values{"sysparm_query": {"ORDERBYnumber"}, "sysparm_limit": {"2"}, "sysparm_offset": {"2"}, "sysparm_fields": {"sys_id"}})
	if status != 200 || !cmp.Equal(sysIDs(rows), []string{IncCRMReport, IncDashboard}) || h.Get("X-Total-Count") != "6" {
		t.Errorf("page: %d %s total %s", status, raw, h.Get("X-Total-Count"))
	}
	link := h.Get("Link")
	for _, rel := range []string{`rel="first"`, `rel="prev"`, `rel="next"`, `rel="last"`} {
		if !strings.Contains(link, rel) {
			t.Errorf("Link header %q lacks %s", link, rel)
		}
	}
	if !strings.Contains(link, "sysparm_offset=4") {
		t.Errorf("Link header %q has no next page at offset 4", link)
	}
	status, _, rows, _ = e.list(t, agent, "incident", url.Values{"sysparm_limit": {"100000"}})
	if status != 200 || len(rows) != 6 {
		t.Errorf("huge limit: %d rows", len(rows))
	}
	status, _, rows, _ = e.list(t, agent, "incident", url.Values{"sysparm_offset": {"50"}})
	if status != 200 || len(rows) != 0 {
		t.Errorf("offset past end: %d rows", len(rows))
	}
}

func TestErrorBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	agent, _ := e.sb.IssueToken("it.agent")
	tests := []struct {
		name, method, tok, path string
		status                  int
		body                    string
	}{
		{"no token", "GET", "", "/api/now/table/incident", 401, errBody("User Not Authenticated", "Required to provide Auth information")},
		{"garbage token", "GET", "garbage", "/api/now/table/incident", 401, errBody("User Not Authenticated", "Required to provide Auth information")},
		{"unknown JWT-looking token", "GET", "a.b.c", "/api/now/table/incident", 401, errBody("User Not Authenticated", "Required to provide Auth information")},
		{"invalid table", "GET", agent, "/api/now/table/sys_nonexistent", 400, errBody("Invalid table sys_nonexistent", "Table sys_nonexistent does not exist")},
		{"no record", "GET", agent, "/api/now/table/incident/00000000000000000000000000000000", 404, errBody("No Record found", "Record doesn't exist or ACL restricts the record retrieval")},
		{"POST with sys_id", "POST", agent, "/api/now/table/incident/" + IncLaptop, 405, errBody("Method not Supported", "Method POST is not supported for this resource")},
		{"PATCH collection", "PATCH", agent, "/api/now/table/incident", 405, errBody("Method not Supported", "Method PATCH is not supported for this resource")},
		{"delete refused", "DELETE", agent, "/api/now/table/incident/" + IncLaptop, 403, errBody("Operation Failed", "ACL restricts the record deletion")},
		{"insert into sys_user refused", "POST", agent, "/api/now/table/sys_user", 403, errBody("Operation Failed", "ACL restricts the record insert")},
	}
	for _, tc := range tests {
		var body any
		if tc.method == "POST" {
			body = map[string]string{"short_description": "x"}
		}
		status, h, raw := e.do(t, tc.method, tc.tok, tc.path, body)
		if status != tc.status || string(raw) != tc.body {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, raw, tc.status, tc.body)
		}
		if ct := h.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
			t.Errorf("%s: Content-Type %q", tc.name, ct)
		}
	}
}

func TestCreateAndUpdate(t *testing.T) {
	t.Parallel()
	clk := resttest.NewClock(time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC))
	e := newEnv(t, &Options{Clock: clk.Now})
	rep, _ := e.sb.IssueToken("rep")
	mgr, _ := e.sb.IssueToken("manager")
	agent, _ := e.sb.IssueToken("it.agent")
	outsider, _ := e.sb.IssueToken("outsider")

	// A non-itil caller cannot file on someone else's behalf, nor choose
	// the assignment group (a field only fulfillers may write: ignored).
	status, h, raw := e.do(t, http.MethodPost, rep, "/api/now/table/incident?sysparm_exclude_reference_link=true", map[string]any{
		"short_description": "Monitor flickers", "caller_id": UserManager, "impact": 2, "urgency": "1",
		"assignment_group": "Service Desk", "number": "INC9999999", "sys_id": "ffffffffffffffffffffffffffffffff", "bogus_field": "ignored",
	})
	var created struct {
		Result map[string]any `json:"result"`
	}
	_ = json.Unmarshal(raw, &created)
	r := created.Result
	if status != 201 || r["number"] != "INC0010007" || r["caller_id"] != UserRep || r["opened_by"] != UserRep ||
		r["priority"] != "2" || r["state"] != "1" || r["active"] != "true" || r["assignment_group"] != "" ||
		r["opened_at"] != "2026-11-02 09:30:00" || r["sys_created_by"] != "rep" || r["sys_id"] == "ffffffffffffffffffffffffffffffff" {
		t.Fatalf("create: %d %s", status, raw)
	}
	newID := r["sys_id"].(string)
	if h.Get("Location") != e.ts.URL+"/api/now/table/incident/"+newID {
		t.Errorf("Location %q", h.Get("Location"))
	}
	_, _, rows, _ := e.list(t, rep, "incident", url.Values{"sysparm_query": {"ORDERBYnumber"}})
	if diff := cmp.Diff([]string{IncLaptop, IncVPN, newID}, sysIDs(rows)); diff != "" {
		t.Errorf("rep after create (-want +got):\n%s", diff)
	}
	if status, _, _ := e.do(t, http.MethodGet, outsider, "/api/now/table/incident/"+newID, nil); status != 404 {
		t.Errorf("outsider sees the new incident: %d", status)
	}

	// itil may file for someone else. A reference written as a user name
	// or email is stored as that raw string (sysparm_input_display_value
	// defaults to false: no lookup), a broken reference.
	status, _, raw = e.do(t, http.MethodPost, agent, "/api/now/table/incident?sysparm_exclude_reference_link=true", map[string]any{"short_description": "Badge reader broken", "caller_id": "manager@acme.example", "assigned_to": "it.agent"})
	created.Result = nil
	_ = json.Unmarshal(raw, &created)
	if status != 201 || created.Result["caller_id"] != "manager@acme.example" || created.Result["assigned_to"] != "it.agent" || created.Result["opened_by"] != UserITAgent || created.Result["number"] != "INC0010008" {
		t.Errorf("agent create: %d %s", status, raw)
	}
	// A sys_id is stored as is; with sysparm_input_display_value=true a
	// display value (the user's name, not user_name or email) is looked up.
	status, _, raw = e.do(t, http.MethodPost, agent, "/api/now/table/incident?sysparm_exclude_reference_link=true&sysparm_input_display_value=true", map[string]any{"short_description": "Dock broken", "caller_id": UserManager, "assigned_to": "Ivy Agent", "assignment_group": "Service Desk"})
	created.Result = nil
	_ = json.Unmarshal(raw, &created)
	if status != 201 || created.Result["caller_id"] != UserManager || created.Result["assigned_to"] != UserITAgent || created.Result["assignment_group"] != GroupServiceDesk {
		t.Errorf("agent create with display values: %d %s", status, raw)
	}

	clk.Advance(10 * time.Minute)
	tests := []struct {
		name, tok, id string
		method        string
		body          any
		status        int
		errBody       string
	}{
		{"caller updates own", rep, IncLaptop, http.MethodPatch, map[string]any{"comments": "Still broken", "urgency": "1"}, 200, ""},
		{"opener updates own", mgr, IncCRMReport, http.MethodPut, map[string]any{"description": "Totals off by 10%"}, 200, ""},
		{"assignee without itil is refused", mgr, IncDashboard, http.MethodPatch, map[string]any{"state": "6"}, 403, errBody("Operation Failed", "ACL restricts the record update")},
		{"caller reopens own closed incident", mgr, IncEmail, http.MethodPatch, map[string]any{"state": "2"}, 200, ""},
		{"invisible record is not found", rep, IncCRMReport, http.MethodPatch, map[string]any{"state": "2"}, 404, errBody("No Record found", "Record doesn't exist or ACL restricts the record retrieval")},
		{"outsider", outsider, IncLaptop, http.MethodPatch, map[string]any{"state": "2"}, 404, errBody("No Record found", "Record doesn't exist or ACL restricts the record retrieval")},
		{"itil resolves anything", agent, IncDashboard, http.MethodPatch, map[string]any{"state": "6", "close_code": "Solved (Permanently)", "close_notes": "Granted"}, 200, ""},
		{"bad JSON", agent, IncVPN, http.MethodPatch, "{not json", 400, errBody("Exception while reading request", "The payload is not valid JSON.")},
	}
	for _, tc := range tests {
		status, _, raw := e.do(t, tc.method, tc.tok, "/api/now/table/incident/"+tc.id, tc.body)
		if status != tc.status || (tc.errBody != "" && string(raw) != tc.errBody) {
			t.Errorf("%s: %d %s", tc.name, status, raw)
		}
	}
	if j := e.sb.Journal(IncLaptop); len(j) != 1 || j[0].Field != "comments" || j[0].Value != "Still broken" {
		t.Errorf("laptop journal after rep's update: %+v", j)
	}
	if got := e.sb.Incident(IncLaptop); got["priority"] != "2" || got["sys_updated_by"] != "rep" || got["sys_mod_count"] != "1" || got["sys_updated_on"] != "2026-11-02 09:40:00" {
		t.Errorf("laptop after rep's update: %v", got)
	}
	if got := e.sb.Incident(IncEmail); got["state"] != "2" || got["active"] != "true" {
		t.Errorf("email incident reopened by its caller: %v", got)
	}
	if got := e.sb.Incident(IncDashboard); got["state"] != "6" || got["resolved_at"] != "2026-11-02 09:40:00" || got["close_notes"] != "Granted" {
		t.Errorf("dashboard after resolve: %v", got)
	}
}

// oidcIdP is a minimal external OIDC provider: a discovery document and a
// JWKS served over loopback.
func oidcIdP(t *testing.T) (*httptest.Server, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	var ts *httptest.Server
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": ts.URL + "/", "jwks_uri": ts.URL + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	ts = httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts, key
}

func TestExternalOIDCBearerTokens(t *testing.T) {
	t.Parallel()
	idp, idpKey := oidcIdP(t)
	issuer := idp.URL + "/"
	e := newEnv(t, &Options{OIDCProviders: []OIDCProvider{{Name: "Company IdP", Issuer: issuer, ClientID: "servicenow", MetadataURL: idp.URL + "/.well-known/openid-configuration"}}})
	_, other := keys(t)
	exchanged := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": issuer, "sub": "2987654321", "aud": []string{"servicenow"}, "email": "rep@acme.example",
			"exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(),
			"act": map[string]any{"sub": "mandate"},
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	tests := []struct {
		name   string
		token  string
		ok     bool
		reason string
	}{
		{"exchanged token with email claim", sign(t, idpKey, jose.ES256, "k1", exchanged(nil)), true, ""},
		{"wrong audience", sign(t, idpKey, jose.ES256, "k1", exchanged(func(c map[string]any) { c["aud"] = "mandate" })), false, "claims"},
		{"untrusted issuer", sign(t, idpKey, jose.ES256, "k1", exchanged(func(c map[string]any) { c["iss"] = "https://evil.example/" })), false, "issuer not trusted"},
		{"expired", sign(t, idpKey, jose.ES256, "k1", exchanged(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), false, "claims"},
		{"exp missing", sign(t, idpKey, jose.ES256, "k1", exchanged(func(c map[string]any) { delete(c, "exp") })), false, "exp missing"},
		{"unknown email", sign(t, idpKey, jose.ES256, "k1", exchanged(func(c map[string]any) { c["email"] = "ghost@acme.example" })), false, "no sys_user"},
		{"no email claim", sign(t, idpKey, jose.ES256, "k1", exchanged(func(c map[string]any) { delete(c, "email") })), false, "user claim email missing"},
		{"signed by another key", sign(t, other, jose.RS256, "k1", exchanged(nil)), false, "bad signature"},
		{"HS256", sign(t, []byte("0123456789abcdef0123456789abcdef"), jose.HS256, "k1", exchanged(nil)), false, "algorithm not allowed"},
	}
	for _, tc := range tests {
		before := len(e.logs.String())
		status, _, rows, raw := e.list(t, tc.token, "incident", url.Values{"sysparm_query": {"ORDERBYnumber"}})
		if tc.ok {
			if status != 200 || !cmp.Equal(sysIDs(rows), []string{IncLaptop, IncVPN}) {
				t.Errorf("%s: %d %s", tc.name, status, raw)
			}
			continue
		}
		if status != 401 || string(raw) != errBody("User Not Authenticated", "Required to provide Auth information") {
			t.Errorf("%s: %d %s", tc.name, status, raw)
		}
		if !strings.Contains(e.logs.String()[before:], tc.reason) {
			t.Errorf("%s: log lacks reason %q", tc.name, tc.reason)
		}
	}
	if strings.Contains(e.logs.String(), tests[0].token) {
		t.Error("a bearer token was logged")
	}
}

func TestExpiryRevocationAndRateLimit(t *testing.T) {
	t.Parallel()
	clk := resttest.NewClock(time.Date(2026, 11, 2, 9, 59, 0, 0, time.UTC))
	e := newEnv(t, &Options{Clock: clk.Now, RateLimitPerHour: 3})
	unauth := errBody("User Not Authenticated", "Required to provide Auth information")

	tok, _ := e.sb.IssueToken("rep")
	for i := 0; i < 3; i++ {
		if status, _, _ := e.do(t, http.MethodGet, tok, "/api/now/table/incident", nil); status != 200 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	status, h, raw := e.do(t, http.MethodGet, tok, "/api/now/table/incident", nil)
	if status != 429 || h.Get("Retry-After") != "60" || !strings.Contains(string(raw), `"status":"failure"`) {
		t.Errorf("over the rate limit: %d Retry-After %q %s", status, h.Get("Retry-After"), raw)
	}
	other, _ := e.sb.IssueToken("manager")
	if status, _, _ := e.do(t, http.MethodGet, other, "/api/now/table/incident", nil); status != 200 {
		t.Errorf("the limit is per user; manager got %d", status)
	}
	clk.Advance(time.Minute) // a new hour
	if status, _, _ := e.do(t, http.MethodGet, tok, "/api/now/table/incident", nil); status != 200 {
		t.Errorf("next hour: %d", status)
	}

	clk.Advance(DefaultTokenLifetime)
	if status, _, raw := e.do(t, http.MethodGet, tok, "/api/now/table/incident", nil); status != 401 || string(raw) != unauth {
		t.Errorf("expired token: %d %s", status, raw)
	}
	tok, _ = e.sb.IssueToken("rep")
	e.sb.RevokeAll()
	if status, _, _ := e.do(t, http.MethodGet, tok, "/api/now/table/incident", nil); status != 401 {
		t.Errorf("after RevokeAll: %d", status)
	}
	tok, _ = e.sb.IssueToken("rep")
	if n := e.sb.RevokeUser("rep"); n != 1 {
		t.Errorf("RevokeUser: %d", n)
	}
	if status, _, _ := e.do(t, http.MethodGet, tok, "/api/now/table/incident", nil); status != 401 {
		t.Errorf("after RevokeUser: %d", status)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	users := []string{"it.agent", "rep", "manager", "outsider"}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tok, err := e.sb.IssueToken(users[i%len(users)])
			if err != nil {
				t.Error(err)
				return
			}
			for j := 0; j < 10; j++ {
				if status, _, _, _ := e.list(t, tok, "incident", url.Values{"sysparm_query": {"active=true^ORDERBYDESCopened_at"}, "sysparm_display_value": {"all"}}); status != 200 {
					t.Errorf("list: %d", status)
				}
				if j%3 == 0 {
					if status, _, _ := e.do(t, http.MethodPost, tok, "/api/now/table/incident", map[string]string{"short_description": "load"}); status != 201 {
						t.Errorf("create: %d", status)
					}
				}
			}
		}(i)
	}
	wg.Wait()
}

func TestSeedAndConfigValidation(t *testing.T) {
	t.Parallel()
	if _, err := New(nil); err != nil {
		t.Errorf("zero options: %v", err)
	}
	bad := DefaultSeed()
	bad.Incidents = append(bad.Incidents, map[string]string{"sys_id": IncLaptop, "number": "INC1"})
	if _, err := New(&Options{Seed: bad}); err == nil {
		t.Error("duplicate incident sys_id accepted")
	}
	bad = DefaultSeed()
	bad.Users[0].Groups = []string{"0123456789abcdef0123456789abcdef"}
	if _, err := New(&Options{Seed: bad}); err == nil {
		t.Error("unknown group accepted")
	}
	if _, err := New(&Options{Apps: []OAuthApp{{ClientID: "x", UserField: "phone"}}}); err == nil {
		t.Error("bad user field accepted")
	}
	if _, err := New(&Options{OIDCProviders: []OIDCProvider{{Issuer: "https://idp/", ClientID: "sn"}}}); err == nil {
		t.Error("OIDC provider without keys accepted")
	}
}
