package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// KBAudience is the audience of tokens the kb upstream accepts: the gateway
// obtains them from the IdP by RFC 8693 token exchange.
const KBAudience = "https://kb.acme.example"

// article is one knowledge-base article; Roles empty means every employee.
type article struct {
	ID, Title, Body string
	Roles           []string
}

var articles = []article{
	{ID: "KB0001", Title: "Reset your VPN client", Body: "Quit the VPN client, delete the profile, sign in again with your company account."},
	{ID: "KB0002", Title: "Laptop won't boot after an update", Body: "Hold the power button for 10 s, then boot into recovery and roll back the last update."},
	{ID: "KB0003", Title: "Discount approval matrix", Body: "Up to 10%: rep. Up to 20%: sales manager. Above: VP Sales.", Roles: []string{"sales"}},
	{ID: "KB0004", Title: "Forecast review checklist", Body: "Check stage, close date and next step of every open opportunity of your team.", Roles: []string{"sales-manager"}},
	{ID: "KB0005", Title: "Escalating a P1 incident", Body: "Page the on-call engineer, open a bridge, update the incident every 30 minutes.", Roles: []string{"it"}},
}

// kbCaller is who the kb server believes is calling: the claims of the
// exchanged token it verified.
type kbCaller struct {
	Subject string
	Email   string
	Roles   []string
}

type kbCallerKey struct{}

func (a article) visibleTo(c kbCaller) bool {
	if len(a.Roles) == 0 {
		return true
	}
	for _, r := range a.Roles {
		if slices.Contains(c.Roles, r) {
			return true
		}
	}
	return false
}

// ArticleRef is one search hit.
type ArticleRef struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// SearchOutput is the structured result of kb's search_articles tool.
type SearchOutput struct {
	// Caller is the subject of the token kb received (the platform identity).
	Caller   string       `json:"caller"`
	Articles []ArticleRef `json:"articles"`
}

type searchInput struct {
	Query string `json:"query,omitempty" jsonschema:"words to look for in titles and bodies; empty lists every article you may read"`
}

type getInput struct {
	ID string `json:"id" jsonschema:"the article id, e.g. KB0001"`
}

// newKBServer is the example internal MCP upstream: a knowledge base whose
// answers depend on the caller's roles, read from the token it verified.
func newKBServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "acme-kb", Title: "Acme knowledge base", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "search_articles",
		Title:       "Search knowledge articles",
		Description: "Searches the knowledge base; returns only the articles the caller's roles may read.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in searchInput) (*mcp.CallToolResult, SearchOutput, error) {
		c, _ := ctx.Value(kbCallerKey{}).(kbCaller)
		out := SearchOutput{Caller: c.Subject, Articles: []ArticleRef{}}
		q := strings.ToLower(strings.TrimSpace(in.Query))
		for _, a := range articles {
			if a.visibleTo(c) && (q == "" || strings.Contains(strings.ToLower(a.Title+" "+a.Body), q)) {
				out.Articles = append(out.Articles, ArticleRef{ID: a.ID, Title: a.Title})
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d article(s) for %s:\n", len(out.Articles), c.Email)
		for _, a := range out.Articles {
			fmt.Fprintf(&b, "- %s %s\n", a.ID, a.Title)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}}, out, nil
	})
	mcp.AddTool(s, &mcp.Tool{
		Name:        "get_article",
		Title:       "Read a knowledge article",
		Description: "Returns one article by id, if the caller's roles may read it.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in getInput) (*mcp.CallToolResult, any, error) {
		c, _ := ctx.Value(kbCallerKey{}).(kbCaller)
		for _, a := range articles {
			if a.ID == in.ID && a.visibleTo(c) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Title + "\n\n" + a.Body}}}, nil, nil
			}
		}
		r := &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("no article %q that you may read", in.ID)}}}
		return r, nil, nil
	})
	return s
}

// kbHandler serves the kb MCP server at /mcp behind a resource-server check:
// a bearer JWT from issuer, signed with a key of its JWKS, unexpired, whose
// aud contains KBAudience. The user's own gateway token (aud = the gateway)
// is refused, so the gateway must exchange it.
func kbHandler(ctx context.Context, issuer, jwksURL string, log *slog.Logger) http.Handler {
	keys := oidc.NewRemoteKeySet(ctx, jwksURL)
	verifier := oidc.NewVerifier(issuer, keys, &oidc.Config{ClientID: KBAudience, SupportedSigningAlgs: []string{oidc.RS256}})
	server := newKBServer()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	mux := http.NewServeMux()
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || raw == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kb"`)
			http.Error(w, "bearer token required", http.StatusUnauthorized)
			return
		}
		tok, err := verifier.Verify(r.Context(), raw)
		if err != nil {
			log.Debug("kb: token refused", "error", err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="kb", error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		var claims struct {
			Email string   `json:"email"`
			Roles []string `json:"roles"`
		}
		if err := tok.Claims(&claims); err != nil {
			http.Error(w, "invalid token claims", http.StatusUnauthorized)
			return
		}
		c := kbCaller{Subject: tok.Subject, Email: claims.Email, Roles: claims.Roles}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), kbCallerKey{}, c)))
	}))
	return mux
}

// serve runs h on ln until ctx is done.
func serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) func() {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("demo server stopped", "addr", ln.Addr().String(), "error", err.Error())
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
		<-done
	}
}
