package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/mandate-gw/mandate/internal/identity"
)

// Broker defaults.
const (
	DefaultCacheSize = 10000
	// DefaultInvalidGrantBackoff is how long a non-interactive invalid_grant
	// for one key is answered from memory before the server is asked again
	// (only while the user presents the same inbound token).
	DefaultInvalidGrantBackoff = 5 * time.Second
)

// Exchange outcomes passed to BrokerOptions.OnExchange.
const (
	OutcomeHit     = "hit"     // served from the cache
	OutcomeOK      = "ok"      // exchanged at the token endpoint
	OutcomeError   = "error"   // the exchange failed
	OutcomeBackoff = "backoff" // a recent invalid_grant answered from memory
)

// ErrNoIdentity is returned (wrapped in *Error) when a per-user flow runs
// without an identity in the context.
var ErrNoIdentity = errors.New("no authenticated user in the request context")

// BrokerOptions configure a Broker. The zero value works.
type BrokerOptions struct {
	// HTTPClient calls token endpoints. Default: a clone of
	// http.DefaultTransport. Redirects are never followed, whatever its
	// CheckRedirect (the broker uses a copy with its own): the token request
	// carries the user's token and the client's secret.
	HTTPClient *http.Client
	// Logger receives one debug record per exchange and a warning per
	// failed one; never a token or secret. Default: discard.
	Logger *slog.Logger
	// CacheSize bounds the number of cached tokens (LRU). Default 10000.
	CacheSize int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// TracerProvider, when set, gets a span per exchange (upstream, flow,
	// token endpoint, outcome, OAuth error, platform subject; never the
	// token). Cache hits add an event to the caller's span.
	TracerProvider trace.TracerProvider
	// OnExchange, when set, is called once per Token call with the
	// upstream, the flow and an Outcome* value; use it for metrics. It must
	// be fast and safe for concurrent use.
	OnExchange func(upstream, flow, outcome string)
	// OnGrantRefresh, when set, is told each time the authorization_code
	// flow redeemed a user's refresh token at a platform: err nil (renewed,
	// platformSubject the user there) or the refusal that broke the grant.
	// The gateway writes it into the audit chain.
	OnGrantRefresh func(ctx context.Context, e GrantRefresh)
	// InvalidGrantBackoff overrides DefaultInvalidGrantBackoff; negative
	// disables the back-off.
	InvalidGrantBackoff time.Duration

	// Per-user grants (flow authorization_code).

	// Grants is where users' grants live. Without it an authorization_code
	// upstream answers every call with an error saying so.
	Grants GrantStore
	// RedirectURL is Mandate's callback page for platform consents (the
	// connect service's), registered with dynamic client registration and
	// listed in Mandate's client ID metadata document.
	RedirectURL string
	// ClientMetadataURL is the https URL where Mandate publishes its client
	// ID metadata document (the gateway serves it); used as the client id
	// at authorization servers that support such documents
	// (client_id_metadata_document_supported). Empty: not used.
	ClientMetadataURL string
	// ClientName names Mandate in dynamic registrations. Default "Mandate".
	ClientName string
	// Clients keeps dynamic client registrations shared by replicas. Nil:
	// each process registers on its own (once per authorization server).
	Clients ClientRegistry
}

// Broker obtains and caches platform tokens for every upstream. Build one per
// process and keep it across configuration reloads: Sources built from a new
// configuration share its cache. Safe for concurrent use.
type Broker struct {
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time
	tracer     trace.Tracer
	onExchange func(upstream, flow, outcome string)
	onRefresh  func(ctx context.Context, e GrantRefresh)
	backoff    time.Duration

	cache *lru.Cache[[32]byte, *entry]
	mu    sync.Mutex // serialises cache writes (store, invalidate, purge)
	// gens count purges per shard of users (hash of issuer and subject):
	// a token fetched while its user's shard was purged is not cached,
	// and a purge of one user does not keep other users' tokens from the
	// cache.
	gens    [genShards]atomic.Uint64
	genSeed maphash.Seed
	group   singleflight.Group

	grants      GrantStore
	redirectURL string
	metadataURL string
	clientName  string
	clients     ClientRegistry
	registered  sync.Map // registration key → *registration (when clients is nil)
	connectors  sync.Map // upstream → Connector of the last Source built for it
}

