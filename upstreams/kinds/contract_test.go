package kinds_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	_ "github.com/mandate-gw/mandate/upstreams/kinds"
	"github.com/mandate-gw/mandate/upstreams/rest/resttest"
	sfsb "github.com/mandate-gw/mandate/upstreams/salesforce/sandbox"
	snsb "github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
	"github.com/mandate-gw/mandate/upstreams/upstreamstest"
)

// contracts holds, per adapter kind, its case of the contract suite
// (upstreamstest): an upstream to run against and two users whose results
// differ. Every adapter is built through the registry
// (upstreams.NewAdapter), as the gateway builds them. A kind added to the
// registry without a case here fails TestEveryKindHasAContract.
var contracts = map[string]func(t *testing.T) upstreamstest.Harness{
	upstreams.KindMCP:        mcpContract,
	upstreams.KindSalesforce: salesforceContract,
	upstreams.KindServiceNow: servicenowContract,
}

func TestEveryKindHasAContract(t *testing.T) {
	t.Parallel()
	kinds := upstreams.Kinds()
	if len(kinds) == 0 {
		t.Fatal("no kind is registered: package kinds links none")
	}
	for _, kind := range kinds {
		if contracts[kind] == nil {
			t.Errorf("kind %q is registered but has no contract case in contracts (upstreams/kinds/contract_test.go)", kind)
		}
	}
	for kind := range contracts {
		if !slices.Contains(kinds, kind) {
			t.Errorf("contracts has a case for kind %q, which is not registered (its blank import in package kinds is missing)", kind)
		}
	}
}

// TestContract runs the adapter contract suite for every registered kind.
func TestContract(t *testing.T) {
	t.Parallel()
	for _, kind := range upstreams.Kinds() {
		newCase := contracts[kind]
		if newCase == nil {
			continue // TestEveryKindHasAContract reports it
		}
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			upstreamstest.Run(t, newCase(t))
		})
	}
}

// newAdapter builds cfg's adapter through the registry.
func newAdapter(t *testing.T, cfg upstreams.Config, deps upstreams.Deps) upstreams.Adapter {
	t.Helper()
	a, err := upstreams.NewAdapter(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func user(subject, email string) *identity.Identity {
	return identity.Identity{Issuer: "https://idp.test/", Subject: subject, Email: email, EmailTrusted: true, Expiry: time.Now().Add(time.Hour)}.WithRawToken("inbound-" + subject)
}

// keyFile writes the PEM of the test signing key (resttest.RSAKeys) and
// returns its path and public half.
func keyFile(t *testing.T) (string, crypto.PublicKey) {
	t.Helper()
	key, _ := resttest.RSAKeys(t)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, &key.PublicKey
}

// ids returns the field of every record in list of res's structured content.
func ids(res *sdk.CallToolResult, list, field string) ([]string, error) {
	if res.IsError {
		return nil, fmt.Errorf("tool error: %s", upstreamstest.ResultText(res))
	}
	v, err := upstreamstest.Structured(res)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	recs, _ := m[list].([]any)
	got := []string{}
	for _, r := range recs {
		rm, _ := r.(map[string]any)
		id, _ := rm[field].(string)
		got = append(got, id)
	}
	return got, nil
}

func wantIDs(list, field string, want ...string) func(*sdk.CallToolResult) error {
	return func(res *sdk.CallToolResult) error {
		got, err := ids(res, list, field)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s %v, want %v", list, got, want)
		}
		return nil
	}
}

// platformSource hands out "platform-<subject>" for the caller.
type platformSource struct{}

func (platformSource) Token(ctx context.Context) (credentials.Result, error) {
	id := identity.FromContext(ctx)
	if id == nil {
		return credentials.Result{}, errors.New("no identity in context")
	}
	return credentials.Result{Token: &credentials.Token{AccessToken: secret.String("platform-" + id.Subject), Flow: credentials.FlowTokenExchange}}, nil
}

func (platformSource) Invalidate(context.Context, *credentials.Token) {}

// mcpContract: a go-sdk upstream whose whoami tool answers with the
// platform token it received.
func mcpContract(t *testing.T) upstreamstest.Harness {
	srv := sdk.NewServer(&sdk.Implementation{Name: "up", Version: "1"}, nil)
	srv.AddTool(&sdk.Tool{Name: "whoami", InputSchema: map[string]any{"type": "object"}}, func(_ context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: r.Extra.Header.Get("Authorization")}}}, nil
	})
	ts := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	want := func(sub string) func(*sdk.CallToolResult) error {
		return func(res *sdk.CallToolResult) error {
			if res == nil || res.IsError || len(res.Content) == 0 {
				return fmt.Errorf("no result: %+v", res)
			}
			if got := upstreamstest.ResultText(res); got != "Bearer platform-"+sub {
				return fmt.Errorf("upstream saw %q, want the platform token of %s", got, sub)
			}
			return nil
		}
	}
	return upstreamstest.Harness{
		New: func(t *testing.T) upstreams.Adapter {
			cfg := upstreams.Config{Name: "crm", Kind: upstreams.KindMCP, URL: ts.URL, Timeout: 10 * time.Second,
				Credentials: credentials.Config{Flow: credentials.FlowTokenExchange}}
			return newAdapter(t, cfg, upstreams.Deps{Credentials: platformSource{}})
		},
		Users:        [2]upstreamstest.User{{Identity: user("alice", ""), Want: want("alice")}, {Identity: user("bob", ""), Want: want("bob")}},
		Call:         sdk.CallToolParams{Name: "whoami", Arguments: map[string]any{}},
		SessionBound: true,
	}
}

