package demo

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// TestKBVerifiesTokens: kb accepts only the IdP's tokens whose aud is kb,
// and answers from the roles of the token's user.
func TestKBVerifiesTokens(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	var users []devidp.User
	for _, u := range Users {
		users = append(users, devidp.User{ID: u.Name, Username: u.Name, Email: u.Email, Roles: u.Roles})
	}
	idp, err := devidp.Start(ctx, devidp.Options{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	srv := httptest.NewServer(kbHandler(ctx, idp.Issuer(), idp.JWKSURL(), slog.New(slog.DiscardHandler)))
	defer srv.Close()

	connect := func(token string) (*mcp.ClientSession, error) {
		hc := &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
		c := mcp.NewClient(&mcp.Implementation{Name: "kb-test", Version: "1"}, nil)
		return c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL + "/mcp", HTTPClient: hc, MaxRetries: -1}, nil)
	}
	token := func(user, aud string) string {
		tok, err := idp.Token(ctx, user, devidp.TokenOptions{Audience: []string{aud}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	for name, tok := range map[string]string{
		"no token":            "",
		"gateway audience":    token("rita", "http://127.0.0.1:8080/mcp"),
		"servicenow audience": token("rita", ServiceNowClientID),
		"not a JWT":           "opaque-token",
	} {
		if cs, err := connect(tok); err == nil {
			cs.Close()
			t.Errorf("%s: kb accepted the connection", name)
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
	}

	for user, want := range map[string][]string{
		"rita":   {"KB0001", "KB0002", "KB0003"},
		"morgan": {"KB0001", "KB0002", "KB0003", "KB0004"},
		"ivy":    {"KB0001", "KB0002", "KB0005"},
		"oscar":  {"KB0001", "KB0002"},
	} {
		cs, err := connect(token(user, KBAudience))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_articles", Arguments: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		var out SearchOutput
		raw, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range out.Articles {
			got = append(got, a.ID)
		}
		if d := cmp.Diff(want, got); d != "" || out.Caller != user {
			t.Errorf("%s: caller %q, articles (-want +got):\n%s", user, out.Caller, d)
		}
		// get_article refuses an article the user's roles may not read.
		res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_article", Arguments: map[string]any{"id": "KB0005"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.IsError != (user != "ivy") {
			t.Errorf("%s: get_article KB0005 IsError=%v", user, res.IsError)
		}
		cs.Close()
	}
}