// entry is one cached token or one remembered invalid_grant.
type entry struct {
	tok      *Token
	err      *Error
	errFor   [32]byte // hash of the subject token the error was for
	expires  time.Time
	issuer   string
	subject  string
	upstream string
}

// NewBroker returns a Broker.
func NewBroker(opts BrokerOptions) *Broker {
	b := &Broker{
		log:        opts.Logger,
		now:        opts.Now,
		onExchange: opts.OnExchange,
		onRefresh:  opts.OnGrantRefresh,
		backoff:    opts.InvalidGrantBackoff,
		genSeed:    maphash.MakeSeed(),

		grants:      opts.Grants,
		redirectURL: opts.RedirectURL,
		metadataURL: opts.ClientMetadataURL,
		clientName:  orString(opts.ClientName, "Mandate"),
		clients:     opts.Clients,
	}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		b.client = &c
	} else {
		b.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	b.tracer = tp.Tracer("github.com/mandate-gw/mandate/upstreams/credentials")
	if b.backoff == 0 {
		b.backoff = DefaultInvalidGrantBackoff
	}
	size := opts.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	b.cache, _ = lru.New[[32]byte, *entry](size) // only fails for size <= 0
	return b
}

// Purge drops every cached token of the user (issuer, subject) on every
// upstream, e.g. when the user is revoked, and returns how many were
// dropped. Exchanges in flight when Purge runs are not cached.
func (b *Broker) Purge(issuer, subject string) int {
	return b.purgeWhere(b.gen(issuer, subject), func(e *entry) bool {
		return e.issuer == issuer && e.subject == subject && (e.tok == nil || !e.tok.ServiceAccount)
	})
}

// PurgeUpstream drops the cached token of the user (issuer, subject) at
// one upstream and returns how many entries were dropped (0 or 1 per
// configuration of it): the gateway calls it when the user's grant there
// changed (connected, disconnected, revoked) on any replica. Exchanges in
// flight are not cached.
func (b *Broker) PurgeUpstream(issuer, subject, upstream string) int {
	return b.purgeWhere(b.gen(issuer, subject), func(e *entry) bool {
		return e.upstream == upstream && e.issuer == issuer && e.subject == subject
	})
}

// PurgeUpstreamAll drops every user's cached tokens of upstream (per-user
// grant changes may have been missed: the tokens are re-read from the
// grants). It returns how many were dropped.
func (b *Broker) PurgeUpstreamAll(upstream string) int {
	return b.purgeWhere(nil, func(e *entry) bool { return e.upstream == upstream })
}

// genShards is the number of purge-generation shards.
const genShards = 256

// gen is the purge generation of the user's shard (shard 0 for no user:
// service accounts).
func (b *Broker) gen(issuer, subject string) *atomic.Uint64 {
	if issuer == "" && subject == "" {
		return &b.gens[0]
	}
	var h maphash.Hash
	h.SetSeed(b.genSeed)
	h.WriteString(issuer)
	h.WriteByte(0)
	h.WriteString(subject)
	return &b.gens[h.Sum64()%genShards]
}

// purgeWhere drops the cached tokens whose entry matches and bumps the
// purge generation of shard (every shard when nil), so that exchanges in
// flight for those users are not cached.
func (b *Broker) purgeWhere(shard *atomic.Uint64, match func(*entry) bool) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if shard != nil {
		shard.Add(1)
	} else {
		for i := range b.gens {
			b.gens[i].Add(1)
		}
	}
	n := 0
	for _, k := range b.cache.Keys() {
		if e, ok := b.cache.Peek(k); ok && match(e) {
			b.cache.Remove(k)
			n++
		}
	}
	return n
}

