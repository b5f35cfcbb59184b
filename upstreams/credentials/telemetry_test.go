package credentials

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// lockedBuffer is a concurrency-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSpansAndLogsNeverCarrySecrets(t *testing.T) {
	t.Parallel()
	const clientSecret = "client-secret-value-42"
	fail := false
	var mu sync.Mutex
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		mu.Lock()
		f := fail
		mu.Unlock()
		if f {
			// A server that echoes the subject token in its description.
			oauthError(w, 400, "invalid_request", "bad subject_token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.sig and "+form.Get("subject_token"))
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": "platform-token-value", "token_type": "Bearer", "expires_in": 60})
	})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var logs lockedBuffer
	b := NewBroker(BrokerOptions{
		TracerProvider: tp,
		Logger:         slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	src := mustSource(t, b, "crm", Config{Flow: FlowTokenExchange, TokenURL: ts.TokenURL(), ClientID: "mandate", ClientSecret: clientSecret, Audience: "https://crm"})
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	parent, span := tp.Tracer("test").Start(ctx, "tools/call")
	if _, err := src.Token(parent); err != nil {
		t.Fatal(err)
	}
	if r, _ := src.Token(parent); !r.CacheHit {
		t.Fatal("want hit")
	}
	span.End()
	mu.Lock()
	fail = true
	mu.Unlock()
	_, err := src.Token(user(context.Background(), "bob", time.Now().Add(time.Hour)))
	if err == nil {
		t.Fatal("want error")
	}

	spans := rec.Ended()
	var dump strings.Builder
	var exchange sdktrace.ReadOnlySpan
	for _, s := range spans {
		fmt.Fprintf(&dump, "%s %v %v %v\n", s.Name(), s.Attributes(), s.Events(), s.Status())
		if s.Name() == "credentials.exchange" && exchange == nil {
			exchange = s
		}
	}
	if exchange == nil {
		t.Fatalf("no exchange span:\n%s", dump.String())
	}
	attrs := map[string]string{}
	for _, a := range exchange.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	for k, v := range map[string]string{"mandate.upstream": "crm", "credentials.flow": "token_exchange", "credentials.outcome": "ok", "credentials.cache_hit": "false", "credentials.token_endpoint": ts.TokenURL()} {
		if attrs[k] != v {
			t.Errorf("span attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
	if exchange.Parent().SpanID() != span.SpanContext().SpanID() {
		t.Error("exchange span is not a child of the caller's span")
	}
	if !strings.Contains(dump.String(), "credentials.cache_hit") {
		t.Error("no cache-hit event on the caller's span")
	}
	all := dump.String() + logs.String() + err.Error()
	for _, secret := range []string{"platform-token-value", "inbound-token-of-alice", "inbound-token-of-bob", clientSecret, "eyJhbGciOiJSUzI1NiJ9"} {
		if strings.Contains(all, secret) {
			t.Errorf("%q leaked into spans, logs or the error:\n%s", secret, all)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"token exchanged"`) || !strings.Contains(logs.String(), `"msg":"token exchange failed"`) {
		t.Errorf("logs lack exchange records:\n%s", logs.String())
	}
}

func TestCertificateThumbprintHeader(t *testing.T) {
	t.Parallel()
	k := testRSAKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mandate"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s, err := newAssertionSigner(k, "RS256", "", certPEM, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.sign("app", "app", "https://login.microsoftonline.com/t/oauth2/v2.0/token", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(a, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(der)
	if got := jws.Signatures[0].Protected.ExtraHeaders["x5t"]; got != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Errorf("x5t = %v", got)
	}
	other, _ := writeECKey(t)
	ek, _ := loadPrivateKey(other)
	if _, err := newAssertionSigner(ek, "ES256", "", certPEM, time.Minute); err == nil {
		t.Error("certificate of another key accepted")
	}
}

// Every Config field has a yaml key and a doc comment (the config reference
// is generated from them).
func TestConfigFieldsDocumented(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Config" {
			return true
		}
		for _, fld := range ts.Type.(*ast.StructType).Fields.List {
			for _, name := range fld.Names {
				documented[name.Name] = fld.Doc != nil && len(fld.Doc.Text()) > 10
			}
		}
		return false
	})
	rt := reflect.TypeOf(Config{})
	for i := range rt.NumField() {
		fld := rt.Field(i)
		if fld.Tag.Get("yaml") == "" {
			t.Errorf("field %s has no yaml key", fld.Name)
		}
		if !documented[fld.Name] {
			t.Errorf("field %s (%s) has no doc comment", fld.Name, fld.Tag.Get("yaml"))
		}
	}
}

func TestRedactJWTs(t *testing.T) {
	t.Parallel()
	got := redactJWTs("bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-_ here")
	if got != "bad token [token] here" {
		t.Errorf("got %q", got)
	}
}
