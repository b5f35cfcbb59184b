// Package gateway assembles Mandate: it loads and validates the
// configuration, builds the parts — the HTTP front (gateway/front),
// authentication (gateway/authn), the catalog (gateway/catalog), sessions
// (gateway/sessions), the dispatch pipeline (gateway/dispatch), audit
// (gateway/audit) and telemetry — wires them into one http.Handler, and
// runs it: serving, reloads, admin endpoints, readiness, shutdown. It is
// the only package that builds gin engines.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/catalog"
	connectpages "github.com/mandate-gw/mandate/gateway/connect"
	"github.com/mandate-gw/mandate/gateway/dispatch"
	"github.com/mandate-gw/mandate/gateway/front"
	"github.com/mandate-gw/mandate/gateway/sessions"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/errtext"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Version is the build version, set by the linker (-X) or "dev".
var Version = "dev"

// Options are run-time dependencies; the zero value works.
type Options struct {
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// HTTPClient is used to reach the IdP. Default: 10s timeout client.
	HTTPClient *http.Client
	// AuditOutput receives audit records when audit.sink is stdout
	// (default os.Stdout). Tests pass a buffer.
	AuditOutput io.Writer
	// NewAdapter overrides how adapters are built (tests).
	NewAdapter AdapterFactory
	// UpstreamTransport is the base HTTP transport to upstreams and token
	// endpoints. Default: a clone of http.DefaultTransport.
	UpstreamTransport http.RoundTripper
	// TracerProvider overrides telemetry.traces (tests use an in-memory exporter).
	TracerProvider trace.TracerProvider
	// TraceOutput receives spans when telemetry.traces is stdout (default os.Stdout).
	TraceOutput io.Writer
	// ConfigPath is the file the configuration came from; it enables
	// reloads (SIGHUP, file watch, POST /admin/reload).
	ConfigPath string

	auditRetry time.Duration // tests: first retry delay of a failing audit sink
	// dispatchHook, when set, sees the dispatcher before anything is
	// served (tests: ConnectLink, the clock).
	dispatchHook func(*dispatch.Dispatcher)
}

// Gateway is one running configuration of Mandate.
type Gateway struct {
	cfg        *Config
	log        *slog.Logger
	auth       *authn.Authenticator
	server     *mcp.Server
	mcpHandler http.Handler
	handler    http.Handler
	admin      http.Handler // with server.admin_listen: /admin/, /metrics; else nil

	metricsHandler http.Handler
	onAuthFailure  func(r *http.Request, e *authn.Error, requestID, remote string)
	authAudit      *front.AuthFailureLimiter

	// Process-wide parts that survive reloads.
	broker     *credentials.Broker
	catalog    *catalog.Cache
	limiter    *policy.Limiter
	audit      *audit.Logger
	newAdapter AdapterFactory
	upTrans    http.RoundTripper

	tel        *telemetry
	configPath string
	reloadMu   sync.Mutex
	state      atomic.Pointer[state]
	gen        atomic.Uint64
	stateless  bool
	peers      *front.Peers // nil unless server.session.peer_url is set
	sessions   *sessions.Store
	dispatch   *dispatch.Dispatcher

	// store and authServer are set when authorization_server is enabled.
	store      store.Store
	authServer *authserver.Server
	connect    *connectpages.Service // with the authorization server: per-user grants' pages

	origin     string // scheme://host of public_url
	publicHost string // host name of public_url
	pathPrefix string // path of public_url, "" or "/prefix"
	cancel     context.CancelFunc
}