// Connector returns the Connector (the user's side of per-user grants) of
// the last Source built for upstream, when its flow is
// authorization_code. The gateway may instead ask its own Source:
// ConnectorOf.
func (b *Broker) Connector(upstream string) (Connector, bool) {
	c, ok := b.connectors.Load(upstream)
	if !ok {
		return nil, false
	}
	return c.(Connector), true
}

// ConnectorOf returns src's Connector when its flow is authorization_code.
func ConnectorOf(src Source) (Connector, bool) {
	if s, ok := src.(*source); ok {
		if c, ok := s.fl.(Connector); ok {
			return c, true
		}
	}
	return nil, false
}

// Len returns the number of cached entries (tokens and remembered errors).
func (b *Broker) Len() int { return b.cache.Len() }

// Source builds the credentials source of one upstream. It validates cfg,
// looks its flow up in the registry (flowTypes), parses the flow's own
// configuration and builds the flow, which reads the secret, key,
// certificate and subject map files and compiles the subject template; call
// it again on reload. The returned Source shares the broker's cache and
// single-flight group.
func (b *Broker) Source(upstream string, cfg Config) (Source, error) {
	path := "upstreams[" + upstream + "].credentials"
	if err := cfg.Validate(path); err != nil {
		return nil, err
	}
	ft := lookupFlow(cfg.Flow) // not nil after Validate
	s := &source{b: b, upstream: upstream, flowName: ft.Name, perUser: !ft.ServiceAccount}
	fc := ft.Parse(ft, &cfg)
	if fc == nil { // flow none
		b.connectors.Delete(upstream)
		return s, nil
	}
	t := fc.timing()
	s.skew, s.timeout, s.defLifetime = t.CacheSkew, t.Timeout, t.DefaultLifetime
	if cc := clientOf(fc); cc != nil {
		s.endpoint = endpointLabel(cc.TokenURL)
	}
	fl, err := fc.newFlow(&flowEnv{b: b, upstream: upstream, src: s})
	if err != nil {
		return nil, buildError(path, err)
	}
	s.fl, s.flowName, s.perUser = fl, fl.Name(), !fl.ServiceAccount()
	s.prefix = cacheKey(upstream, fc) // after newFlow: it records what it read
	if c, ok := fl.(Connector); ok {
		b.connectors.Store(upstream, c)
	} else {
		b.connectors.Delete(upstream)
	}
	return s, nil
}

// clientOf returns the ClientConfig embedded in fc, or nil.
func clientOf(fc FlowConfig) *ClientConfig {
	if c, ok := fc.(interface{ client() *ClientConfig }); ok {
		return c.client()
	}
	return nil
}

func (c *ClientConfig) client() *ClientConfig { return c }

