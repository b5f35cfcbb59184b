package sandbox

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
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

const (
	testKey     = "mandate-test-consumer"
	testSecret  = "s3cret"
	testVersion = "v62.0"
)

// keys are the app's signing key and a stranger's.
var keys = resttest.RSAKeys

type env struct {
	sb  *Server
	ts  *httptest.Server
	key *rsa.PrivateKey
}

func newEnv(t *testing.T, opts *Options) *env {
	t.Helper()
	key, _ := keys(t)
	if opts == nil {
		opts = &Options{}
	}
	opts.Apps = append(opts.Apps,
		ConnectedApp{
			Name: "Mandate", ConsumerKey: testKey, ConsumerSecret: testSecret, PublicKey: &key.PublicKey,
			PreAuthorized: []string{"rep@acme.example", "rep2@acme.example", "manager@acme.example", "vp@acme.example", "outsider@acme.example"},
			RunAsUsername: "integration@acme.example",
		},
		ConnectedApp{Name: "No CC", ConsumerKey: "no-cc", ConsumerSecret: "x", PublicKey: &key.PublicKey},
	)
	sb, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	return &env{sb: sb, ts: ts, key: key}
}

// privateOrg is the seed org with every organization-wide default Private
// (contacts controlled by their account), so that what a user sees follows
// ownership and the role hierarchy only.
func privateOrg() *Options {
	seed := DefaultSeed()
	seed.Sharing = PrivateSharing()
	return &Options{Seed: seed}
}

func sign(t *testing.T, key any, alg jose.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsFor(sub string, exp time.Time) map[string]any {
	return map[string]any{"iss": testKey, "sub": sub, "aud": "https://login.salesforce.com", "exp": exp.Unix()}
}

func postForm(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("token response %q: %v", raw, err)
		}
	}
	return resp.StatusCode, body
}

func (e *env) token(t *testing.T, username string) string {
	t.Helper()
	status, body := postForm(t, e.ts.URL+"/services/oauth2/token", url.Values{
		"grant_type": {GrantTypeJWTBearer},
		"assertion":  {sign(t, e.key, jose.RS256, claimsFor(username, time.Now().Add(2*time.Minute)))},
	})
	if status != 200 {
		t.Fatalf("token for %s: %d %v", username, status, body)
	}
	return body["access_token"].(string)
}

func (e *env) get(t *testing.T, tok, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type queryResult struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

func (e *env) query(t *testing.T, tok, soql string) (int, queryResult, []byte) {
	t.Helper()
	status, b := e.get(t, tok, "/services/data/"+testVersion+"/query?q="+url.QueryEscape(soql))
	var qr queryResult
	if status == 200 {
		if err := json.Unmarshal(b, &qr); err != nil {
			t.Fatalf("query body %s: %v", b, err)
		}
	}
	return status, qr, b
}

func ids(recs []map[string]any) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r["Id"].(string))
	}
	return out
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

type apiErr struct {
	Message   string `json:"message"`
	ErrorCode string `json:"errorCode"`
}

func decodeAPIErr(t *testing.T, b []byte) apiErr {
	t.Helper()
	var errs []apiErr
	if err := json.Unmarshal(b, &errs); err != nil || len(errs) != 1 {
		t.Fatalf("error body %s is not a one-element Salesforce error array: %v", b, err)
	}
	return errs[0]
}

func TestJWTBearerTokenEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	key, other := keys(t)
	now := time.Now()
	noneToken := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		c, _ := json.Marshal(claimsFor("rep@acme.example", now.Add(time.Minute)))
		return h + "." + base64.RawURLEncoding.EncodeToString(c) + "."
	}
	with := func(k string, v any) map[string]any {
		c := claimsFor("rep@acme.example", now.Add(2*time.Minute))
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name      string
		assertion string
		wantErr   string // "" = success
		wantDesc  string
	}{
		{"valid", sign(t, key, jose.RS256, with("exp", now.Add(2*time.Minute).Unix())), "", ""},
		// aud is the login URL, never the instance's own URL (Mandate's old
		// default was the token URL); a production org refuses the
		// sandbox-org login URL.
		{"aud is the sandbox itself", sign(t, key, jose.RS256, with("aud", e.ts.URL)), "invalid_grant", "audience is invalid"},
		{"aud is the token URL", sign(t, key, jose.RS256, with("aud", e.ts.URL+"/services/oauth2/token")), "invalid_grant", "audience is invalid"},
		{"aud is test.salesforce.com on a production org", sign(t, key, jose.RS256, with("aud", "https://test.salesforce.com")), "invalid_grant", "audience is invalid"},
		{"username is case-insensitive", sign(t, key, jose.RS256, with("sub", "Rep@Acme.Example")), "", ""},
		{"unknown user", sign(t, key, jose.RS256, with("sub", "nobody@acme.example")), "invalid_grant", "user hasn't approved this consumer"},
		{"user not pre-authorized", sign(t, key, jose.RS256, with("sub", "integration@acme.example")), "invalid_grant", "user hasn't approved this consumer"},
		{"unknown issuer", sign(t, key, jose.RS256, with("iss", "someone-else")), "invalid_client_id", "client identifier invalid"},
		{"signed by another key", sign(t, other, jose.RS256, with("exp", now.Add(time.Minute).Unix())), "invalid_grant", "invalid assertion"},
		{"expired", sign(t, key, jose.RS256, with("exp", now.Add(-time.Second).Unix())), "invalid_grant", "expired authorization code"},
		{"exp more than 3 minutes ahead", sign(t, key, jose.RS256, with("exp", now.Add(4*time.Minute).Unix())), "invalid_grant", "invalid assertion"},
		{"exp missing", sign(t, key, jose.RS256, with("exp", nil)), "invalid_grant", "invalid assertion"},
		{"wrong audience", sign(t, key, jose.RS256, with("aud", "https://evil.example.com")), "invalid_grant", "audience is invalid"},
		{"two audiences", sign(t, key, jose.RS256, with("aud", []string{"https://login.salesforce.com", "x"})), "invalid_grant", "audience is invalid"},
		{"HS256", sign(t, []byte("0123456789abcdef0123456789abcdef"), jose.HS256, with("exp", now.Add(time.Minute).Unix())), "invalid_grant", "invalid assertion"},
		{"alg none", noneToken(), "invalid_grant", "invalid assertion"},
		{"garbage", "not.a.jwt", "invalid_grant", "invalid assertion"},
		{"empty", "", "invalid_grant", "invalid assertion"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, body := postForm(t, e.ts.URL+"/services/oauth2/token", url.Values{"grant_type": {GrantTypeJWTBearer}, "assertion": {tc.assertion}})
			if tc.wantErr == "" {
				if status != 200 {
					t.Fatalf("status %d body %v", status, body)
				}
				want := map[string]any{
					"access_token": body["access_token"], "scope": "api", "instance_url": e.ts.URL,
					"id": e.ts.URL + "/id/" + SeedOrgID + "/" + UserRep, "token_type": "Bearer", "issued_at": body["issued_at"],
				}
				if diff := cmp.Diff(want, body); diff != "" {
					t.Errorf("token response (-want +got):\n%s", diff)
				}
				if tok, _ := body["access_token"].(string); !strings.HasPrefix(tok, SeedOrgID[:15]+"!") {
					t.Errorf("access token %q does not look like a Salesforce session id", tok)
				}
				return
			}
			want := map[string]any{"error": tc.wantErr, "error_description": tc.wantDesc}
			if status != 400 || !cmp.Equal(want, body) {
				t.Errorf("got %d %v, want 400 %v", status, body, want)
			}
		})
	}
}

