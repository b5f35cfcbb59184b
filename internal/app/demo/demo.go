package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mandate-gw/mandate/gateway"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/connect"
	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/app/tracker"
	sfsandbox "github.com/mandate-gw/mandate/upstreams/salesforce/sandbox"
	snsandbox "github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
)

// Defaults.
const (
	// DefaultPortBase is the gateway's port in `mandate-demo`; the IdP,
	// Salesforce, ServiceNow, kb, tracker and the tracker's authorization
	// server take the next six ports (PortCount in all).
	DefaultPortBase = 8080
	// PortCount is how many consecutive ports --port-base uses.
	PortCount = 7
	// DefaultTokenLifetime is the lifetime of the printed user tokens.
	DefaultTokenLifetime = 8 * time.Hour
	// DefaultDirName prefixes the new private directory under
	// os.TempDir() (mandate-demo-<random>, mode 0700) that holds the
	// generated files when Options.Dir is empty.
	DefaultDirName = "mandate-demo"

	// SalesforceConsumerKey is the connected app the gateway signs
	// jwt_bearer assertions for.
	SalesforceConsumerKey = "mandate-demo"
	// ServiceNowClientID is the client id of the OIDC provider configured on
	// the ServiceNow sandbox: tokens exchanged for this audience log in as
	// the ServiceNow user with the same email.
	ServiceNowClientID = "acme-servicenow"
	// GatewayClientID is the gateway's confidential client at the IdP: it
	// signs users in (authorization code flow, redirect URI public URL +
	// /oauth/callback, IdP tokens for the MCP URL, refresh tokens) and
	// exchanges their tokens (RFC 8693).
	GatewayClientID = "mandate"

	// File names inside the demo directory.
	ConfigFile        = "config.yaml"
	AuditFile         = "audit.jsonl"
	SalesforceKeyFile = "salesforce-key.pem"
	ClientSecretFile  = "idp-client-secret"
	// TrackerSecretFile is Mandate's client secret at the tracker's
	// authorization server.
	TrackerSecretFile = "tracker-client-secret"
	// SalesforceUsersFile maps IdP subjects to Salesforce usernames.
	SalesforceUsersFile = "salesforce-users.yaml"
	// StorageFile is the authorization server's SQLite database;
	// StorageKeyFile the key that seals its secrets (base64 of 32 random
	// bytes, new each run, mode 0600).
	StorageFile    = "mandate.db"
	StorageKeyFile = "storage.key"
)

// Ports are the loopback TCP ports of the demo's seven servers. 0 means any
// free port (what Tour uses by default).
type Ports struct {
	Gateway, IdP, Salesforce, ServiceNow, KB int
	// Tracker is the tracker MCP server, TrackerAS its authorization server.
	Tracker, TrackerAS int
}

// PortsFrom returns base, base+1, … base+6 for gateway, IdP, Salesforce,
// ServiceNow, kb, tracker and the tracker's authorization server.
// PortsFrom(0) is all-ephemeral.
func PortsFrom(base int) Ports {
	if base == 0 {
		return Ports{}
	}
	return Ports{Gateway: base, IdP: base + 1, Salesforce: base + 2, ServiceNow: base + 3, KB: base + 4,
		Tracker: base + 5, TrackerAS: base + 6}
}

// Component names, as they appear in PortInUseError.
const (
	CompGateway    = "gateway"
	CompIdP        = "idp"
	CompSalesforce = "salesforce"
	CompServiceNow = "servicenow"
	CompKB         = "kb"
	CompTracker    = "tracker"
	CompTrackerAS  = "tracker-as"
)

// Components lists the demo's servers in port order (PortsFrom).
var Components = []string{CompGateway, CompIdP, CompSalesforce, CompServiceNow, CompKB, CompTracker, CompTrackerAS}

