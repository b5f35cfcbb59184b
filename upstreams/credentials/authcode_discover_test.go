package credentials

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/testenv/testhydra"
)

// protectedMCP is a go-sdk MCP server protected per the MCP authorization
// spec with h as its authorization server (testhydra.ProtectedMCP: 401s
// name the metadata at metaPath, tokens checked by Hydra's introspection,
// tool whoami answers the caller's platform subject).
func protectedMCP(t *testing.T, h *testhydra.Hydra, metaPath string) (mcpURL string) {
	t.Helper()
	p, err := testhydra.ProtectedMCP(h, testhydra.ProtectedOptions{MetadataPath: metaPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p.URL
}

// bearer adds the platform token, as Mandate's mcp adapter does.
type bearer struct{ tok string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

func callWhoAmI(t *testing.T, mcpURL, tok string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "mandate", Version: "test"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: &http.Client{Transport: bearer{tok}}}, nil)
	if err != nil {
		t.Fatalf("connecting to the protected MCP server with the platform token: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError || len(res.Content) != 1 {
		t.Fatalf("whoami: %+v %v", res, err)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

// discover: Mandate finds Hydra from the protected MCP server's 401 and
// metadata, registers itself at Hydra's /oauth2/register (shared through
// the store), and a user's grant then calls the server as that user.
func TestAuthorizationCodeDiscoverHydra(t *testing.T) {
	t.Parallel()
	h := startHydraWith(t, testhydra.DynamicRegistrationEnv...)
	// Not at a well-known path: only the 401 challenge names it.
	mcpURL := protectedMCP(t, h, "/meta/tracker-prm")
	grants := sqliteGrants(t)()
	var registrations atomic.Int64
	countReg := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/register") {
			registrations.Add(1)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	opts := BrokerOptions{Grants: grants, Clients: grants, RedirectURL: acRedirect, HTTPClient: countReg}
	cfg := Config{Flow: FlowAuthorizationCode, Discover: true, Platform: PlatformMCP, UpstreamURL: mcpURL}
	b := NewBroker(opts)
	src := mustSource(t, b, "tracker", cfg)
	conn, _ := ConnectorOf(src)

	_, err := src.Token(acUser("rita"))
	wantConsent(t, err, "no_grant")
	// The connect page asks for the authorization URL: discovery runs.
	authURL, err := conn.AuthCodeURL(context.Background(), "st", "ch", acRedirect, "")
	if err != nil || !strings.HasPrefix(authURL, h.PublicURL()+"oauth2/auth?") || !strings.Contains(authURL, "resource="+url.QueryEscape(mcpURL)) {
		t.Fatalf("authorization URL %q (%v): not Hydra's, or without the resource", authURL, err)
	}
	if n := registrations.Load(); n != 1 {
		t.Fatalf("%d registrations at Hydra, want 1", n)
	}
	if got := strings.Join(conn.Scopes(), " "); got != "offline_access mcp" {
		t.Errorf("scopes from the protected resource metadata: %q", got)
	}

	g := connectAt(t, h, conn, "rita")
	r, err := src.Token(acUser("rita"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Token.PlatformSubject != "platform-rita" || g.ClientID == "" {
		t.Fatalf("token for %q, client %q", r.Token.PlatformSubject, g.ClientID)
	}
	if who := callWhoAmI(t, mcpURL, r.Token.AccessToken.Reveal()); who != "platform-rita" {
		t.Fatalf("the MCP server sees %q, want platform-rita", who)
	}

	// Another replica (a broker built from the same configuration and
	// store) reuses the stored registration and the grant.
	clock := &fakeClock{t: time.Now()}
	opts2 := opts
	opts2.Now = clock.Now
	b2 := NewBroker(opts2)
	src2 := mustSource(t, b2, "tracker", cfg)
	r2, err := src2.Token(acUser("rita"))
	if err != nil || r2.Token.AccessToken != r.Token.AccessToken {
		t.Fatalf("second replica: %v", err)
	}
	clock.Advance(2 * time.Hour) // expired there: refresh with the shared client
	r3, err := src2.Token(acUser("rita"))
	if err != nil || r3.Token.AccessToken == r.Token.AccessToken {
		t.Fatalf("refresh on the second replica: %v", err)
	}
	if n := registrations.Load(); n != 1 {
		t.Fatalf("%d registrations at Hydra for two replicas, want 1 (shared)", n)
	}
	if who := callWhoAmI(t, mcpURL, r3.Token.AccessToken.Reveal()); who != "platform-rita" {
		t.Fatalf("after refresh the MCP server sees %q", who)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Replicas discovering the same authorization server at the same moment
// register Mandate there once (Store.Lock around the registration): the
// others wait and find it.
func TestAuthorizationCodeRegistersOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	h := startHydraWith(t, testhydra.DynamicRegistrationEnv...)
	mcpURL := protectedMCP(t, h, "/meta/tracker-prm")
	open := postgresGrants(t)
	var registrations atomic.Int64
	countReg := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/register") {
			registrations.Add(1)
			time.Sleep(50 * time.Millisecond) // widen the race
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	cfg := Config{Flow: FlowAuthorizationCode, Discover: true, Platform: PlatformMCP, UpstreamURL: mcpURL}
	var conns []Connector
	for range 4 {
		g := open()
		src := mustSource(t, NewBroker(BrokerOptions{Grants: g, Clients: g, RedirectURL: acRedirect, HTTPClient: countReg}), "tracker", cfg)
		c, _ := ConnectorOf(src)
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	urls := make([]string, len(conns))
	for i, c := range conns {
		wg.Go(func() {
			u, err := c.AuthCodeURL(context.Background(), "st", "ch", acRedirect, "")
			if err != nil {
				t.Error(err)
			}
			urls[i] = u
		})
	}
	wg.Wait()
	if n := registrations.Load(); n != 1 {
		t.Fatalf("%d registrations at Hydra by 4 replicas at once, want 1", n)
	}
	for i, u := range urls {
		if q, _ := url.Parse(u); q == nil || q.Query().Get("client_id") != mustQuery(t, urls[0], "client_id") {
			t.Errorf("replica %d uses another client: %s", i, u)
		}
	}
}

func mustQuery(t *testing.T, u, key string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query().Get(key)
}
