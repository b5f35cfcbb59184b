package sandbox

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
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

	cursorTTL     = 15 * time.Minute // query locators expire after 15 minutes of inactivity
	maxCursors    = 1000
	maxSessions   = 100000
	maxFormBytes  = 64 << 10
	defaultScopes = "api"
)

// DefaultAudiences are the login URLs a JWT bearer assertion may name as
// aud when Options.Audiences is empty, in addition to the sandbox's own
// base URL.
var DefaultAudiences = []string{"https://login.salesforce.com", "https://test.salesforce.com"}

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
	// means DefaultAudiences plus the sandbox's own base URL.
	Audiences []string
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
	// beyond it the REST API answers 403 REQUEST_LIMIT_EXCEEDED. 0 means
	// unlimited.
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
	apps      map[string]*ConnectedApp
	sessions  map[string]*session
	cursors   map[string]*cursor
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
		apps:      map[string]*ConnectedApp{},
		sessions:  map[string]*session{},
		cursors:   map[string]*cursor{},
		limit:     opts.DailyRequestLimit,
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
	return nil
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

// SetDailyRequestLimit changes the API allowance (0 = unlimited) and
// resets the day's usage.
func (s *Server) SetDailyRequestLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.used = n, 0
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

// ---- HTTP ----

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/services/oauth2/token":
		s.handleToken(w, r)
	case path == "/services/oauth2/revoke":
		s.handleRevoke(w, r)
	case path == "/services/oauth2/userinfo":
		s.handleUserInfo(w, r)
	case strings.HasPrefix(path, "/id/"):
		s.handleIdentity(w, r)
	case path == "/services/data" || path == "/services/data/":
		s.handleVersions(w, r)
	case strings.HasPrefix(path, "/services/data/v"):
		s.handleData(w, r)
	default:
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
}