// PortFlags are the `mandate-demo` flags that set each component's port.
var PortFlags = map[string]string{
	CompGateway:    "--gateway-port",
	CompIdP:        "--idp-port",
	CompSalesforce: "--salesforce-port",
	CompServiceNow: "--servicenow-port",
	CompKB:         "--kb-port",
	CompTracker:    "--tracker-port",
	CompTrackerAS:  "--tracker-as-port",
}

// PortInUseError says a demo port is taken, and which flag moves it.
type PortInUseError struct {
	Component string // CompGateway, CompIdP, ...
	Port      int
	Err       error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d (demo %s) is already in use on 127.0.0.1: stop what is using it, or choose another port with %s N (or move every demo port with --port-base N)",
		e.Port, e.Component, PortFlags[e.Component])
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// Options configure a demo. The zero value works: files in a new private
// directory under os.TempDir(), every server on a free port, 8 h tokens.
type Options struct {
	// Dir receives config.yaml, the Salesforce signing key, the IdP client
	// secret and the audit log, each mode 0600. It is created 0700 when
	// missing; one that other users may write to is refused. Default: a
	// new directory per run, os.MkdirTemp(os.TempDir(), "mandate-demo-*")
	// (0700), left in place for inspection after the demo stops.
	Dir string
	// Ports of the servers; zero fields are free ports.
	Ports Ports
	// TokenLifetime of the users' gateway tokens. Default 8h.
	TokenLifetime time.Duration
	// Logger receives the servers' operational logs. Default: discard.
	Logger *slog.Logger
}

// User is a demo user and a ready bearer token for the gateway.
type User struct {
	Name  string // IdP username and subject (rita, morgan, ivy, oscar)
	Email string // also the Salesforce username and ServiceNow email
	// GivenName and FamilyName are the IdP's name claims; About says who
	// the user is in the story.
	GivenName, FamilyName, About string
	Roles                        []string
	// Token is an access token of the demo IdP with aud = the MCP URL.
	Token string
}

// Users are the demo's IdP users. Their emails are the users of the
// Salesforce and ServiceNow sandboxes' seed data.
var Users = []User{
	{Name: "rita", Email: "rep@acme.example", GivenName: "Rita", FamilyName: "Rep", About: "sales rep", Roles: []string{"sales"}},
	{Name: "morgan", Email: "manager@acme.example", GivenName: "Morgan", FamilyName: "Manager", About: "sales manager", Roles: []string{"sales", "sales-manager"}},
	{Name: "ivy", Email: "it.agent@acme.example", GivenName: "Ivy", FamilyName: "Agent", About: "IT service desk", Roles: []string{"it"}},
	{Name: "oscar", Email: "outsider@acme.example", GivenName: "Oscar", FamilyName: "Outsider", About: "marketing", Roles: []string{}},
}

// Demo is a running demo: IdP, sandboxes, kb and the gateway.
type Demo struct {
	// Dir holds the generated files.
	Dir string
	// ConfigPath is the gateway's configuration file; Config its bytes
	// (what the gateway runs).
	ConfigPath string
	Config     []byte
	// AuditPath is the gateway's audit log.
	AuditPath string
	// MCPURL is the gateway's MCP endpoint.
	MCPURL string
	// Issuer, SalesforceURL, ServiceNowURL and KBURL locate the other servers.
	Issuer, SalesforceURL, ServiceNowURL, KBURL string
	// TrackerURL is the tracker's MCP endpoint; TrackerIssuer its
	// authorization server (which asks each user's consent).
	TrackerURL, TrackerIssuer string
	// Users with their tokens.
	Users []User

	gw        *gateway.Gateway
	idp       *devidp.IdP
	tracker   *tracker.Tracker
	cancel    context.CancelFunc
	served    chan error
	stops     []func()
	closeOnce sync.Once
	closeErr  error
}