func TestTokenEndpointRefusesOtherGrantsAndMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	status, body := postForm(t, e.ts.URL+"/services/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"rep@acme.example"}})
	if status != 400 || body["error"] != "unsupported_grant_type" || body["error_description"] != "grant type not supported" {
		t.Errorf("password grant: %d %v", status, body)
	}
	resp, err := http.Get(e.ts.URL + "/services/oauth2/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("GET token endpoint: %d", resp.StatusCode)
	}
}

func TestClientCredentialsServiceAccountIsRefusedUserData(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tokURL := e.ts.URL + "/services/oauth2/token"
	if status, body := postForm(t, tokURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {testKey}, "client_secret": {"wrong"}}); status != 400 || body["error"] != "invalid_client" || body["error_description"] != "invalid client credentials" {
		t.Errorf("wrong secret: %d %v", status, body)
	}
	if status, body := postForm(t, tokURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"no-cc"}, "client_secret": {"x"}}); status != 400 || body["error"] != "invalid_grant" || body["error_description"] != "no client credentials user enabled" {
		t.Errorf("app without run-as user: %d %v", status, body)
	}
	status, body := postForm(t, tokURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {testKey}, "client_secret": {testSecret}})
	if status != 200 || body["id"] != e.ts.URL+"/id/"+SeedOrgID+"/"+UserIntegration {
		t.Fatalf("client credentials: %d %v", status, body)
	}
	tok := body["access_token"].(string)

	status, _, raw := e.query(t, tok, "SELECT Id, Name FROM Opportunity")
	if got := decodeAPIErr(t, raw); status != 400 || got.ErrorCode != "INVALID_TYPE" || !strings.Contains(got.Message, "sObject type 'Opportunity' is not supported.") {
		t.Errorf("service account query: %d %+v", status, got)
	}
	status, raw = e.get(t, tok, "/services/data/"+testVersion+"/sobjects/Opportunity/"+OppAcmeRenewal)
	if got := decodeAPIErr(t, raw); status != 404 || got.ErrorCode != "NOT_FOUND" {
		t.Errorf("service account get: %d %+v", status, got)
	}
	status, raw = e.get(t, tok, "/services/data/"+testVersion+"/search?q="+url.QueryEscape("FIND {Acme} RETURNING Opportunity(Name)"))
	if got := decodeAPIErr(t, raw); status != 400 || got.ErrorCode != "INVALID_TYPE" {
		t.Errorf("service account search: %d %+v", status, got)
	}
	// Users remain readable: the integration user can look itself up.
	status, qr, raw := e.query(t, tok, "SELECT Id, Name FROM User WHERE Username = 'integration@acme.example'")
	if status != 200 || !cmp.Equal(ids(qr.Records), []string{UserIntegration}) {
		t.Errorf("service account user query: %d %s", status, raw)
	}
}

