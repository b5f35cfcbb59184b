package demo

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/gateway"
)

// TestGeneratedConfig: the written config.yaml is what `mandate validate`
// accepts (gateway.LoadConfig), describes the running demo, refers to its
// secrets by file (mode 0600) and contains none of them.
func TestGeneratedConfig(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dir := t.TempDir()
	d, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.ConfigPath != filepath.Join(dir, ConfigFile) {
		t.Errorf("ConfigPath %s", d.ConfigPath)
	}
	onDisk, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(d.Config) {
		t.Error("config.yaml on disk differs from the bytes the gateway runs")
	}
	cfg, err := gateway.LoadConfig(d.ConfigPath)
	if err != nil {
		t.Fatalf("mandate validate would reject the generated config: %v", err)
	}
	if cfg.MCPURL() != d.MCPURL || cfg.Identity.Issuer != d.Issuer {
		t.Errorf("config says MCP URL %s issuer %s; the demo runs %s %s", cfg.MCPURL(), cfg.Identity.Issuer, d.MCPURL, d.Issuer)
	}
	kinds := map[string]string{}
	for _, u := range cfg.Upstreams {
		kinds[u.Name] = u.Kind + "/" + u.Credentials.Flow
	}
	want := map[string]string{"salesforce": "salesforce/jwt_bearer", "servicenow": "servicenow/token_exchange", "kb": "mcp/token_exchange"}
	for k, v := range want {
		if kinds[k] != v {
			t.Errorf("upstream %s: %s, want %s", k, kinds[k], v)
		}
	}
	if cfg.Audit.Path != d.AuditPath {
		t.Errorf("audit path %s, want %s", cfg.Audit.Path, d.AuditPath)
	}
	if !cfg.AuthorizationServer.Enabled || cfg.AuthorizationServer.IdP.ClientID != GatewayClientID ||
		!cfg.AuthorizationServer.MetadataDocuments.AllowLoopbackHTTP || cfg.Storage.Driver != "sqlite" ||
		cfg.Storage.Path != filepath.Join(dir, StorageFile) || len(cfg.Storage.EncryptionKeys) != 1 ||
		cfg.Storage.EncryptionKeys[0].KeyFile != filepath.Join(dir, StorageKeyFile) {
		t.Errorf("authorization server / storage config: %+v %+v", cfg.AuthorizationServer, cfg.Storage)
	}
	for _, f := range []string{SalesforceKeyFile, ClientSecretFile, StorageKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
		secret, _ := os.ReadFile(filepath.Join(dir, f))
		if strings.Contains(string(d.Config), strings.TrimSpace(string(secret))) {
			t.Errorf("config.yaml contains the content of %s", f)
		}
	}
	for _, u := range d.Users {
		if strings.Contains(string(d.Config), u.Token) {
			t.Errorf("config.yaml contains %s's token", u.Name)
		}
	}
}

// TestRenderConfigQuotesPaths: odd directory names stay valid YAML.
func TestRenderConfigQuotesPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	odd := filepath.Join(dir, `my demo: "#1" 'x'`)
	if err := os.MkdirAll(odd, 0o700); err != nil {
		t.Fatal(err)
	}
	key, secret := filepath.Join(odd, SalesforceKeyFile), filepath.Join(odd, ClientSecretFile)
	for _, f := range []string{key, secret, filepath.Join(odd, TrackerSecretFile)} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(odd, StorageKeyFile), []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := renderConfig(configParams{Listen: "127.0.0.1:1", PublicURL: "http://127.0.0.1:1", Issuer: "http://127.0.0.1:2",
		TokenURL: "http://127.0.0.1:2/oauth/v2/token", SalesforceURL: "http://127.0.0.1:3", ServiceNowURL: "http://127.0.0.1:4",
		KBURL: "http://127.0.0.1:5/mcp", SalesforceKey: key, ClientSecretFile: secret, AuditPath: filepath.Join(odd, AuditFile),
		StoragePath: filepath.Join(odd, StorageFile), StorageKeyFile: filepath.Join(odd, StorageKeyFile),
		TrackerURL: "http://127.0.0.1:6/mcp", TrackerAuthURL: "http://127.0.0.1:7/authorize", TrackerTokenURL: "http://127.0.0.1:7/oauth/token",
		TrackerSecretFile: filepath.Join(odd, TrackerSecretFile)},
		filepath.Join(odd, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.ParseConfig("config.yaml", data, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if cfg.Audit.Path != filepath.Join(odd, AuditFile) || cfg.Upstreams[0].Credentials.PrivateKeyFile != key ||
		cfg.Storage.Path != filepath.Join(odd, StorageFile) || cfg.Storage.EncryptionKeys[0].KeyFile != filepath.Join(odd, StorageKeyFile) {
		t.Errorf("paths changed in YAML: %q %q %q", cfg.Audit.Path, cfg.Upstreams[0].Credentials.PrivateKeyFile, cfg.Storage.Path)
	}
}

// TestPortInUse: a taken port of any component is a *PortInUseError that
// names the port and the flag that moves it, and nothing stays running.
func TestPortInUse(t *testing.T) {
	t.Parallel()
	for _, comp := range Components {
		t.Run(comp, func(t *testing.T) {
			t.Parallel()
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			port := taken.Addr().(*net.TCPAddr).Port
			// The other components get fixed free ports, to check that
			// they are released after the failure.
			free := func() int {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				return ln.Addr().(*net.TCPAddr).Port
			}
			p := Ports{Gateway: free(), IdP: free(), Salesforce: free(), ServiceNow: free(), KB: free(), Tracker: free(), TrackerAS: free()}
			switch comp {
			case CompGateway:
				p.Gateway = port
			case CompIdP:
				p.IdP = port
			case CompSalesforce:
				p.Salesforce = port
			case CompServiceNow:
				p.ServiceNow = port
			case CompKB:
				p.KB = port
			case CompTracker:
				p.Tracker = port
			case CompTrackerAS:
				p.TrackerAS = port
			}
			d, err := Start(testCtx(t), Options{Dir: t.TempDir(), Ports: p})
			if err == nil {
				d.Close()
				t.Fatal("Start succeeded on a taken port")
			}
			var pe *PortInUseError
			if !errors.As(err, &pe) || pe.Component != comp || pe.Port != port {
				t.Fatalf("error %v (%T), want a PortInUseError for %s port %d", err, err, comp, port)
			}
			msg := err.Error()
			for _, want := range []string{"port " + strconv.Itoa(port), "already in use", PortFlags[comp] + " N", "--port-base N"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			for _, other := range []int{p.Gateway, p.IdP, p.Salesforce, p.ServiceNow, p.KB, p.Tracker, p.TrackerAS} {
				if other == port {
					continue
				}
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(other))
				if err != nil {
					t.Errorf("port %d still held after the failed start: %v", other, err)
					continue
				}
				ln.Close()
			}
		})
	}
}