// Start starts every part of the demo on loopback and returns once the
// gateway is ready. A taken port is a *PortInUseError. Close stops it.
func Start(ctx context.Context, opts Options) (_ *Demo, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := demoDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	lifetime := opts.TokenLifetime
	if lifetime <= 0 {
		lifetime = DefaultTokenLifetime
	}

	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &Demo{Dir: dir, cancel: cancel}
	defer func() {
		if err != nil {
			_ = d.Close()
		}
	}()

	// Listeners first: every URL is known before anything is configured.
	listen := func(comp string, port int) (net.Listener, error) {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			if isAddrInUse(err) {
				return nil, &PortInUseError{Component: comp, Port: port, Err: err}
			}
			return nil, fmt.Errorf("demo %s: %w", comp, err)
		}
		d.stops = append(d.stops, func() { _ = ln.Close() })
		return ln, nil
	}
	gwLn, err := listen(CompGateway, opts.Ports.Gateway)
	if err != nil {
		return nil, err
	}
	sfLn, err := listen(CompSalesforce, opts.Ports.Salesforce)
	if err != nil {
		return nil, err
	}
	snLn, err := listen(CompServiceNow, opts.Ports.ServiceNow)
	if err != nil {
		return nil, err
	}
	kbLn, err := listen(CompKB, opts.Ports.KB)
	if err != nil {
		return nil, err
	}
	trLn, err := listen(CompTracker, opts.Ports.Tracker)
	if err != nil {
		return nil, err
	}
	base := func(ln net.Listener) string { return "http://" + ln.Addr().String() }
	d.SalesforceURL, d.ServiceNowURL, d.KBURL = base(sfLn), base(snLn), base(kbLn)

	// The Salesforce connected app's key, generated while the IdP starts.
	keyc := make(chan error, 1)
	var sfKey *rsa.PrivateKey
	go func() {
		var err error
		sfKey, err = rsa.GenerateKey(rand.Reader, 2048)
		keyc <- err
	}()

	idpUsers := make([]devidp.User, len(Users))
	for i, u := range Users {
		idpUsers[i] = devidp.User{ID: u.Name, Username: u.Name, Email: u.Email, Roles: slices.Clone(u.Roles),
			GivenName: u.GivenName, FamilyName: u.FamilyName}
	}
	d.idp, err = devidp.Start(rctx, devidp.Options{
		Addr:           net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Ports.IdP)),
		Users:          idpUsers,
		Logger:         log,
		ExchangePolicy: exchangePolicy,
	})
	if kerr := <-keyc; err == nil && kerr != nil {
		err = fmt.Errorf("generating the Salesforce signing key: %w", kerr)
	}
	if err != nil {
		if isAddrInUse(err) {
			return nil, &PortInUseError{Component: CompIdP, Port: opts.Ports.IdP, Err: err}
		}
		return nil, err
	}
	d.Issuer = d.idp.Issuer()
	d.MCPURL = base(gwLn) + gateway.MCPPath

	// Secrets the configuration refers to by file.
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	clientSecret := hex.EncodeToString(secret)
	if err := d.idp.AddClient(devidp.ClientConfig{
		ID: GatewayClientID, Secret: clientSecret,
		RedirectURIs: []string{base(gwLn) + authserver.PathCallback},
		Audience:     []string{d.MCPURL},
	}); err != nil {
		return nil, err
	}
	secretPath := filepath.Join(dir, ClientSecretFile)
	if err := writePrivate(secretPath, []byte(clientSecret+"\n")); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(sfKey)
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, SalesforceKeyFile)
	if err := writePrivate(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}

	// The key that seals the authorization server's stored secrets. A new
	// key per run: a database left by an earlier run cannot be opened, so
	// it is removed too (its sessions belonged to that run's IdP).
	storageKey := make([]byte, 32)
	if _, err := rand.Read(storageKey); err != nil {
		return nil, err
	}
	storageKeyPath := filepath.Join(dir, StorageKeyFile)
	if err := writePrivate(storageKeyPath, []byte(base64.StdEncoding.EncodeToString(storageKey)+"\n")); err != nil {
		return nil, err
	}
	storagePath := filepath.Join(dir, StorageFile)
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(storagePath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing the previous demo database: %w", err)
		}
	}

	// The Salesforce username of each IdP subject.
	var users bytes.Buffer
	users.WriteString("# IdP subject: Salesforce username\n")
	for _, u := range Users {
		fmt.Fprintf(&users, "%q: %q\n", u.Name, u.Email)
	}
	usersPath := filepath.Join(dir, SalesforceUsersFile)
	if err := writePrivate(usersPath, users.Bytes()); err != nil {
		return nil, err
	}

	// Salesforce: the connected app trusts the key and pre-authorizes the
	// demo users (the sandbox's seed has the same emails as usernames).
	sf, err := sfsandbox.New(&sfsandbox.Options{BaseURL: d.SalesforceURL, Logger: log})
	if err != nil {
		return nil, err
	}
	var preauth []string
	for _, u := range Users {
		preauth = append(preauth, u.Email)
	}
	if err := sf.RegisterApp(sfsandbox.ConnectedApp{Name: "Mandate demo", ConsumerKey: SalesforceConsumerKey,
		PublicKey: &sfKey.PublicKey, PreAuthorized: preauth}); err != nil {
		return nil, err
	}
	d.stops = append(d.stops, serve(rctx, sfLn, sf, log))

	// ServiceNow: trusts the IdP's tokens whose aud is its client id.
	sn, err := snsandbox.New(&snsandbox.Options{BaseURL: d.ServiceNowURL, Logger: log,
		OIDCProviders: []snsandbox.OIDCProvider{{Name: "Acme IdP", Issuer: d.Issuer, ClientID: ServiceNowClientID,
			JWKSURL: d.idp.JWKSURL(), UserClaim: "email", UserField: "email"}}})
	if err != nil {
		return nil, err
	}
	d.stops = append(d.stops, serve(rctx, snLn, sn, log))

	// kb: an internal MCP server that accepts only tokens for itself.
	d.stops = append(d.stops, serve(rctx, kbLn, kbHandler(rctx, d.Issuer, d.idp.JWKSURL(), log), log))

	// tracker: an MCP server whose own authorization server asks each
	// user's consent; Mandate is its confidential client.
	d.tracker, err = tracker.Start(rctx, tracker.Options{Listener: trLn,
		ASAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Ports.TrackerAS)), Logger: log})
	if err != nil {
		if isAddrInUse(err) {
			return nil, &PortInUseError{Component: CompTrackerAS, Port: opts.Ports.TrackerAS, Err: err}
		}
		return nil, err
	}
	d.TrackerURL, d.TrackerIssuer = d.tracker.MCPURL, d.tracker.AS.Issuer()
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	trackerSecret := hex.EncodeToString(secret)
	if err := d.tracker.RegisterClient(GatewayClientID, trackerSecret, []string{base(gwLn) + connect.PathCallback}); err != nil {
		return nil, err
	}
	trackerSecretPath := filepath.Join(dir, TrackerSecretFile)
	if err := writePrivate(trackerSecretPath, []byte(trackerSecret+"\n")); err != nil {
		return nil, err
	}

	// The gateway runs exactly the file it writes.
	d.ConfigPath = filepath.Join(dir, ConfigFile)
	d.AuditPath = filepath.Join(dir, AuditFile)
	d.Config, err = renderConfig(configParams{
		Listen: gwLn.Addr().String(), PublicURL: base(gwLn), Issuer: d.Issuer, TokenURL: d.idp.TokenURL(),
		SalesforceURL: d.SalesforceURL, ServiceNowURL: d.ServiceNowURL, KBURL: d.KBURL + "/mcp",
		SalesforceKey: keyPath, ClientSecretFile: secretPath, AuditPath: d.AuditPath, SalesforceUsers: usersPath,
		StoragePath: storagePath, StorageKeyFile: storageKeyPath,
		TrackerURL: d.TrackerURL, TrackerAuthURL: d.tracker.AS.AuthorizationURL(), TrackerTokenURL: d.tracker.AS.TokenURL(),
		TrackerSecretFile: trackerSecretPath,
	}, d.ConfigPath)
	if err != nil {
		return nil, err
	}
	if err := writePrivate(d.ConfigPath, d.Config); err != nil {
		return nil, fmt.Errorf("writing the demo configuration: %w", err)
	}
	// A new audit log per run (the tour reads back what it produced).
	if err := os.Remove(d.AuditPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing the previous demo audit log: %w", err)
	}
	cfg, err := gateway.ParseConfig(d.ConfigPath, d.Config, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("the generated configuration %s is invalid (a bug in the demo):\n%w", d.ConfigPath, err)
	}
	d.gw, err = gateway.New(rctx, cfg, gateway.Options{Logger: log, ConfigPath: d.ConfigPath})
	if err != nil {
		return nil, fmt.Errorf("starting the gateway: %w", err)
	}
	d.served = make(chan error, 1)
	go func() { d.served <- d.gw.ServeListener(rctx, gwLn) }()
	for !d.gw.Ready() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-d.served:
			d.served = nil
			return nil, fmt.Errorf("gateway: %w", err)
		case <-time.After(5 * time.Millisecond):
		}
	}

	for _, u := range Users {
		tok, err := d.idp.Token(ctx, u.Name, devidp.TokenOptions{Audience: []string{d.MCPURL}, Lifetime: lifetime})
		if err != nil {
			return nil, fmt.Errorf("token for %s: %w", u.Name, err)
		}
		u.Roles = slices.Clone(u.Roles)
		u.Token = tok
		d.Users = append(d.Users, u)
	}
	return d, nil
}

