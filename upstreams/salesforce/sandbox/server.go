package sandbox

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults, named after the Salesforce behaviour they imitate.
const (
	// DefaultBatchSize is the number of records a query returns per page
	// (Salesforce: 2,000).
	DefaultBatchSize = 2000
	// DefaultSessionLifetime is how long an access token stays valid
	// (Salesforce's default session timeout: two hours).
	DefaultSessionLifetime = 2 * time.Hour
	// MaxAssertionLifetime is how far in the future a JWT bearer
	// assertion's exp may lie (Salesforce: three minutes).
	MaxAssertionLifetime = 3 * time.Minute
	// LatestVersion is the newest REST API version served; versions from
	// MinVersion up to it are accepted.
	LatestVersion = "66.0"
	MinVersion    = "31.0"
	// DefaultDailyRequestLimit is the org's API request allowance when
	// Options.DailyRequestLimit is 0: Enterprise Edition's base allocation
	// ("API Request Limits and Allocations",
	// https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm).
	DefaultDailyRequestLimit = 100000

	cursorTTL     = 15 * time.Minute // query locators expire after 15 minutes of inactivity
	maxCursors    = 1000
	maxSessions   = 100000
	maxFormBytes  = 64 << 10
	defaultScopes = "api"
)

// The aud a JWT bearer assertion must name when Options.Audiences is
// empty: the login URL of a production (or Developer Edition) org, or of a
// sandbox org when Options.SandboxOrg is set. The instance's own URL is not
// accepted. ("OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration",
// https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm:
// aud is https://login.salesforce.com, https://test.salesforce.com, or an
// Experience Cloud site's URL.)
var (
	DefaultAudiences    = []string{"https://login.salesforce.com"}
	SandboxOrgAudiences = []string{"https://test.salesforce.com"}
)

// ConnectedApp is a registered connected app (consumer).
type ConnectedApp struct {
	// Name is informational.
	Name string
	// ConsumerKey is the client id; JWT bearer assertions name it as iss.
	ConsumerKey string
	// ConsumerSecret authenticates the client credentials flow.
	ConsumerSecret string
	// Certificate is the "Use digital signatures" certificate; its public
	// key verifies assertions. Either Certificate or PublicKey is required
	// for the JWT bearer flow.
	Certificate *x509.Certificate
	// PublicKey verifies assertions when Certificate is nil (RSA only).
	PublicKey crypto.PublicKey
	// PreAuthorized lists usernames approved for the app ("Admin approved
	// users are pre-authorized" plus the user's profile/permission set).
	PreAuthorized []string
	// RunAsUsername enables the client credentials flow and names the user
	// it runs as; empty means "no client credentials user enabled".
	RunAsUsername string
	// Scopes granted to tokens; default ["api"].
	Scopes []string
}

// Options configure a Server. The zero value serves DefaultSeed with no
// connected apps (register them with RegisterApp).
type Options struct {
	// Seed is the org's data; nil means DefaultSeed().
	Seed *Seed
	// Apps are the registered connected apps.
	Apps []ConnectedApp
	// Audiences are the accepted aud values of JWT bearer assertions; empty
	// means DefaultAudiences, or SandboxOrgAudiences when SandboxOrg.
	Audiences []string
	// SandboxOrg makes the org a Salesforce sandbox: its users sign in at
	// https://test.salesforce.com, which is then the assertions' aud.
	SandboxOrg bool
	// BaseURL is the sandbox's external URL (instance_url, identity URLs).
	// Empty means derived from each request's Host (http://host).
	BaseURL string
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// SessionLifetime is how long access tokens stay valid; 0 means
	// DefaultSessionLifetime.
	SessionLifetime time.Duration
	// BatchSize is the largest page a query returns; 0 means
	// DefaultBatchSize. Tests set it small to exercise nextRecordsUrl.
	BatchSize int
	// DailyRequestLimit is the org's API request allowance per UTC day;
	// beyond it the REST API answers 403 REQUEST_LIMIT_EXCEEDED. Every
	// authenticated REST response reports the day's usage against it in
	// Sforce-Limit-Info. 0 means DefaultDailyRequestLimit; negative means
	// unlimited and no Sforce-Limit-Info (for load tests — a real org
	// always has an allowance).
	DailyRequestLimit int
	// Logger receives debug/info logs (never tokens); nil discards.
	Logger *slog.Logger
}

type session struct {
	userID  string
	appKey  string
	scope   string
	expires time.Time
}