// The exact record sets each seed user sees when every org-wide default is
// Private: ownership plus the role hierarchy.
func TestSharingRecordSets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, privateOrg())
	tests := []struct {
		user                        string
		allOpps, openOpps, accounts []string
		contacts, cases             []string
	}{
		{"rep@acme.example",
			[]string{OppAcmeRenewal, OppAcmeExpansion, OppAcmePilot},
			[]string{OppAcmeRenewal, OppAcmeExpansion},
			[]string{AccountAcme}, []string{ContactAcme}, []string{CaseAcme}},
		{"rep2@acme.example",
			[]string{OppGlobexNewLogo, OppGlobexServices},
			[]string{OppGlobexNewLogo},
			[]string{AccountGlobex}, []string{ContactGlobex}, []string{CaseGlobex}},
		{"manager@acme.example",
			[]string{OppAcmeRenewal, OppAcmeExpansion, OppAcmePilot, OppGlobexNewLogo, OppGlobexServices, OppInitechPlatform},
			[]string{OppAcmeRenewal, OppAcmeExpansion, OppGlobexNewLogo, OppInitechPlatform},
			[]string{AccountAcme, AccountGlobex, AccountInitech}, []string{ContactAcme, ContactGlobex, ContactInitech}, []string{CaseAcme, CaseGlobex}},
		{"vp@acme.example",
			[]string{OppAcmeRenewal, OppAcmeExpansion, OppAcmePilot, OppGlobexNewLogo, OppGlobexServices, OppInitechPlatform, OppUmbrellaEnt},
			[]string{OppAcmeRenewal, OppAcmeExpansion, OppGlobexNewLogo, OppInitechPlatform, OppUmbrellaEnt},
			[]string{AccountAcme, AccountGlobex, AccountInitech, AccountUmbrella}, []string{ContactAcme, ContactGlobex, ContactInitech}, []string{CaseAcme, CaseGlobex}},
		{"outsider@acme.example", nil, nil, nil, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			tok := e.token(t, tc.user)
			for _, q := range []struct {
				soql string
				want []string
			}{
				{"SELECT Id FROM Opportunity", tc.allOpps},
				{"SELECT Id, Name, Amount, StageName, CloseDate FROM Opportunity WHERE IsClosed = false", tc.openOpps},
				{"SELECT Id FROM Account", tc.accounts},
				{"SELECT Id FROM Contact", tc.contacts},
				{"SELECT Id FROM Case", tc.cases},
			} {
				status, qr, raw := e.query(t, tok, q.soql)
				if status != 200 {
					t.Fatalf("%s: %d %s", q.soql, status, raw)
				}
				want := sorted(q.want...)
				if want == nil {
					want = []string{}
				}
				if diff := cmp.Diff(want, sorted(ids(qr.Records)...)); diff != "" || qr.TotalSize != len(want) || !qr.Done {
					t.Errorf("%s: totalSize %d done %v (-want +got):\n%s", q.soql, qr.TotalSize, qr.Done, diff)
				}
			}
		})
	}
}

func TestMyPipelineShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.token(t, "rep@acme.example")
	status, b := e.get(t, tok, "/services/data/"+testVersion+"/query?q="+url.QueryEscape(
		"SELECT Id, Name, Amount, StageName, CloseDate, Account.Name FROM Opportunity WHERE OwnerId = '"+UserRep+"' AND IsClosed = false ORDER BY CloseDate ASC"))
	if status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	want := `{"totalSize":2,"done":true,"records":[` +
		`{"attributes":{"type":"Opportunity","url":"/services/data/v62.0/sobjects/Opportunity/006000000000001AAA"},"Id":"006000000000001AAA","Name":"Acme Widgets - Renewal","Amount":50000,"StageName":"Negotiation/Review","CloseDate":"2026-12-15","Account":{"attributes":{"type":"Account","url":"/services/data/v62.0/sobjects/Account/001000000000001AAA"},"Name":"Acme Widgets"}},` +
		`{"attributes":{"type":"Opportunity","url":"/services/data/v62.0/sobjects/Opportunity/006000000000002AAA"},"Id":"006000000000002AAA","Name":"Acme Widgets - Expansion","Amount":120000,"StageName":"Prospecting","CloseDate":"2027-02-28","Account":{"attributes":{"type":"Account","url":"/services/data/v62.0/sobjects/Account/001000000000001AAA"},"Name":"Acme Widgets"}}]}` + "\n"
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestSOQLFeatures(t *testing.T) {
	t.Parallel()
	clk := resttest.NewClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, &Options{Clock: clk.Now})
	tok, err := e.sb.IssueToken("vp@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		soql string
		want []string // in order
	}{
		{"select id from opportunity where amount > 100000 order by amount desc", []string{OppUmbrellaEnt, OppInitechPlatform, OppAcmeExpansion}},
		{"SELECT Id FROM Opportunity WHERE Amount >= 50000 AND Amount <= 120000 ORDER BY Amount", []string{OppAcmeRenewal, OppGlobexNewLogo, OppAcmeExpansion}},
		{"SELECT Id FROM Opportunity WHERE StageName IN ('Closed Won', 'Closed Lost') ORDER BY Name", []string{OppAcmePilot, OppGlobexServices}},
		{"SELECT Id FROM Opportunity WHERE StageName NOT IN ('Closed Won', 'Closed Lost') AND (Amount < 60000 OR Amount > 400000) ORDER BY Amount", []string{OppAcmeRenewal, OppUmbrellaEnt}},
		{"SELECT Id FROM Opportunity WHERE Name LIKE 'acme%' ORDER BY Name LIMIT 2", []string{OppAcmeExpansion, OppAcmePilot}},
		{"SELECT Id FROM Opportunity WHERE Name LIKE 'Acme Widgets - _ilot'", []string{OppAcmePilot}},
		{"SELECT Id FROM Opportunity ORDER BY Name LIMIT 2 OFFSET 5", []string{OppInitechPlatform, OppUmbrellaEnt}},
		{"SELECT Id FROM Opportunity WHERE CloseDate < 2026-07-01 ORDER BY CloseDate", []string{OppGlobexServices, OppAcmePilot}},
		{"SELECT Id FROM Opportunity WHERE CloseDate = TODAY", []string{OppInitechPlatform}},
		{"SELECT Id FROM Opportunity WHERE CloseDate > TOMORROW AND CloseDate < 2027-01-01", []string{OppAcmeRenewal}},
		{"SELECT Id FROM Opportunity WHERE Account.Name = 'globex' ORDER BY Name", []string{OppGlobexNewLogo, OppGlobexServices}},
		{"SELECT Id FROM Opportunity WHERE Owner.Name = 'Morgan Manager'", []string{OppInitechPlatform}},
		{"SELECT Id FROM Opportunity WHERE NOT IsClosed = false ORDER BY Name", []string{OppAcmePilot, OppGlobexServices}},
		{"SELECT Id FROM Opportunity WHERE OwnerId = '" + UserRep2[:15] + "' ORDER BY Name", []string{OppGlobexNewLogo, OppGlobexServices}},
		{"SELECT Id FROM Account WHERE CreatedDate > 2025-05-01T00:00:00Z ORDER BY CreatedDate DESC", []string{AccountUmbrella, AccountInitech}},
		{"SELECT Id FROM User WHERE ManagerId = null ORDER BY Name", []string{UserIntegration, UserOutsider, UserVP}},
	}
	for _, tc := range tests {
		status, qr, raw := e.query(t, tok, tc.soql)
		if status != 200 {
			t.Errorf("%s: %d %s", tc.soql, status, raw)
			continue
		}
		if diff := cmp.Diff(tc.want, ids(qr.Records)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.soql, diff)
		}
	}
	status, b := e.get(t, tok, "/services/data/"+testVersion+"/query?q="+url.QueryEscape("SELECT COUNT() FROM Opportunity WHERE IsWon = true"))
	if status != 200 || string(b) != `{"totalSize":1,"done":true,"records":[]}`+"\n" {
		t.Errorf("COUNT(): %d %s", status, b)
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.token(t, "rep@acme.example")
	tests := []struct {
		soql, code, msgPart string
	}{
		{"SELEC Id FROM Account", "MALFORMED_QUERY", "unexpected token: 'SELEC'"},
		{"SELECT Id FROM", "MALFORMED_QUERY", "unexpected token: <EOF>"},
		{"SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"},
		{"SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY", "mismatched character '<EOF>'"},
		{"SELECT Id, Id FROM Account", "MALFORMED_QUERY", "duplicate field selected: Id"},
		{"SELECT Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'"},
		{"SELECT Id FROM Widget__c", "INVALID_TYPE", "sObject type 'Widget__c' is not supported"},
		{"SELECT Id FROM Opportunity WHERE CloseDate = '2026-01-01'", "MALFORMED_QUERY", "value of filter criterion for field 'CloseDate' must be of type date and should not be enclosed in quotes"},
		{"SELECT Id FROM Opportunity WHERE Amount = '5'", "MALFORMED_QUERY", "must be of type double"},
		{"SELECT Id FROM Opportunity WHERE Name = 5", "MALFORMED_QUERY", "must be of type string and should be enclosed in quotes"},
		{"SELECT Id FROM Opportunity WHERE Foo.Name = 'x'", "INVALID_FIELD", "Didn't understand relationship 'Foo'"},
		{"SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"},
		{"SELECT Id FROM Account WHERE " + strings.Repeat("(", 150) + "Name = 'x'" + strings.Repeat(")", 150), "QUERY_TOO_COMPLICATED", ""},
		{"DELETE FROM Account", "MALFORMED_QUERY", "unexpected token: 'DELETE'"},
		{"SELECT Id FROM Account; DROP", "MALFORMED_QUERY", "no viable alternative at character ';'"},
	}
	for _, tc := range tests {
		status, _, raw := e.query(t, tok, tc.soql)
		got := decodeAPIErr(t, raw)
		if status != 400 || got.ErrorCode != tc.code || !strings.Contains(got.Message, tc.msgPart) {
			t.Errorf("%s: got %d %+v, want 400 %s containing %q", tc.soql, status, got, tc.code, tc.msgPart)
		}
	}
	status, raw := e.get(t, tok, "/services/data/"+testVersion+"/query")
	if got := decodeAPIErr(t, raw); status != 400 || got != (apiErr{"A query string has to be specified", "MALFORMED_QUERY"}) {
		t.Errorf("missing q: %d %+v", status, got)
	}
	status, raw = e.get(t, tok, "/services/data/"+testVersion+"/query?q="+url.QueryEscape("SELECT Foo FROM Account"))
	want := "\nSELECT Foo FROM Account\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
	if got := decodeAPIErr(t, raw); status != 400 || got.Message != want {
		t.Errorf("INVALID_FIELD message:\n%q\nwant\n%q", got.Message, want)
	}
	long := "SELECT Id FROM Account WHERE Name = '" + strings.Repeat("a", maxSOQLLength) + "'"
	if _, qerr := parseSOQL(long); qerr == nil || qerr.code != "MALFORMED_QUERY" {
		t.Errorf("over-long query: %v", qerr)
	}
}

func TestGetRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, privateOrg())
	rep := e.token(t, "rep@acme.example")
	mgr := e.token(t, "manager@acme.example")
	path := func(typ, id string) string { return "/services/data/" + testVersion + "/sobjects/" + typ + "/" + id }

	status, b := e.get(t, rep, path("Opportunity", OppAcmeRenewal)+"?fields=Name,Amount,Account.Name")
	want := `{"attributes":{"type":"Opportunity","url":"/services/data/v62.0/sobjects/Opportunity/006000000000001AAA"},"Name":"Acme Widgets - Renewal","Amount":50000,"Account":{"attributes":{"type":"Account","url":"/services/data/v62.0/sobjects/Account/001000000000001AAA"},"Name":"Acme Widgets"}}` + "\n"
	if status != 200 || string(b) != want {
		t.Errorf("rep get own: %d %s", status, b)
	}
	status, b = e.get(t, rep, path("Opportunity", OppAcmeRenewal[:15]))
	var full map[string]any
	_ = json.Unmarshal(b, &full)
	if status != 200 || full["Id"] != OppAcmeRenewal || full["StageName"] != "Negotiation/Review" || full["IsClosed"] != false {
		t.Errorf("rep get own by 15-char id: %d %s", status, b)
	}
	for _, tc := range []struct {
		name, tok, path string
		status          int
		code            string
	}{
		{"rep cannot see a peer's record", rep, path("Opportunity", OppGlobexNewLogo), 404, "NOT_FOUND"},
		{"rep cannot see the manager's record", rep, path("Opportunity", OppInitechPlatform), 404, "NOT_FOUND"},
		{"id of another type", rep, path("Account", OppAcmeRenewal), 404, "NOT_FOUND"},
		{"unknown type", rep, path("Widget__c", OppAcmeRenewal), 404, "NOT_FOUND"},
		{"malformed id", rep, path("Opportunity", "nope"), 404, "NOT_FOUND"},
		{"unknown field", rep, path("Opportunity", OppAcmeRenewal) + "?fields=Nope", 400, "INVALID_FIELD"},
		{"no token", "", path("Opportunity", OppAcmeRenewal), 401, "INVALID_SESSION_ID"},
	} {
		status, b := e.get(t, tc.tok, tc.path)
		if got := decodeAPIErr(t, b); status != tc.status || got.ErrorCode != tc.code {
			t.Errorf("%s: %d %+v, want %d %s", tc.name, status, got, tc.status, tc.code)
		}
	}
	if status, b := e.get(t, mgr, path("Opportunity", OppGlobexNewLogo)); status != 200 {
		t.Errorf("manager get report's record: %d %s", status, b)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &Options{BatchSize: 2})
	vp := e.token(t, "vp@acme.example")
	rep := e.token(t, "rep@acme.example")
	status, qr, raw := e.query(t, vp, "SELECT Id, Name FROM Opportunity ORDER BY Name")
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	var got []string
	pages := 0
	for {
		pages++
		if qr.TotalSize != 7 || len(qr.Records) > 2 {
			t.Fatalf("page %d: totalSize %d, %d records", pages, qr.TotalSize, len(qr.Records))
		}
		got = append(got, ids(qr.Records)...)
		if qr.Done {
			if qr.NextRecordsURL != "" {
				t.Errorf("done page has nextRecordsUrl %q", qr.NextRecordsURL)
			}
			break
		}
		if !strings.HasPrefix(qr.NextRecordsURL, "/services/data/v62.0/query/01g") {
			t.Fatalf("nextRecordsUrl %q", qr.NextRecordsURL)
		}
		// Another user cannot read this user's cursor.
		if status, b := e.get(t, rep, qr.NextRecordsURL); status != 400 || decodeAPIErr(t, b).ErrorCode != "INVALID_QUERY_LOCATOR" {
			t.Errorf("foreign cursor: %d %s", status, b)
		}
		status, b := e.get(t, vp, qr.NextRecordsURL)
		if status != 200 {
			t.Fatalf("next page: %d %s", status, b)
		}
		qr = queryResult{}
		_ = json.Unmarshal(b, &qr)
	}
	want := []string{OppAcmeExpansion, OppAcmePilot, OppAcmeRenewal, OppGlobexNewLogo, OppGlobexServices, OppInitechPlatform, OppUmbrellaEnt}
	if diff := cmp.Diff(want, got); diff != "" || pages != 4 {
		t.Errorf("pages %d (-want +got):\n%s", pages, diff)
	}
	if status, b := e.get(t, vp, "/services/data/v62.0/query/01gBOGUS-2"); status != 400 || decodeAPIErr(t, b) != (apiErr{"invalid query locator", "INVALID_QUERY_LOCATOR"}) {
		t.Errorf("bogus locator: %d %s", status, b)
	}
}

func TestSessionExpiryAndRevocation(t *testing.T) {
	t.Parallel()
	clk := resttest.NewClock(time.Now())
	e := newEnv(t, &Options{Clock: clk.Now, SessionLifetime: time.Hour})
	q := "/services/data/" + testVersion + "/query?q=" + url.QueryEscape("SELECT Id FROM Account")
	wantBody := `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]` + "\n"

	tok, _ := e.sb.IssueToken("rep@acme.example")
	if status, _ := e.get(t, tok, q); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	clk.Advance(time.Hour)
	if status, b := e.get(t, tok, q); status != 401 || string(b) != wantBody {
		t.Errorf("expired token: %d %s", status, b)
	}

	tok, _ = e.sb.IssueToken("rep@acme.example")
	e.sb.RevokeAll()
	if status, b := e.get(t, tok, q); status != 401 || string(b) != wantBody {
		t.Errorf("after RevokeAll: %d %s", status, b)
	}

	tok, _ = e.sb.IssueToken("rep@acme.example")
	other, _ := e.sb.IssueToken("manager@acme.example")
	if n := e.sb.RevokeUser("rep@acme.example"); n != 1 {
		t.Errorf("RevokeUser revoked %d", n)
	}
	if status, _ := e.get(t, tok, q); status != 401 {
		t.Errorf("after RevokeUser: %d", status)
	}
	if status, _ := e.get(t, other, q); status != 200 {
		t.Errorf("other user's token after RevokeUser: %d", status)
	}

	tok, _ = e.sb.IssueToken("rep@acme.example")
	if status, _ := postForm(t, e.ts.URL+"/services/oauth2/revoke", url.Values{"token": {tok}}); status != 200 {
		t.Errorf("revoke endpoint: %d", status)
	}
	if status, _ := e.get(t, tok, q); status != 401 {
		t.Errorf("after revoke endpoint: %d", status)
	}
	if status, b := e.get(t, "garbage", q); status != 401 || string(b) != wantBody {
		t.Errorf("garbage token: %d %s", status, b)
	}
}

func TestRequestLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &Options{DailyRequestLimit: 2})
	tok, _ := e.sb.IssueToken("rep@acme.example")
	q := "/services/data/" + testVersion + "/query?q=" + url.QueryEscape("SELECT Id FROM Account")
	for i := 0; i < 2; i++ {
		if status, _ := e.get(t, tok, q); status != 200 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	status, b := e.get(t, tok, q)
	if got := decodeAPIErr(t, b); status != 403 || got != (apiErr{"TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED"}) {
		t.Errorf("over limit: %d %+v", status, got)
	}
	e.sb.SetDailyRequestLimit(0)
	if status, _ := e.get(t, tok, q); status != 200 {
		t.Errorf("after lifting the limit: %d", status)
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok, _ := e.sb.IssueToken("rep@acme.example")
	if status, b := e.get(t, tok, "/services/data/v12.0/query?q=x"); status != 404 || decodeAPIErr(t, b).ErrorCode != "NOT_FOUND" {
		t.Errorf("old version: %d %s", status, b)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.ts.URL+"/services/data/"+testVersion+"/sobjects/Account/"+AccountAcme, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := decodeAPIErr(t, b); resp.StatusCode != 405 || got.ErrorCode != "METHOD_NOT_ALLOWED" {
		t.Errorf("DELETE: %d %+v", resp.StatusCode, got)
	}
	status, b := e.get(t, "", "/services/data/")
	var versions []map[string]string
	_ = json.Unmarshal(b, &versions)
	if status != 200 || len(versions) == 0 || versions[len(versions)-1]["url"] != "/services/data/v"+LatestVersion {
		t.Errorf("versions: %d %s", status, b)
	}
}

func TestSOSL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, privateOrg())
	search := func(tok, sosl string) (int, []map[string]any, []byte) {
		status, b := e.get(t, tok, "/services/data/"+testVersion+"/search?q="+url.QueryEscape(sosl))
		var sr struct {
			SearchRecords []map[string]any `json:"searchRecords"`
		}
		if status == 200 {
			if err := json.Unmarshal(b, &sr); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
		}
		return status, sr.SearchRecords, b
	}
	rep := e.token(t, "rep@acme.example")
	mgr := e.token(t, "manager@acme.example")
	outsider := e.token(t, "outsider@acme.example")

	tests := []struct {
		tok, sosl string
		want      []string
	}{
		{rep, "FIND {Acme} IN ALL FIELDS RETURNING Opportunity(Id, Name ORDER BY Name), Account(Id, Name)", []string{OppAcmeExpansion, OppAcmePilot, OppAcmeRenewal, AccountAcme}},
		{rep, "FIND {Globex} RETURNING Opportunity(Id), Account(Id)", []string{}},
		{mgr, "FIND {Glob*} RETURNING Opportunity(Id ORDER BY Name), Account(Id)", []string{OppGlobexNewLogo, OppGlobexServices, AccountGlobex}},
		{mgr, "FIND {globex services} RETURNING Opportunity(Id)", []string{OppGlobexServices}},
		{mgr, "FIND {Acme} RETURNING Opportunity(Id WHERE IsClosed = false ORDER BY Amount DESC LIMIT 1)", []string{OppAcmeExpansion}},
		{mgr, "FIND {bob@globex.example} IN EMAIL FIELDS RETURNING Contact(Id, Email)", []string{ContactGlobex}},
		{mgr, "FIND {Acme} IN EMAIL FIELDS RETURNING Account(Id)", []string{}},
		{outsider, "FIND {Acme} RETURNING Opportunity(Id), Account(Id), Contact(Id)", []string{}},
		{rep, "FIND {Rita}", []string{UserRep}},
		{rep, "FIND {Widg}", []string{}}, // not a prefix search without *
	}
	for _, tc := range tests {
		status, recs, raw := search(tc.tok, tc.sosl)
		if status != 200 {
			t.Errorf("%s: %d %s", tc.sosl, status, raw)
			continue
		}
		if diff := cmp.Diff(tc.want, ids(recs)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.sosl, diff)
		}
	}
	status, recs, _ := search(rep, "FIND {Acme Widgets - Renewal} RETURNING Opportunity(Name, Account.Name)")
	if status != 200 || len(recs) != 1 || recs[0]["Name"] != "Acme Widgets - Renewal" || recs[0]["attributes"].(map[string]any)["type"] != "Opportunity" {
		t.Errorf("search record shape: %v", recs)
	}
	for _, tc := range []struct{ sosl, code string }{
		{"FIND {a}", "INVALID_SEARCH"},
		{"FIND Acme", "MALFORMED_SEARCH"},
		{"FIND {Acme", "MALFORMED_SEARCH"},
		{"FIND {Acme} RETURNING Widget__c", "INVALID_TYPE"},
		{"FIND {Acme} RETURNING Account(Nope)", "INVALID_FIELD"},
		{"FIND {Acme} RETURNING Account(Id", "MALFORMED_SEARCH"},
		{"SELECT Id FROM Account", "MALFORMED_SEARCH"},
	} {
		status, _, raw := search(rep, tc.sosl)
		if got := decodeAPIErr(t, raw); status != 400 || got.ErrorCode != tc.code {
			t.Errorf("%s: %d %+v, want %s", tc.sosl, status, got, tc.code)
		}
	}
}

func TestIdentityEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	status, body := postForm(t, e.ts.URL+"/services/oauth2/token", url.Values{
		"grant_type": {GrantTypeJWTBearer},
		"assertion":  {sign(t, e.key, jose.RS256, claimsFor("manager@acme.example", time.Now().Add(time.Minute)))},
	})
	if status != 200 {
		t.Fatal(body)
	}
	tok := body["access_token"].(string)
	idURL := body["id"].(string)
	status, b := e.get(t, tok, strings.TrimPrefix(idURL, e.ts.URL))
	var id map[string]any
	_ = json.Unmarshal(b, &id)
	if status != 200 || id["username"] != "manager@acme.example" || id["user_id"] != UserManager || id["organization_id"] != SeedOrgID {
		t.Errorf("identity URL: %d %s", status, b)
	}
	if status, _ := e.get(t, tok, "/id/"+SeedOrgID+"/"+UserRep); status != 403 {
		t.Errorf("someone else's identity URL: %d", status)
	}
	status, b = e.get(t, tok, "/services/oauth2/userinfo")
	var ui map[string]any
	_ = json.Unmarshal(b, &ui)
	if status != 200 || ui["preferred_username"] != "manager@acme.example" || ui["email"] != "manager@acme.example" || ui["sub"] != idURL {
		t.Errorf("userinfo: %d %s", status, b)
	}
	if status, _ := e.get(t, "", "/services/oauth2/userinfo"); status != 403 {
		t.Errorf("userinfo without token: %d", status)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &Options{BatchSize: 3})
	users := []string{"rep@acme.example", "manager@acme.example", "vp@acme.example", "outsider@acme.example"}
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
				status, qr, _ := e.query(t, tok, "SELECT Id, Account.Name FROM Opportunity ORDER BY Name")
				if status != 200 {
					t.Errorf("status %d", status)
					return
				}
				if !qr.Done {
					if status, _ := e.get(t, tok, qr.NextRecordsURL); status != 200 {
						t.Errorf("next page: %d", status)
					}
				}
				if j == 5 && i == 0 {
					e.sb.RevokeUser("nobody@acme.example")
				}
			}
		}(i)
	}
	wg.Wait()
}

func TestSeedValidation(t *testing.T) {
	t.Parallel()
	bad := DefaultSeed()
	bad.Records = append(bad.Records, Record{Type: "Account", Fields: map[string]any{"Id": "001000000000009AAA", "Name": "X", "OwnerId": "005999999999999AAA"}})
	if _, err := New(&Options{Seed: bad}); err == nil {
		t.Error("a record owned by an unknown user was accepted")
	}
	bad = DefaultSeed()
	bad.Records = append(bad.Records, Record{Type: "Lead", Fields: map[string]any{"Id": "00Q000000000001AAA"}})
	if _, err := New(&Options{Seed: bad}); err == nil {
		t.Error("an unsupported sObject type was accepted")
	}
	if _, err := New(&Options{Apps: []ConnectedApp{{ConsumerKey: "k", RunAsUsername: "ghost@acme.example"}}}); err == nil {
		t.Error("an app with an unknown run-as user was accepted")
	}
	if _, err := New(nil); err != nil {
		t.Errorf("zero options: %v", err)
	}
	for _, sharing := range []map[string]SharingModel{
		{"Opportunity": SharingControlledByParent}, // contacts only
		{"Account": SharingReadWriteTransfer},      // cases and leads only
		{"Opportunity": "PublicReadOnly"},
		{"Widget__c": SharingPrivate}, // no such object
		{"User": SharingPrivate},
	} {
		seed := DefaultSeed()
		seed.Sharing = sharing
		if _, err := New(&Options{Seed: seed}); err == nil {
			t.Errorf("sharing %v was accepted", sharing)
		}
	}
}

// A new org's organization-wide defaults (DefaultSharing): opportunities
// Public Read Only, accounts Public Read/Write, cases Public
// Read/Write/Transfer, contacts controlled by their account. Every user
// reads every record; the outsider too. Object permissions still apply.
func TestOrgWideDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	allOpps := []string{OppAcmeRenewal, OppAcmeExpansion, OppAcmePilot, OppGlobexNewLogo, OppGlobexServices, OppInitechPlatform, OppUmbrellaEnt}
	for _, user := range []string{"rep@acme.example", "outsider@acme.example"} {
		tok := e.token(t, user)
		for _, q := range []struct {
			soql string
			want []string
		}{
			{"SELECT Id FROM Opportunity", allOpps},
			{"SELECT Id FROM Account", []string{AccountAcme, AccountGlobex, AccountInitech, AccountUmbrella}},
			{"SELECT Id FROM Contact", []string{ContactAcme, ContactGlobex, ContactInitech}},
			{"SELECT Id FROM Case", []string{CaseAcme, CaseGlobex}},
		} {
			status, qr, raw := e.query(t, tok, q.soql)
			if status != 200 {
				t.Fatalf("%s as %s: %d %s", q.soql, user, status, raw)
			}
			if diff := cmp.Diff(sorted(q.want...), sorted(ids(qr.Records)...)); diff != "" {
				t.Errorf("%s as %s (-want +got):\n%s", q.soql, user, diff)
			}
		}
	}
	rep := e.token(t, "rep@acme.example")
	if status, b := e.get(t, rep, "/services/data/"+testVersion+"/sobjects/Opportunity/"+OppUmbrellaEnt); status != 200 {
		t.Errorf("rep get the VP's opportunity under Public Read Only: %d %s", status, b)
	}

	// Controlled by Parent: with accounts Private, a contact follows its
	// account, and a contact without an account is private to its owner.
	seed := DefaultSeed()
	seed.Sharing = map[string]SharingModel{"Account": SharingPrivate}
	seed.Records = append(seed.Records, Record{Type: "Contact", Fields: map[string]any{
		"Id": "003000000000009AAA", "LastName": "Orphan", "Name": "Olive Orphan", "OwnerId": UserRep2}})
	e2 := newEnv(t, &Options{Seed: seed})
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"rep@acme.example", []string{ContactAcme}},
		{"rep2@acme.example", []string{ContactGlobex, "003000000000009AAA"}},
		{"manager@acme.example", []string{ContactAcme, ContactGlobex, ContactInitech, "003000000000009AAA"}},
		{"outsider@acme.example", []string{}},
	} {
		status, qr, raw := e2.query(t, e2.token(t, tc.user), "SELECT Id FROM Contact")
		if status != 200 {
			t.Fatalf("%d %s", status, raw)
		}
		if diff := cmp.Diff(sorted(tc.want...), sorted(ids(qr.Records)...)); diff != "" {
			t.Errorf("contacts of %s with private accounts (-want +got):\n%s", tc.user, diff)
		}
	}
}