// cacheKey digests the upstream, the flow's name and its whole parsed
// configuration (every field of its FlowConfig, defaults applied, as JSON;
// fields tagged json:"-", the secrets, are left out so that rotating a
// client secret keeps the users' cached tokens), so a changed configuration
// misses the cache.
func cacheKey(upstream string, fc FlowConfig) [32]byte {
	j, err := json.Marshal(fc)
	if err != nil { // plain strings, bools, durations, lists and bytes: cannot fail
		panic("credentials: encoding the configuration for its cache key: " + err.Error())
	}
	h := sha256.New()
	for _, b := range [][]byte{[]byte("mandate-credentials-v3"), []byte(upstream), []byte(fc.FlowName()), j} {
		h.Write(b)
		h.Write([]byte{0})
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// endpointLabel is the token URL without query, for spans and logs.
func endpointLabel(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// source is the Source of one upstream: cache → single-flight → flow.
type source struct {
	b           *Broker
	upstream    string
	flowName    string
	perUser     bool
	prefix      [32]byte
	fl          Flow // nil for flow none
	skew        time.Duration
	timeout     time.Duration
	defLifetime time.Duration
	endpoint    string
}

var _ Source = (*source)(nil)

func (s *source) identity(ctx context.Context) (*identity.Identity, error) {
	if !s.perUser {
		return nil, nil
	}
	id := identity.FromContext(ctx)
	if id == nil || id.Subject == "" {
		return nil, &Error{Upstream: s.upstream, Flow: s.flowName, Err: ErrNoIdentity}
	}
	return id, nil
}

// key is SHA-256(config digest, issuer, subject).
func (s *source) key(id *identity.Identity) [32]byte {
	var buf [256]byte
	b := append(buf[:0], s.prefix[:]...)
	if id != nil {
		b = append(b, id.Issuer...)
		b = append(b, 0)
		b = append(b, id.Subject...)
	}
	return sha256.Sum256(b)
}

func (s *source) report(outcome string) {
	if s.b.onExchange != nil {
		s.b.onExchange(s.upstream, s.flowName, outcome)
	}
}

// Token implements Source.
func (s *source) Token(ctx context.Context) (Result, error) {
	if s.fl == nil {
		return Result{}, nil
	}
	id, err := s.identity(ctx)
	if err != nil {
		return Result{}, err
	}
	key := s.key(id)
	if e, ok := s.b.cache.Get(key); ok && s.b.now().Before(e.expires) {
		if e.tok != nil {
			s.report(OutcomeHit)
			if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
				sp.AddEvent("credentials.cache_hit", trace.WithAttributes(
					attribute.String("mandate.upstream", s.upstream), attribute.String("credentials.flow", s.flowName)))
			}
			return Result{Token: e.tok, CacheHit: true}, nil
		}
		if e.err != nil && e.errFor == rawHash(id) {
			s.report(OutcomeBackoff)
			return Result{}, e.err
		}
	}
	return s.miss(ctx, id, key)
}

// miss waits for the key's single flight, or the caller's ctx. It is a
// separate function so that key does not escape on the hit path.
func (s *source) miss(ctx context.Context, id *identity.Identity, key [32]byte) (Result, error) {
	ch := s.b.group.DoChan(string(key[:]), func() (v any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = &Error{Upstream: s.upstream, Flow: s.flowName, Err: fmt.Errorf("panic during exchange: %v", p)}
			}
		}()
		return s.fetch(ctx, id, key)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Result{}, r.Err
		}
		fr := r.Val.(fetched)
		return Result{Token: fr.tok, CacheHit: fr.hit}, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("credentials for upstream %q: waiting for token exchange: %w", s.upstream, context.Cause(ctx))
	}
}

type fetched struct {
	tok *Token
	hit bool
}