type cursor struct {
	userID   string
	version  string
	records  []*orderedObj
	total    int
	lastUsed time.Time
}

// Server is the sandbox org. It implements http.Handler.
type Server struct {
	baseURL   string
	audiences []string
	now       func() time.Time
	lifetime  time.Duration
	batch     int
	log       *slog.Logger

	mu        sync.RWMutex
	orgID     string
	roles     map[string]*Role
	users     map[string]*User // by id
	usernames map[string]*User // by lower-case username
	records   map[string]map[string]any
	types     map[string]string   // id → sObject type
	order     map[string][]string // type → ids in id order
	sharing   map[string]SharingModel
	apps      map[string]*ConnectedApp
	sessions  map[string]*session
	cursors   map[string]*cursor
	viewed    map[string][]string // user id → recently viewed record ids, most recent first
	limit     int
	used      int
	usageDay  string
}

var _ http.Handler = (*Server)(nil)

// New builds a sandbox org from opts (nil opts = zero Options).
func New(opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	seed := opts.Seed
	if seed == nil {
		seed = DefaultSeed()
	}
	s := &Server{
		baseURL:   strings.TrimRight(opts.BaseURL, "/"),
		audiences: opts.Audiences,
		now:       opts.Clock,
		lifetime:  opts.SessionLifetime,
		batch:     opts.BatchSize,
		log:       opts.Logger,
		orgID:     seed.OrgID,
		roles:     map[string]*Role{},
		users:     map[string]*User{},
		usernames: map[string]*User{},
		records:   map[string]map[string]any{},
		types:     map[string]string{},
		order:     map[string][]string{},
		sharing:   DefaultSharing(),
		apps:      map[string]*ConnectedApp{},
		sessions:  map[string]*session{},
		cursors:   map[string]*cursor{},
		viewed:    map[string][]string{},
		limit:     requestLimit(opts.DailyRequestLimit),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lifetime <= 0 {
		s.lifetime = DefaultSessionLifetime
	}
	if s.batch <= 0 {
		s.batch = DefaultBatchSize
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.orgID == "" {
		s.orgID = SeedOrgID
	}
	if len(s.audiences) == 0 {
		s.audiences = DefaultAudiences
		if opts.SandboxOrg {
			s.audiences = SandboxOrgAudiences
		}
	}
	if err := s.load(seed); err != nil {
		return nil, err
	}
	for _, app := range opts.Apps {
		if err := s.RegisterApp(app); err != nil {
			return nil, err
		}
	}
	return s, nil
}

var reID = regexp.MustCompile(`^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$`)

func (s *Server) load(seed *Seed) error {
	for typ, m := range seed.Sharing {
		obj := schema[strings.ToLower(typ)]
		if obj == nil || sharingModels[obj.name] == nil {
			return fmt.Errorf("sandbox seed: sharing for unsupported sObject type %q", typ)
		}
		if !slices.Contains(sharingModels[obj.name], m) {
			return fmt.Errorf("sandbox seed: sharing model %q is not available for %s (one of %v)", m, obj.name, sharingModels[obj.name])
		}
		s.sharing[obj.name] = m
	}
	for i := range seed.Roles {
		r := seed.Roles[i]
		if r.ID == "" {
			return fmt.Errorf("sandbox seed: role %q has no id", r.Name)
		}
		s.roles[r.ID] = &r
	}
	for i := range seed.Users {
		u := seed.Users[i]
		if !reID.MatchString(u.ID) || u.Username == "" {
			return fmt.Errorf("sandbox seed: user %q needs an 18-character id and a username", u.Username)
		}
		if u.RoleID != "" && s.roles[u.RoleID] == nil {
			return fmt.Errorf("sandbox seed: user %s: unknown role %s", u.Username, u.RoleID)
		}
		key := strings.ToLower(u.Username)
		if s.usernames[key] != nil || s.users[u.ID] != nil {
			return fmt.Errorf("sandbox seed: duplicate user %s", u.Username)
		}
		s.users[u.ID] = &u
		s.usernames[key] = &u
		s.addRecord("User", map[string]any{
			"Id": u.ID, "Username": u.Username, "Name": u.Name, "Email": u.Email,
			"UserRoleId": nilIfEmpty(u.RoleID), "ManagerId": nilIfEmpty(u.ManagerID), "IsActive": !u.Inactive,
		})
	}
	for _, r := range seed.Records {
		obj := schema[strings.ToLower(r.Type)]
		if obj == nil || obj.name == "User" {
			return fmt.Errorf("sandbox seed: unsupported sObject type %q", r.Type)
		}
		fields := map[string]any{}
		for k, v := range r.Fields {
			d := obj.field(k)
			if d == nil {
				return fmt.Errorf("sandbox seed: %s has no field %q", obj.name, k)
			}
			switch v.(type) {
			case nil, string, float64, bool:
			case int:
				v = float64(v.(int))
			default:
				return fmt.Errorf("sandbox seed: %s.%s: unsupported value type %T", obj.name, d.name, v)
			}
			fields[d.name] = v
		}
		id, _ := fields["Id"].(string)
		owner, _ := fields["OwnerId"].(string)
		if !reID.MatchString(id) || s.types[id] != "" {
			return fmt.Errorf("sandbox seed: %s record has a missing, malformed or duplicate Id %q", obj.name, id)
		}
		if s.users[owner] == nil {
			return fmt.Errorf("sandbox seed: %s %s: OwnerId %q is not a user", obj.name, id, owner)
		}
		s.addRecord(obj.name, fields)
	}
	for t := range s.order {
		sort.Strings(s.order[t])
	}
	return s.loadRecentlyViewed(seed)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) addRecord(typ string, fields map[string]any) {
	id := fields["Id"].(string)
	s.records[id] = fields
	s.types[id] = typ
	s.order[typ] = append(s.order[typ], id)
}

// RegisterApp registers (or replaces) a connected app.
func (s *Server) RegisterApp(app ConnectedApp) error {
	if app.ConsumerKey == "" {
		return errors.New("sandbox: connected app needs a consumer key")
	}
	if app.Certificate != nil && app.PublicKey == nil {
		app.PublicKey = app.Certificate.PublicKey
	}
	app.PreAuthorized = slices.Clone(app.PreAuthorized)
	app.Scopes = slices.Clone(app.Scopes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if app.RunAsUsername != "" && s.usernames[strings.ToLower(app.RunAsUsername)] == nil {
		return fmt.Errorf("sandbox: connected app %s: run-as user %s does not exist", app.ConsumerKey, app.RunAsUsername)
	}
	s.apps[app.ConsumerKey] = &app
	return nil
}

// OrgID returns the organization id.
func (s *Server) OrgID() string { return s.orgID }

// RevokeAll invalidates every access token and query locator, as if every
// session had expired; the next REST call answers 401 INVALID_SESSION_ID.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
	clear(s.cursors)
}

// RevokeUser invalidates every access token of one user and reports how
// many there were.
func (s *Server) RevokeUser(username string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.usernames[strings.ToLower(username)]
	if u == nil {
		return 0
	}
	n := 0
	for tok, ss := range s.sessions {
		if ss.userID == u.ID {
			delete(s.sessions, tok)
			n++
		}
	}
	return n
}

// SetDailyRequestLimit changes the API allowance (as
// Options.DailyRequestLimit: 0 = DefaultDailyRequestLimit, negative =
// unlimited) and resets the day's usage.
func (s *Server) SetDailyRequestLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.used = requestLimit(n), 0
}

// requestLimit is the allowance Options.DailyRequestLimit n stands for
// (negative: unlimited).
func requestLimit(n int) int {
	if n == 0 {
		return DefaultDailyRequestLimit
	}
	return n
}

// IssueToken mints an access token for username without an assertion, for
// tests that exercise the REST API rather than the token endpoint.
func (s *Server) IssueToken(username string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.usernames[strings.ToLower(username)]
	if u == nil {
		return "", fmt.Errorf("sandbox: no user %s", username)
	}
	return s.newSessionLocked(u, "", defaultScopes), nil
}

func (s *Server) newSessionLocked(u *User, appKey, scope string) string {
	if len(s.sessions) >= maxSessions {
		now := s.now()
		for tok, ss := range s.sessions {
			if !now.Before(ss.expires) {
				delete(s.sessions, tok)
			}
		}
		for tok := range s.sessions { // still full: drop an arbitrary one
			if len(s.sessions) < maxSessions {
				break
			}
			delete(s.sessions, tok)
		}
	}
	tok := s.orgID[:15] + "!" + randomString(96)
	s.sessions[tok] = &session{userID: u.ID, appKey: appKey, scope: scope, expires: s.now().Add(s.lifetime)}
	return tok
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("sandbox: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// base returns the external base URL for r.
func (s *Server) base(r *http.Request) string {
	if s.baseURL != "" {
		return s.baseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func readForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, r.Body)
	return nil
}