type apiError struct {
	Message   string `json:"message"`
	ErrorCode string `json:"errorCode"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`[{"message":"An unexpected error occurred.","errorCode":"UNKNOWN_EXCEPTION"}]`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeAPIError writes Salesforce's REST error body: a JSON array of
// {message, errorCode}.
func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, []apiError{{Message: msg, ErrorCode: code}})
}

func writeQueryError(w http.ResponseWriter, src string, e *queryError) {
	writeAPIError(w, http.StatusBadRequest, e.code, e.format(src))
}

// authenticate resolves the bearer token ("Bearer x" or "OAuth x").
func (s *Server) authenticate(r *http.Request) (*User, *session) {
	h := r.Header.Get("Authorization")
	var tok string
	switch {
	case len(h) > 7 && strings.EqualFold(h[:7], "Bearer "):
		tok = strings.TrimSpace(h[7:])
	case len(h) > 6 && strings.EqualFold(h[:6], "OAuth "):
		tok = strings.TrimSpace(h[6:])
	default:
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[tok]
	if ss == nil {
		return nil, nil
	}
	if !s.now().Before(ss.expires) {
		delete(s.sessions, tok)
		return nil, nil
	}
	u := s.users[ss.userID]
	if u == nil || u.Inactive {
		return nil, nil
	}
	return u, ss
}

func writeInvalidSession(w http.ResponseWriter) {
	writeAPIError(w, http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
}

// countRequest charges one API request; false means the limit is exhausted.
func (s *Server) countRequest(w http.ResponseWriter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	day := s.now().UTC().Format("2006-01-02")
	if day != s.usageDay {
		s.usageDay, s.used = day, 0
	}
	if s.limit > 0 && s.used >= s.limit {
		w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", s.used, s.limit))
		return false
	}
	s.used++
	if s.limit > 0 {
		w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", s.used, s.limit))
	}
	return true
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed string) {
	w.Header().Set("Allow", allowed)
	writeAPIError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", fmt.Sprintf("HTTP Method '%s' not allowed. Allowed are %s", clip(r.Method), allowed))
}

func versionLabel(v string) string {
	return "Version " + v
}

func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET,HEAD")
		return
	}
	type version struct {
		Label   string `json:"label"`
		URL     string `json:"url"`
		Version string `json:"version"`
	}
	var out []version
	lo, _ := strconv.ParseFloat(MinVersion, 64)
	hi, _ := strconv.ParseFloat(LatestVersion, 64)
	for v := lo; v <= hi; v++ {
		vs := strconv.FormatFloat(v, 'f', 1, 64)
		out = append(out, version{Label: versionLabel(vs), URL: "/services/data/v" + vs, Version: vs})
	}
	writeJSON(w, http.StatusOK, out)
}

var reVersion = regexp.MustCompile(`^v(\d{2})\.0$`)

func validVersion(v string) bool {
	m := reVersion.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	n, _ := strconv.Atoi(m[1])
	lo, _ := strconv.Atoi(strings.TrimSuffix(MinVersion, ".0"))
	hi, _ := strconv.Atoi(strings.TrimSuffix(LatestVersion, ".0"))
	return n >= lo && n <= hi
}

func (s *Server) handleData(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/services/data/")
	version, rest, _ := strings.Cut(rest, "/")
	if !validVersion(version) {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	u, _ := s.authenticate(r)
	if u == nil {
		writeInvalidSession(w)
		return
	}
	if !s.countRequest(w) {
		writeAPIError(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
		return
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET,HEAD")
		return
	}
	switch {
	case len(parts) == 1 && (parts[0] == "query" || parts[0] == "queryAll"):
		s.handleQuery(w, r, u, version)
	case len(parts) == 2 && (parts[0] == "query" || parts[0] == "queryAll"):
		s.handleQueryMore(w, u, version, parts[1])
	case len(parts) == 1 && parts[0] == "search":
		s.handleSearch(w, r, u, version)
	case len(parts) == 3 && parts[0] == "sobjects":
		s.handleGetRecord(w, r, u, version, parts[1], parts[2])
	case len(parts) == 3 && parts[0] == "chatter" && parts[1] == "users" && parts[2] == "me":
		s.handleChatterMe(w, r, u, version)
	default:
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
}

// ---- sharing ----

func (u *User) canRead(typ string) bool {
	if typ == "User" || u.Objects == nil {
		return true
	}
	for _, o := range u.Objects {
		if strings.EqualFold(o, typ) {
			return true
		}
	}
	return false
}

// visibleLocked reports whether u may see the record (owner, or owner's role
// below u's role). Callers hold s.mu.
func (s *Server) visibleLocked(u *User, typ string, rec map[string]any) bool {
	if typ == "User" {
		return true
	}
	if !u.canRead(typ) {
		return false
	}
	owner, _ := rec["OwnerId"].(string)
	if owner == u.ID {
		return true
	}
	ou := s.users[owner]
	if ou == nil || ou.RoleID == "" || u.RoleID == "" {
		return false
	}
	role := s.roles[ou.RoleID]
	for hops := 0; role != nil && role.ParentID != "" && hops < 1000; hops++ {
		if role.ParentID == u.RoleID {
			return true
		}
		role = s.roles[role.ParentID]
	}
	return false
}

func (s *Server) evalCtxLocked(u *User) *evalCtx {
	return &evalCtx{now: s.now(), related: func(rel *relation, id string) map[string]any {
		for rid, rec := range s.lookupLocked(id) {
			if typ := s.types[rid]; typ == rel.target && s.visibleLocked(u, typ, rec) {
				return rec
			}
		}
		return nil
	}}
}

// lookupLocked finds a record by 15- or 18-character id.
func (s *Server) lookupLocked(id string) map[string]map[string]any {
	if rec, ok := s.records[id]; ok {
		return map[string]map[string]any{id: rec}
	}
	if len(id) == 15 {
		for rid, rec := range s.records {
			if rid[:15] == id {
				return map[string]map[string]any{rid: rec}
			}
		}
	}
	return nil
}

// ---- output ----

// orderedObj is a JSON object that keeps its keys in insertion order, so
// records come back with "attributes" first and fields in SELECT order.
type orderedObj struct {
	keys []string
	vals []any
}

func (o *orderedObj) set(k string, v any) {
	for i, key := range o.keys {
		if key == k {
			o.vals[i] = v
			return
		}
	}
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

func (o *orderedObj) get(k string) (any, bool) {
	for i, key := range o.keys {
		if key == k {
			return o.vals[i], true
		}
	}
	return nil, false
}

func (o *orderedObj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func attributes(version, typ, id string) *orderedObj {
	a := &orderedObj{}
	a.set("type", typ)
	a.set("url", "/services/data/"+version+"/sobjects/"+typ+"/"+id)
	return a
}

// projectLocked renders rec with the selected fields (all fields if nil).
func (s *Server) projectLocked(ctx *evalCtx, version, typ string, rec map[string]any, fields []fieldRef) *orderedObj {
	id, _ := rec["Id"].(string)
	out := &orderedObj{}
	out.set("attributes", attributes(version, typ, id))
	if fields == nil {
		obj := schema[strings.ToLower(typ)]
		for _, f := range obj.fields {
			out.set(f.name, rec[f.name])
		}
		return out
	}
	for _, f := range fields {
		if f.rel == nil {
			out.set(f.def.name, rec[f.def.name])
			continue
		}
		fk, _ := rec[f.rel.field].(string)
		var related map[string]any
		if fk != "" {
			related = ctx.related(f.rel, fk)
		}
		if related == nil {
			if _, ok := out.get(f.rel.name); !ok {
				out.set(f.rel.name, nil)
			}
			continue
		}
		cur, _ := out.get(f.rel.name)
		sub, _ := cur.(*orderedObj)
		if sub == nil {
			rid, _ := related["Id"].(string)
			sub = &orderedObj{}
			sub.set("attributes", attributes(version, f.rel.target, rid))
			out.set(f.rel.name, sub)
		}
		sub.set(f.def.name, related[f.def.name])
	}
	return out
}

// selectLocked runs a filter/order/offset/limit over one object's records as
// seen by u.
func (s *Server) selectLocked(u *User, ctx *evalCtx, obj *sobject, where expr, orderBy []orderItem, offset, limit int) []map[string]any {
	var rows []map[string]any
	for _, id := range s.order[obj.name] {
		rec := s.records[id]
		if s.visibleLocked(u, obj.name, rec) && ctx.match(rec, where) {
			rows = append(rows, rec)
		}
	}
	if len(orderBy) > 0 {
		sort.SliceStable(rows, func(i, j int) bool {
			for _, it := range orderBy {
				a, b := ctx.value(rows[i], it.f), ctx.value(rows[j], it.f)
				switch {
				case a == nil && b == nil:
					continue
				case a == nil:
					return it.nullsFirst
				case b == nil:
					return !it.nullsFirst
				}
				c := lessValue(it.f.def.typ, a, b)
				if c == 0 {
					continue
				}
				if it.desc {
					return c > 0
				}
				return c < 0
			}
			return false
		})
	}
	if offset >= len(rows) {
		return nil
	}
	rows = rows[offset:]
	if limit >= 0 && limit < len(rows) {
		rows = rows[:limit]
	}
	return rows
}

// ---- query ----

type queryResponse struct {
	TotalSize      int           `json:"totalSize"`
	Done           bool          `json:"done"`
	NextRecordsURL string        `json:"nextRecordsUrl,omitempty"`
	Records        []*orderedObj `json:"records"`
}

var reBatchSize = regexp.MustCompile(`(?i)batchSize\s*=\s*(\d+)`)

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request, u *User, version string) {
	src := r.URL.Query().Get("q")
	if strings.TrimSpace(src) == "" {
		writeAPIError(w, http.StatusBadRequest, "MALFORMED_QUERY", "A query string has to be specified")
		return
	}
	q, qerr := parseSOQL(src)
	if qerr != nil {
		writeQueryError(w, src, qerr)
		return
	}
	if !u.canRead(q.obj.name) {
		writeQueryError(w, src, invalidType(q.objPos, q.obj.name))
		return
	}
	batch := s.batch
	if m := reBatchSize.FindStringSubmatch(r.Header.Get("Sforce-Query-Options")); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			n = min(max(n, 200), 2000)
			batch = min(batch, n)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := s.evalCtxLocked(u)
	rows := s.selectLocked(u, ctx, q.obj, q.where, q.orderBy, q.offset, q.limit)
	if q.count {
		writeJSON(w, http.StatusOK, queryResponse{TotalSize: len(rows), Done: true, Records: []*orderedObj{}})
		return
	}
	out := make([]*orderedObj, len(rows))
	for i, rec := range rows {
		out[i] = s.projectLocked(ctx, version, q.obj.name, rec, q.fields)
	}
	resp := queryResponse{TotalSize: len(out), Done: true, Records: out}
	if len(out) > batch {
		loc := s.newCursorLocked(u, version, out)
		resp.Done = false
		resp.Records = out[:batch]
		resp.NextRecordsURL = fmt.Sprintf("/services/data/%s/query/%s-%d", version, loc, batch)
	}
	if resp.Records == nil {
		resp.Records = []*orderedObj{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) newCursorLocked(u *User, version string, recs []*orderedObj) string {
	now := s.now()
	for loc, c := range s.cursors {
		if now.Sub(c.lastUsed) > cursorTTL {
			delete(s.cursors, loc)
		}
	}
	for len(s.cursors) >= maxCursors { // evict the least recently used
		var oldest string
		var t time.Time
		for loc, c := range s.cursors {
			if oldest == "" || c.lastUsed.Before(t) {
				oldest, t = loc, c.lastUsed
			}
		}
		delete(s.cursors, oldest)
	}
	loc := "01g" + randomString(15)
	s.cursors[loc] = &cursor{userID: u.ID, version: version, records: recs, total: len(recs), lastUsed: now}
	return loc
}

func (s *Server) handleQueryMore(w http.ResponseWriter, u *User, version, locator string) {
	i := strings.LastIndexByte(locator, '-')
	if i <= 0 {
		writeAPIError(w, http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	loc := locator[:i]
	pos, err := strconv.Atoi(locator[i+1:])
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cursors[loc]
	if err != nil || c == nil || c.userID != u.ID || pos < 0 || pos > len(c.records) || s.now().Sub(c.lastUsed) > cursorTTL {
		writeAPIError(w, http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	c.lastUsed = s.now()
	end := min(pos+s.batch, len(c.records))
	resp := queryResponse{TotalSize: c.total, Done: end == len(c.records), Records: c.records[pos:end]}
	if resp.Done {
		delete(s.cursors, loc)
	} else {
		resp.NextRecordsURL = fmt.Sprintf("/services/data/%s/query/%s-%d", version, loc, end)
	}
	if resp.Records == nil {
		resp.Records = []*orderedObj{}
	}
	writeJSON(w, http.StatusOK, resp)
}

// ---- search ----

type searchResponse struct {
	SearchRecords []*orderedObj `json:"searchRecords"`
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, u *User, version string) {
	src := r.URL.Query().Get("q")
	if strings.TrimSpace(src) == "" {
		writeAPIError(w, http.StatusBadRequest, "MALFORMED_SEARCH", "No search term found. The search term must be enclosed in braces.")
		return
	}
	q, qerr := parseSOSL(src)
	if qerr != nil {
		writeQueryError(w, src, qerr)
		return
	}
	returning := q.returning
	if len(returning) == 0 {
		for _, name := range searchOrder {
			if u.canRead(name) {
				obj := schema[strings.ToLower(name)]
				returning = append(returning, soslReturn{obj: obj, fields: []fieldRef{{def: obj.field("Id")}}, limit: -1})
			}
		}
	}
	limit := maxSearchResult
	if q.limit >= 0 && q.limit < limit {
		limit = q.limit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := s.evalCtxLocked(u)
	out := []*orderedObj{}
	for _, ret := range returning {
		if !u.canRead(ret.obj.name) {
			writeQueryError(w, src, invalidType(ret.objPos, ret.obj.name))
			return
		}
		fields := searchFields(ret.obj, q.scope)
		rows := s.selectLocked(u, ctx, ret.obj, ret.where, ret.orderBy, 0, -1)
		n := 0
		for _, rec := range rows {
			if len(out) >= limit || (ret.limit >= 0 && n >= ret.limit) {
				break
			}
			if !soslMatch(rec, fields, q.words) {
				continue
			}
			sel := ret.fields
			if sel == nil {
				sel = []fieldRef{{def: ret.obj.field("Id")}}
			}
			out = append(out, s.projectLocked(ctx, version, ret.obj.name, rec, sel))
			n++
		}
	}
	writeJSON(w, http.StatusOK, searchResponse{SearchRecords: out})
}

// ---- records ----

func (s *Server) handleGetRecord(w http.ResponseWriter, r *http.Request, u *User, version, typ, id string) {
	obj := schema[strings.ToLower(typ)]
	if obj == nil || !u.canRead(obj.name) {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	if !reID.MatchString(id) {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "+clip(id))
		return
	}
	var fields []fieldRef
	if fl := r.URL.Query().Get("fields"); fl != "" {
		if len(fl) > maxSOQLLength {
			writeAPIError(w, http.StatusBadRequest, "INVALID_FIELD", "too many fields")
			return
		}
		for _, name := range strings.Split(fl, ",") {
			name = strings.TrimSpace(name)
			f, qerr := resolveField(obj, token{kind: tIdent, text: name})
			if qerr != nil {
				writeAPIError(w, http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("No such column '%s' on sobject of type %s", clip(name), obj.name))
				return
			}
			fields = append(fields, f)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for rid, rec := range s.lookupLocked(id) {
		if s.types[rid] == obj.name && s.visibleLocked(u, obj.name, rec) {
			writeJSON(w, http.StatusOK, s.projectLocked(s.evalCtxLocked(u), version, obj.name, rec, fields))
			return
		}
	}
	writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
}

func (s *Server) handleChatterMe(w http.ResponseWriter, r *http.Request, u *User, version string) {
	writeJSON(w, http.StatusOK, map[string]any{
		"id": u.ID, "username": u.Username, "displayName": u.Name, "name": u.Name, "email": u.Email,
		"type": "User", "url": "/services/data/" + version + "/chatter/users/" + u.ID,
	})
}

// readForm parses a bounded urlencoded body.
func readForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, r.Body)
	return nil
}
