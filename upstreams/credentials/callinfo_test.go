package credentials

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/callinfo"
)

// The credentials transport records the credential it attaches — flow,
// platform subject, service account, cache hit — in the operation's
// callinfo, which the gateway's audit record reads; adapters record nothing
// themselves.
func TestTransportRecordsCredential(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	do := func(src Source, ctx context.Context) callinfo.Snapshot {
		t.Helper()
		ctx, info := callinfo.NewContext(ctx)
		req, _ := http.NewRequestWithContext(ctx, "GET", up.URL+"/api", nil)
		resp, err := (&http.Client{Transport: Transport(src, nil)}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return info.Snapshot()
	}
	ts := exchangeServer(t, 3600, nil)
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	alice := user(context.Background(), "alice", time.Now().Add(time.Hour))
	if got, want := do(src, alice), (callinfo.Snapshot{Flow: FlowTokenExchange, Exchanges: 1}); got != want {
		t.Errorf("first call: callinfo = %+v, want %+v", got, want)
	}
	if got, want := do(src, alice), (callinfo.Snapshot{Flow: FlowTokenExchange, CacheHit: true}); got != want {
		t.Errorf("second call: callinfo = %+v, want %+v", got, want)
	}

	cs := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		writeJSON(w, 200, map[string]any{"access_token": "svc-token", "token_type": "Bearer", "expires_in": 600})
	})
	svc := mustSource(t, NewBroker(BrokerOptions{}), "reports", Config{Flow: FlowClientCredentials, TokenURL: cs.TokenURL(), ClientID: "svc", ClientSecret: "x"})
	if got, want := do(svc, alice), (callinfo.Snapshot{Flow: FlowClientCredentials, PlatformSubject: "svc", ServiceAccount: true, Exchanges: 1}); got != want {
		t.Errorf("service account: callinfo = %+v, want %+v", got, want)
	}
	none := mustSource(t, NewBroker(BrokerOptions{}), "public", Config{Flow: FlowNone})
	if got := do(none, alice); got != (callinfo.Snapshot{}) {
		t.Errorf("flow none: callinfo = %+v, want nothing recorded", got)
	}
}

// Package credentials is the only writer of credential facts: no non-test
// file elsewhere in the module calls callinfo's Info.Credential.
func TestOnlyCredentialsRecordsCredentialFacts(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	self := filepath.Join(root, "upstreams", "credentials")
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || filepath.Dir(path) == self {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Credential" {
					t.Errorf("%s: calls .Credential: credential facts are recorded only by package credentials (Transport / Authorize)", fset.Position(call.Pos()))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("walked only %d files", files)
	}
}