// USING SCOPE narrows a query to what the user owns (mine) or what their
// reports own (team), within what sharing lets them see.
func TestUsingScope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts *Options
		user string
		soql string
		want []string
	}{
		{"mine: own records only, though all are visible", nil, "rep@acme.example",
			"SELECT Id FROM Opportunity USING SCOPE mine", []string{OppAcmeRenewal, OppAcmeExpansion, OppAcmePilot}},
		{"mine with WHERE and ORDER BY, scope name in any case", nil, "rep@acme.example",
			"SELECT Id FROM Opportunity USING SCOPE Mine WHERE IsClosed = false ORDER BY CloseDate", []string{OppAcmeRenewal, OppAcmeExpansion}},
		{"everything is what sharing shows", nil, "rep@acme.example",
			"SELECT Id FROM Opportunity USING SCOPE everything WHERE IsClosed = false ORDER BY CloseDate",
			[]string{OppInitechPlatform, OppAcmeRenewal, OppGlobexNewLogo, OppAcmeExpansion, OppUmbrellaEnt}},
		{"team: the manager's reports' records, not the manager's own", nil, "manager@acme.example",
			"SELECT Id FROM Opportunity USING SCOPE team WHERE IsClosed = false ORDER BY CloseDate", []string{OppAcmeRenewal, OppGlobexNewLogo, OppAcmeExpansion}},
		{"team of the VP: every level below", nil, "vp@acme.example",
			"SELECT Id FROM Opportunity USING SCOPE team WHERE IsClosed = false ORDER BY CloseDate", []string{OppInitechPlatform, OppAcmeRenewal, OppGlobexNewLogo, OppAcmeExpansion}},
		{"team of a rep without reports is empty", nil, "rep@acme.example",
			"SELECT Id FROM Opportunity USING SCOPE team", []string{}},
		{"mine on accounts", nil, "rep2@acme.example", "SELECT Id FROM Account USING SCOPE mine", []string{AccountGlobex}},
		{"mine of the outsider", nil, "outsider@acme.example", "SELECT Id FROM Opportunity USING SCOPE mine", []string{}},
		{"everything never widens private sharing", privateOrg(), "rep@acme.example",
			"SELECT Id FROM Opportunity USING SCOPE everything", []string{OppAcmeRenewal, OppAcmeExpansion, OppAcmePilot}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.opts)
			status, qr, raw := e.query(t, e.token(t, tc.user), tc.soql)
			if status != 200 {
				t.Fatalf("%d %s", status, raw)
			}
			if diff := cmp.Diff(tc.want, ids(qr.Records)); diff != "" || qr.TotalSize != len(tc.want) {
				t.Errorf("%s: totalSize %d (-want +got):\n%s", tc.soql, qr.TotalSize, diff)
			}
		})
	}

	e := newEnv(t, nil)
	tok := e.token(t, "rep@acme.example")
	status, b := e.get(t, tok, "/services/data/"+testVersion+"/query?q="+url.QueryEscape("SELECT COUNT() FROM Opportunity USING SCOPE mine WHERE IsClosed = false"))
	if status != 200 || string(b) != `{"totalSize":2,"done":true,"records":[]}`+"\n" {
		t.Errorf("COUNT() USING SCOPE mine: %d %s", status, b)
	}
	for _, tc := range []struct{ soql, msgPart string }{
		{"SELECT Id FROM Case USING SCOPE team", "Invalid scope: team is not a supported scope for Case"},
		{"SELECT Id FROM Opportunity USING SCOPE nobody", "Invalid scope: nobody"},
		{"SELECT Id FROM Opportunity USING SCOPE", "unexpected token: <EOF>"},
		{"SELECT Id FROM Opportunity USING mine", "unexpected token: 'mine'"},
		{"SELECT Id FROM Opportunity WHERE IsClosed = false USING SCOPE mine", "unexpected token: 'USING'"},
	} {
		status, _, raw := e.query(t, tok, tc.soql)
		if got := decodeAPIErr(t, raw); status != 400 || got.ErrorCode != "MALFORMED_QUERY" || !strings.Contains(got.Message, tc.msgPart) {
			t.Errorf("%s: %d %+v, want MALFORMED_QUERY containing %q", tc.soql, status, got, tc.msgPart)
		}
	}
	// API versions before 32.0 have no USING SCOPE.
	status, b = e.get(t, tok, "/services/data/v31.0/query?q="+url.QueryEscape("SELECT Id FROM Opportunity USING SCOPE mine"))
	if got := decodeAPIErr(t, b); status != 400 || got.ErrorCode != "MALFORMED_QUERY" || !strings.Contains(got.Message, "unexpected token: 'USING'") {
		t.Errorf("USING SCOPE on v31.0: %d %+v", status, got)
	}
}