// User returns the demo user called name.
func (d *Demo) User(name string) (User, bool) {
	for _, u := range d.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// Close stops the gateway (flushing the audit log), the sandboxes, kb and
// the IdP. It is safe to call more than once.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		if d.served != nil {
			if err := <-d.served; err != nil {
				d.closeErr = err
			}
		}
		if d.gw != nil {
			if err := d.gw.Close(); err != nil && d.closeErr == nil {
				d.closeErr = err
			}
		}
		if d.tracker != nil { // before its listener is closed in stops
			_ = d.tracker.Close()
		}
		for i := len(d.stops) - 1; i >= 0; i-- {
			d.stops[i]()
		}
		if d.idp != nil {
			_ = d.idp.Close()
		}
	})
	return d.closeErr
}

// exchangePolicy lets the gateway's client exchange user tokens for the two
// upstreams that take IdP tokens, and nothing else.
func exchangePolicy(_ context.Context, clientID, _ string, audience, _ []string) error {
	if clientID != GatewayClientID {
		return devidp.ErrAccessDenied("client " + clientID + " may not exchange tokens")
	}
	if len(audience) == 0 {
		return devidp.ErrInvalidTarget("an audience is required")
	}
	for _, a := range audience {
		if a != KBAudience && a != ServiceNowClientID {
			return devidp.ErrInvalidTarget("unknown audience " + a)
		}
	}
	return nil
}

// demoDir returns the absolute directory for the demo's files: dir, created
// 0700 if missing and refused if other users may write to it (they could
// swap the configuration the running demo re-reads, or its keys); or, when
// dir is empty, a new private directory (0700) under os.TempDir() —
// never a fixed shared path that another local user could create first.
func demoDir(dir string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", DefaultDirName+"-")
		if err != nil {
			return "", fmt.Errorf("demo directory: %w", err)
		}
		return d, nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("demo directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("demo directory: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return "", fmt.Errorf("demo directory %s is writable by other users (mode %04o): choose a private directory (chmod 700), or leave out --dir for a new private one", dir, perm)
	}
	return dir, nil
}

func writePrivate(path string, data []byte) error {
	// Remove first: an existing file may have looser permissions.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