// salesforceContract: the Salesforce sandbox over jwt_bearer (a real
// broker); my_pipeline lists the opportunities each user owns.
func salesforceContract(t *testing.T) upstreamstest.Harness {
	key, pub := keyFile(t)
	sb, err := sfsb.New(&sfsb.Options{Apps: []sfsb.ConnectedApp{{
		Name: "Mandate", ConsumerKey: "mandate-test", ConsumerSecret: "cc-s3cret", PublicKey: pub,
		PreAuthorized: []string{"rep@acme.example", "manager@acme.example"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	return upstreamstest.Harness{
		New: func(t *testing.T) upstreams.Adapter {
			cfg := upstreams.Config{Name: "salesforce", Kind: upstreams.KindSalesforce, URL: ts.URL, Credentials: credentials.Config{
				Flow: credentials.FlowJWTBearer, TokenURL: ts.URL + "/services/oauth2/token", ClientID: "mandate-test",
				PrivateKeyFile: key, AssertionAudience: "https://login.salesforce.com", Subject: "{{ .Email }}",
			}}
			return newAdapter(t, cfg, upstreams.Deps{Credentials: resttest.BrokerSource(t, cfg, io.Discard)})
		},
		Users: [2]upstreamstest.User{
			{Identity: user("user-rita", "rep@acme.example"), Want: wantIDs("opportunities", "id", sfsb.OppAcmeRenewal, sfsb.OppAcmeExpansion)},
			{Identity: user("user-morgan", "manager@acme.example"), Want: wantIDs("opportunities", "id", sfsb.OppInitechPlatform)},
		},
		Call: sdk.CallToolParams{Name: "my_pipeline"},
	}
}

// servicenowContract: the ServiceNow sandbox over jwt_bearer (a real
// broker); my_incidents follows the instance's ACLs.
func servicenowContract(t *testing.T) upstreamstest.Harness {
	key, pub := keyFile(t)
	sb, err := snsb.New(&snsb.Options{Apps: []snsb.OAuthApp{{
		Name: "Mandate", ClientID: "mandate", ClientSecret: "s3cret", JWTKeys: []crypto.PublicKey{pub}, UserField: "email",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	return upstreamstest.Harness{
		New: func(t *testing.T) upstreams.Adapter {
			cfg := upstreams.Config{Name: "servicenow", Kind: upstreams.KindServiceNow, URL: ts.URL, Credentials: credentials.Config{
				Flow: credentials.FlowJWTBearer, TokenURL: ts.URL + "/oauth_token.do", ClientID: "mandate", ClientSecret: "s3cret",
				PrivateKeyFile: key, Subject: "{{ .Email }}",
			}}
			return newAdapter(t, cfg, upstreams.Deps{Credentials: resttest.BrokerSource(t, cfg, io.Discard)})
		},
		Users: [2]upstreamstest.User{
			// Every incident each may read, newest first.
			{Identity: user("user-rita", "rep@acme.example"), Want: wantIDs("records", "sys_id", snsb.IncVPN, snsb.IncLaptop)},
			{Identity: user("user-ivy", "it.agent@acme.example"), Want: wantIDs("records", "sys_id", snsb.IncEmail, snsb.IncPrinter, snsb.IncDashboard, snsb.IncCRMReport, snsb.IncVPN, snsb.IncLaptop)},
		},
		Call: sdk.CallToolParams{Name: "my_incidents", Arguments: map[string]any{"relation": "any", "active_only": false}},
	}
}