// fetch runs inside the single flight for key: one exchange, bounded by the
// source's own timeout and detached from the first caller's cancellation.
func (s *source) fetch(callerCtx context.Context, id *identity.Identity, key [32]byte) (fetched, error) {
	now := s.b.now()
	// A flight that finished between our cache miss and this one started
	// has already stored a token.
	if e, ok := s.b.cache.Peek(key); ok && e.tok != nil && now.Before(e.expires) {
		s.report(OutcomeHit)
		return fetched{tok: e.tok, hit: true}, nil
	}
	gen := s.b.gen(idKey(id)).Load()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(callerCtx), s.timeout)
	defer cancel()
	ctx, span := s.b.tracer.Start(ctx, "credentials.exchange", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("mandate.upstream", s.upstream),
			attribute.String("credentials.flow", s.flowName),
			attribute.String("credentials.token_endpoint", s.endpoint),
			attribute.Bool("credentials.cache_hit", false),
		))
	defer span.End()
	start := time.Now()

	tok, err := s.fl.Exchange(ctx, id)
	elapsed := time.Since(start)
	if err != nil {
		var oe *Error
		if !errors.As(err, &oe) {
			oe = &Error{Err: err}
		}
		oe.Upstream, oe.Flow = s.upstream, s.flowName
		if id != nil {
			oe.User = id.Subject
		}
		if oe.Err != nil && errors.Is(oe.Err, context.DeadlineExceeded) {
			oe.Retryable = true
		}
		span.SetAttributes(attribute.String("credentials.outcome", OutcomeError), attribute.String("oauth.error", oe.Code),
			attribute.Bool("credentials.interaction_required", oe.Interaction), attribute.Int("http.response.status_code", oe.Status))
		span.SetStatus(codes.Error, oe.Code)
		s.report(OutcomeError)
		attrs := []any{"upstream", s.upstream, "flow", s.flowName, "user", userOf(id),
			"oauth_error", oe.Code, "status", oe.Status, "interaction_required", oe.Interaction, "duration", elapsed, "error", oe.Error()}
		if oe.redirectTo != "" {
			attrs = append(attrs, "redirect_to", oe.redirectTo)
		}
		// A user who has not connected their account yet is the normal
		// start of per-user grants, not an operational problem.
		level := slog.LevelWarn
		if cre := (*ConsentRequiredError)(nil); errors.As(oe, &cre) {
			level = slog.LevelInfo
		}
		s.b.log.Log(ctx, level, "token exchange failed", attrs...)
		if oe.Code == "invalid_grant" && !oe.Interaction && s.b.backoff > 0 {
			s.store(key, &entry{err: oe, errFor: rawHash(id), expires: s.b.now().Add(s.b.backoff)}, id, gen)
		}
		return fetched{}, oe
	}
	tok.Flow = s.flowName
	span.SetAttributes(attribute.String("credentials.outcome", OutcomeOK),
		attribute.String("credentials.platform_subject", tok.PlatformSubject),
		attribute.Bool("credentials.service_account", tok.ServiceAccount))
	s.report(OutcomeOK)
	s.b.log.Debug("token exchanged", "upstream", s.upstream, "flow", s.flowName, "user", userOf(id),
		"platform_subject", tok.PlatformSubject, "expiry", tok.Expiry, "duration", elapsed)

	now = s.b.now()
	exp := tok.Expiry
	if exp.IsZero() {
		exp = now.Add(s.defLifetime)
	}
	if id != nil && !id.Expiry.IsZero() && id.Expiry.Before(exp) {
		exp = id.Expiry
	}
	exp = exp.Add(-s.skew)
	if now.Before(exp) {
		s.store(key, &entry{tok: tok, expires: exp}, id, gen)
	}
	return fetched{tok: tok}, nil
}

// idKey is the issuer and subject of id ("" for a service account).
func idKey(id *identity.Identity) (issuer, subject string) {
	if id == nil {
		return "", ""
	}
	return id.Issuer, id.Subject
}

func (s *source) store(key [32]byte, e *entry, id *identity.Identity, gen uint64) {
	if id != nil {
		e.issuer, e.subject = id.Issuer, id.Subject
	}
	e.upstream = s.upstream
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.gen(idKey(id)).Load() != gen {
		return // purged while in flight
	}
	s.b.cache.Add(key, e)
}

// Invalidate implements Source.
func (s *source) Invalidate(ctx context.Context, stale *Token) {
	if s.fl == nil {
		return
	}
	id, err := s.identity(ctx)
	if err != nil {
		return
	}
	key := s.key(id)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if e, ok := s.b.cache.Peek(key); ok && (stale == nil || e.tok == stale) {
		s.b.cache.Remove(key)
	}
}

func rawHash(id *identity.Identity) [32]byte {
	if id == nil {
		return [32]byte{}
	}
	return sha256.Sum256([]byte(id.RawToken()))
}

func userOf(id *identity.Identity) string {
	if id == nil {
		return "(service account)"
	}
	return id.Subject
}