// New builds a gateway for cfg and starts loading the IdP's keys.
func New(ctx context.Context, cfg *Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.Server.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("server.public_url: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &Gateway{
		cfg:        cfg,
		log:        opts.Logger,
		origin:     u.Scheme + "://" + u.Host,
		publicHost: u.Hostname(),
		pathPrefix: strings.TrimSuffix(u.Path, "/"),
		cancel:     cancel,
	}
	g.auth = authn.New(cfg.Identity, authn.Options{HTTPClient: opts.HTTPClient, Logger: opts.Logger})
	g.stateless = cfg.Server.Session.Mode == SessionStateless
	g.configPath = opts.ConfigPath
	g.upTrans = opts.UpstreamTransport
	if g.upTrans == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		g.upTrans = t
	}
	g.catalog = catalog.NewCache(opts.Logger)
	g.sessions = sessions.NewStore(sessions.Options{Stateless: g.stateless, IdleTimeout: cfg.Server.Session.IdleTimeout,
		MaxPerUser: cfg.Server.Session.MaxPerUser, Logger: opts.Logger, Catalog: g.catalog})
	if err := g.setupTelemetry(ctx, cfg.Telemetry, opts); err != nil {
		cancel()
		return nil, err
	}
	if err := g.openStore(ctx, cfg); err != nil {
		cancel()
		return nil, err
	}
	g.broker = credentials.NewBroker(g.brokerOptions(cfg, opts))
	g.newAdapter = opts.NewAdapter
	if g.newAdapter == nil {
		g.newAdapter = g.defaultAdapter
	}
	var err2 error
	if g.limiter, err2 = policy.NewLimiter(cfg.Policy.RateLimits, policy.LimiterOptions{}); err2 != nil {
		cancel()
		g.closeStore()
		return nil, err2
	}
	if g.audit, err2 = audit.New(cfg.Audit, audit.Options{Stdout: opts.AuditOutput, Logger: opts.Logger,
		RetryMin: opts.auditRetry, RetryMax: 4 * opts.auditRetry}); err2 != nil {
		cancel()
		g.closeStore()
		return nil, fmt.Errorf("audit: %w", err2)
	}
	if err := g.startAuthServer(ctx, cfg, opts); err != nil {
		cancel()
		_ = g.audit.Close()
		g.closeStore()
		return nil, err
	}
	st, err := g.buildState(cfg, g.gen.Add(1))
	if err != nil {
		cancel()
		_ = g.audit.Close()
		g.closeStore()
		return nil, err
	}
	g.state.Store(st)
	for _, w := range cfg.Warnings() { // also printed by mandate validate
		g.log.Warn("configuration warning", "warning", w)
	}
	g.auth.Start(ctx)
	if g.stateless {
		go g.sessions.ReapIdle(ctx)
	}

	if sc := cfg.Server.Session; sc.PeerURL != "" && !g.stateless {
		pt := http.DefaultTransport.(*http.Transport).Clone()
		pt.MaxIdleConnsPerHost = 64
		if g.peers, err = front.NewPeers(sc.PeerURL, sc.PeerSecret.Reveal(), pt); err != nil {
			return nil, err
		}
	}
	g.dispatch = &dispatch.Dispatcher{State: func() *catalog.State { return g.state.Load().State },
		Catalog: g.catalog, Sessions: g.sessions, Audit: g.audit, Limiter: g.limiter, Log: g.log,
		Stateless: g.stateless, IdleTimeout: cfg.Server.Session.IdleTimeout, Tel: dispatch.Telemetry{
			TP: g.tel.tp, Tracer: g.tel.tracer, Prop: g.tel.prop,
			ServerDur: g.tel.serverDur, ClientDur: g.tel.clientDur, Denials: g.tel.denials}}
	if cfg.AuthorizationServer.Enabled {
		// The requestState of input_required answers: sealed under a key
		// every replica derives alike (storage.encryption_keys).
		if master, err := cfg.Storage.SealingKey(); err == nil {
			g.dispatch.StateKey = purposeKey(master, "mandate request state v1")
		}
	}
	if g.connect != nil {
		// A call that needs the user's consent at a platform answers with
		// the connect page's link; when the user connected through it, the
		// session that asked hears notifications/elicitation/complete.
		g.dispatch.ConnectLink = g.connect.Link
		g.connect.Completed = func(elicitationID string, id *identity.Identity, upstream string) {
			g.dispatch.ElicitationCompleted(context.Background(), elicitationID)
		}
	}
	if opts.dispatchHook != nil {
		opts.dispatchHook(g.dispatch)
	}
	g.server = g.newMCPServer()
	g.mcpHandler = g.tokenInfoBridge(mcp.NewStreamableHTTPHandler(
		func(*http.Request) *mcp.Server { return g.server },
		&mcp.StreamableHTTPOptions{
			Stateless:           cfg.Server.Session.Mode == SessionStateless,
			SessionTimeout:      cfg.Server.Session.IdleTimeout,
			MaxRequestBodyBytes: cfg.Server.MaxBodyBytes,
			Logger:              opts.Logger,
			// Mandate checks Host (DNS rebinding) and Origin itself, before
			// authentication, knowing public_url (go-sdk's check would
			// refuse a local proxy forwarding the public Host).
			DisableLocalhostProtection: true,
		}))
	g.onAuthFailure = g.auditAuthFailure
	g.authAudit = front.NewAuthFailureLimiter(front.AuthFailureWindow, g.auditAuthSummaries)
	main, admin := g.routes()
	g.handler = main
	if admin != nil {
		g.admin = admin
	}
	return g, nil
}

// Handler returns the HTTP handler of the main listener: every endpoint,
// except /admin/ and /metrics when server.admin_listen is set.
func (g *Gateway) Handler() http.Handler { return g.handler }

// AdminHandler returns the handler of server.admin_listen (/admin/,
// /metrics, /healthz, /readyz), or nil when it is not set.
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

// Ready reports whether the gateway can authenticate users.
func (g *Gateway) Ready() bool { return g.auth.Ready() }

// Close stops background work, closes upstream sessions and flushes the audit log.
func (g *Gateway) Close() error {
	g.cancel()
	g.sessions.CloseAll()
	if st := g.state.Load(); st != nil {
		st.Close()
	}
	g.tel.close(context.Background())
	g.authAudit.FlushNow() // counted authentication failures, before the log closes
	g.closeStore()
	return g.audit.Close()
}

// traceOutput is where stdout traces go.
func (o Options) traceOutput() io.Writer {
	if o.TraceOutput != nil {
		return o.TraceOutput
	}
	return os.Stdout
}

// upstreamHealth reports, per upstream, whether its last operation succeeded
// (adapters that track health), for /readyz and metrics.
func (g *Gateway) upstreamHealth() map[string]bool {
	out := map[string]bool{}
	st := g.state.Load()
	if st == nil {
		return out
	}
	for _, u := range st.Ups {
		if h, ok := upstreams.HealthOf(u.Adapter); ok {
			out[u.Name] = h.Healthy()
		}
	}
	return out
}

// upstreamDetails is the per-upstream health for /readyz.
func (g *Gateway) upstreamDetails() map[string]any {
	out := map[string]any{}
	st := g.state.Load()
	if st == nil {
		return out
	}
	for _, u := range st.Ups {
		if hs, ok := upstreams.HealthOf(u.Adapter); ok {
			hs.LastError = errtext.StripAddrs(hs.LastError) // /readyz is unauthenticated
			out[u.Name] = hs
		} else {
			out[u.Name] = map[string]any{"upstream": u.Name, "kind": u.Cfg.Kind}
		}
	}
	return out
}

// Serve runs the gateway for cfg until ctx is done, then shuts down
// gracefully: the listener closes and in-flight requests get up to
// server.shutdown_grace to finish.
func Serve(ctx context.Context, cfg *Config, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	g, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err := g.Close(); err != nil {
			opts.Logger.Error("shutdown", "error", err.Error()) // e.g. audit records not written
		}
	}()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen %s: %w", cfg.Server.Listen, err)
	}
	go g.watchReloads(ctx)
	return g.ServeListener(ctx, ln)
}

// watchReloads reloads the configuration on SIGHUP (which also reopens the
// audit file, for log rotation) and when the configuration file changes.
func (g *Gateway) watchReloads(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var lastMod time.Time
	if fi, err := os.Stat(g.configPath); err == nil {
		lastMod = fi.ModTime()
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	reload := func(why string) {
		if g.configPath == "" {
			return
		}
		warnings, err := g.reloadAudited(ctx, why, "", "")
		if err != nil {
			g.log.Error("configuration rejected; the previous one keeps serving", "trigger", why, "error", err.Error())
			return
		}
		for _, w := range warnings {
			g.log.Warn("reload: "+w, "trigger", why)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := g.audit.Reopen(); err != nil {
				g.log.Error("reopening audit log failed", "error", err)
			}
			reload("SIGHUP")
		case <-tick.C:
			if g.configPath == "" {
				continue
			}
			fi, err := os.Stat(g.configPath)
			if err != nil || fi.ModTime().Equal(lastMod) {
				continue
			}
			lastMod = fi.ModTime()
			reload("file change")
		}
	}
}

// ServeListener serves on ln, and on server.admin_listen when set, until
// ctx is done, then shuts down gracefully.
func (g *Gateway) ServeListener(ctx context.Context, ln net.Listener) error {
	srvs := []*http.Server{g.httpServer(g.handler)}
	lns := []net.Listener{ln}
	if g.admin != nil {
		aln, err := net.Listen("tcp", g.cfg.Server.AdminListen)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("server.admin_listen %s: %w", g.cfg.Server.AdminListen, err)
		}
		srvs, lns = append(srvs, g.httpServer(g.admin)), append(lns, aln)
		g.log.Info("admin API and metrics on their own listener", "admin_listen", aln.Addr().String())
	}
	errc := make(chan error, len(srvs))
	for i, srv := range srvs {
		go func() { errc <- srv.Serve(lns[i]) }()
	}
	g.log.Info("mandate serving", "listen", ln.Addr().String(), "mcp_url", g.cfg.MCPURL(),
		"issuer", g.cfg.Identity.Issuer, "session_mode", g.cfg.Server.Session.Mode, "version", Version)
	var first error
	select {
	case first = <-errc:
	case <-ctx.Done():
		g.log.Info("shutting down", "grace", g.cfg.Server.ShutdownGrace)
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.Server.ShutdownGrace)
	defer cancel()
	var err error
	for _, srv := range srvs {
		if serr := srv.Shutdown(sctx); errors.Is(serr, context.DeadlineExceeded) {
			g.log.Warn("grace period over; closing remaining connections")
			_ = srv.Close()
		} else if serr != nil && err == nil {
			err = serr
		}
	}
	if first != nil {
		return first // a listener failed: the others were shut down
	}
	for range srvs {
		if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	return err
}

func (g *Gateway) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: g.cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       g.cfg.Server.KeepAliveTimeout,
		MaxHeaderBytes:    g.cfg.Server.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}
