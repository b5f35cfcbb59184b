package sandbox

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults, named after the ServiceNow behaviour they imitate.
const (
	// DefaultTokenLifetime is the access token lifespan (ServiceNow's
	// default OAuth access token lifespan: 1,800 seconds).
	DefaultTokenLifetime = 30 * time.Minute
	// MaxLimit is the largest sysparm_limit honoured and the default when
	// none is given (glide.db.max_view_records: 10,000).
	MaxLimit = 10000

	maxBodyBytes  = 1 << 20
	maxValueBytes = 64 << 10
	maxSessions   = 100000
)

// Options configure a Server. The zero value serves DefaultSeed with no
// OAuth apps or OIDC providers (add them with RegisterApp/AddOIDCProvider).
type Options struct {
	// Seed is the instance's data; nil means DefaultSeed().
	Seed *Seed
	// Apps are OAuth application registry entries (client credentials and
	// JWT bearer).
	Apps []OAuthApp
	// OIDCProviders are trusted external OIDC issuers whose JWTs are
	// accepted directly as bearer tokens on the Table API.
	OIDCProviders []OIDCProvider
	// BaseURL is the instance URL (reference links, token audience).
	// Empty means derived from each request's Host (http://host).
	BaseURL string
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// TokenLifetime is how long issued access tokens stay valid; 0 means
	// DefaultTokenLifetime.
	TokenLifetime time.Duration
	// RateLimitPerHour caps Table API requests per user per clock hour
	// (a rate limit rule); beyond it the API answers 429 with Retry-After.
	// 0 means unlimited.
	RateLimitPerHour int
	// HTTPClient fetches OIDC discovery documents and JWKS; nil means a
	// client with a 10 s timeout.
	HTTPClient *http.Client
	// Logger receives debug/info logs (never tokens); nil discards.
	Logger *slog.Logger
}

type session struct {
	userID  string
	expires time.Time
}

// Server is the sandbox instance. It implements http.Handler.
type Server struct {
	baseURL  string
	now      func() time.Time
	lifetime time.Duration
	log      *slog.Logger
	client   *http.Client

	mu        sync.RWMutex
	users     map[string]*User                        // by sys_id
	rows      map[string]map[string]map[string]string // table → sys_id → fields
	order     map[string][]string                     // table → sys_ids in insertion order
	apps      map[string]*OAuthApp
	providers []*oidcProvider
	sessions  map[string]*session
	rateLimit int
	rateHour  int64
	rateCount map[string]int
	incSeq    int
}

var _ http.Handler = (*Server)(nil)

var reSysID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// New builds a sandbox instance from opts (nil opts = zero Options).
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
		now:       opts.Clock,
		lifetime:  opts.TokenLifetime,
		log:       opts.Logger,
		client:    opts.HTTPClient,
		users:     map[string]*User{},
		rows:      map[string]map[string]map[string]string{},
		order:     map[string][]string{},
		apps:      map[string]*OAuthApp{},
		sessions:  map[string]*session{},
		rateLimit: opts.RateLimitPerHour,
		rateCount: map[string]int{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lifetime <= 0 {
		s.lifetime = DefaultTokenLifetime
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	for name := range tables {
		s.rows[name] = map[string]map[string]string{}
	}
	if err := s.load(seed); err != nil {
		return nil, err
	}
	for _, a := range opts.Apps {
		if err := s.RegisterApp(a); err != nil {
			return nil, err
		}
	}
	for _, p := range opts.OIDCProviders {
		if err := s.AddOIDCProvider(p); err != nil {
			return nil, err
		}
	}
	return s, nil
}

const seedTime = "2025-01-01 00:00:00"

func (s *Server) load(seed *Seed) error {
	for _, g := range seed.Groups {
		if !reSysID.MatchString(g.SysID) || g.Name == "" {
			return fmt.Errorf("sandbox seed: group %q needs a 32-hex sys_id and a name", g.Name)
		}
		s.insert("sys_user_group", map[string]string{
			"sys_id": g.SysID, "name": g.Name, "description": g.Description, "manager": g.Manager, "active": "true",
		})
	}
	memberSeq := 0
	for i := range seed.Users {
		u := seed.Users[i]
		u.Roles, u.Groups = slices.Clone(u.Roles), slices.Clone(u.Groups)
		if !reSysID.MatchString(u.SysID) || u.UserName == "" {
			return fmt.Errorf("sandbox seed: user %q needs a 32-hex sys_id and a user_name", u.UserName)
		}
		if s.users[u.SysID] != nil || s.userByLocked("user_name", u.UserName) != nil {
			return fmt.Errorf("sandbox seed: duplicate user %s", u.UserName)
		}
		s.users[u.SysID] = &u
		s.insert("sys_user", map[string]string{
			"sys_id": u.SysID, "user_name": u.UserName, "first_name": u.FirstName, "last_name": u.LastName,
			"name": strings.TrimSpace(u.FirstName + " " + u.LastName), "email": u.Email, "title": u.Title,
			"active": strconv.FormatBool(!u.Inactive), "roles": strings.Join(u.Roles, ","),
		})
		for _, g := range u.Groups {
			if s.rows["sys_user_group"][g] == nil {
				return fmt.Errorf("sandbox seed: user %s: unknown group %s", u.UserName, g)
			}
			memberSeq++
			s.insert("sys_user_grmember", map[string]string{
				"sys_id": fmt.Sprintf("d0%030x", memberSeq), "user": u.SysID, "group": g,
			})
		}
	}
	for _, in := range seed.Incidents {
		rec := map[string]string{}
		for k, v := range in {
			if tables["incident"].field(k) == nil {
				return fmt.Errorf("sandbox seed: incident has no field %q", k)
			}
			rec[k] = v
		}
		if !reSysID.MatchString(rec["sys_id"]) || rec["number"] == "" || s.rows["incident"][rec["sys_id"]] != nil {
			return fmt.Errorf("sandbox seed: incident %q needs a unique 32-hex sys_id and a number", rec["number"])
		}
		setDefault(rec, "state", "1")
		setDefault(rec, "impact", "3")
		setDefault(rec, "urgency", "3")
		setDefault(rec, "priority", priorityMatrix(rec["impact"], rec["urgency"]))
		setDefault(rec, "active", strconv.FormatBool(rec["state"] != "7" && rec["state"] != "8"))
		if n, err := strconv.Atoi(strings.TrimPrefix(rec["number"], "INC")); err == nil && n > s.incSeq {
			s.incSeq = n
		}
		s.insert("incident", rec)
	}
	return nil
}

func setDefault(rec map[string]string, k, v string) {
	if rec[k] == "" {
		rec[k] = v
	}
}

// insert stores a row, filling every field of the table (ServiceNow returns
// empty strings for unset fields).
func (s *Server) insert(table string, rec map[string]string) {
	t := tables[table]
	for _, f := range t.fields {
		if _, ok := rec[f.name]; !ok {
			rec[f.name] = ""
		}
	}
	setDefault(rec, "sys_created_on", seedTime)
	setDefault(rec, "sys_updated_on", rec["sys_created_on"])
	setDefault(rec, "sys_created_by", "admin")
	setDefault(rec, "sys_updated_by", "admin")
	setDefault(rec, "sys_mod_count", "0")
	s.rows[table][rec["sys_id"]] = rec
	s.order[table] = append(s.order[table], rec["sys_id"])
}

func (s *Server) userByLocked(field, value string) *User {
	if value == "" {
		return nil
	}
	for _, id := range s.order["sys_user"] {
		rec := s.rows["sys_user"][id]
		if (field == "sys_id" && rec["sys_id"] == value) || (field != "sys_id" && strings.EqualFold(rec[field], value)) {
			return s.users[id]
		}
	}
	return nil
}

// RevokeAll invalidates every issued access token (external OIDC tokens
// keep working until they expire, as on a real instance).
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// RevokeUser invalidates the access tokens of one user_name and reports how
// many there were.
func (s *Server) RevokeUser(userName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByLocked("user_name", userName)
	if u == nil {
		return 0
	}
	n := 0
	for tok, ss := range s.sessions {
		if ss.userID == u.SysID {
			delete(s.sessions, tok)
			n++
		}
	}
	return n
}

// IssueToken mints an access token for user_name without an OAuth flow,
// for tests that exercise the Table API rather than the token endpoint.
func (s *Server) IssueToken(userName string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByLocked("user_name", userName)
	if u == nil {
		return "", fmt.Errorf("sandbox: no user %s", userName)
	}
	return s.newSessionLocked(u), nil
}

// Incident returns a copy of an incident's stored fields (sys_ids for
// references), or nil; for test assertions.
func (s *Server) Incident(sysID string) map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec := s.rows["incident"][sysID]
	if rec == nil {
		return nil
	}
	out := make(map[string]string, len(rec))
	for k, v := range rec {
		out[k] = v
	}
	return out
}

func (s *Server) newSessionLocked(u *User) string {
	if len(s.sessions) >= maxSessions {
		now := s.now()
		for tok, ss := range s.sessions {
			if !now.Before(ss.expires) || len(s.sessions) >= maxSessions {
				delete(s.sessions, tok)
			}
		}
	}
	tok := randomToken(64)
	s.sessions[tok] = &session{userID: u.SysID, expires: s.now().Add(s.lifetime)}
	return tok
}

func randomToken(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("sandbox: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func newSysID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("sandbox: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

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

func (u *User) hasRole(roles ...string) bool {
	for _, r := range u.Roles {
		if slices.Contains(roles, r) {
			return true
		}
	}
	return false
}

// ---- HTTP ----

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/oauth_token.do":
		s.handleToken(w, r)
	case strings.HasPrefix(p, "/api/now/table/"):
		s.handleTable(w, r)
	default:
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", p)
	}
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Detail  *string `json:"detail"`
	} `json:"error"`
	Status string `json:"status"`
}

// writeError writes ServiceNow's REST error body. An empty detail is null.
func writeError(w http.ResponseWriter, status int, message, detail string) {
	var b errorBody
	b.Error.Message = message
	if detail != "" {
		b.Error.Detail = &detail
	}
	b.Status = "failure"
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"message":"Internal Server Error","detail":null},"status":"failure"}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeNotAuthenticated(w http.ResponseWriter) {
	writeError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
}

func writeNoRecord(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
}

// authenticate resolves the bearer token: an access token issued by
// /oauth_token.do, else a JWT from a trusted OIDC provider.
func (s *Server) authenticate(r *http.Request) *User {
	h := r.Header.Get("Authorization")
	if len(h) <= 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return nil
	}
	tok := strings.TrimSpace(h[7:])
	s.mu.Lock()
	ss := s.sessions[tok]
	if ss != nil && !s.now().Before(ss.expires) {
		delete(s.sessions, tok)
		ss = nil
	}
	var u *User
	if ss != nil {
		u = s.users[ss.userID]
	}
	s.mu.Unlock()
	if ss != nil {
		if u == nil || u.Inactive {
			return nil
		}
		return u
	}
	if strings.Count(tok, ".") == 2 {
		u, reason := s.verifyExternal(r.Context(), tok)
		if u == nil {
			s.log.Debug("servicenow sandbox: bearer JWT refused", "reason", reason)
		}
		return u
	}
	return nil
}

// allowRequest applies the per-user hourly rate limit.
func (s *Server) allowRequest(w http.ResponseWriter, u *User) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rateLimit <= 0 {
		return true
	}
	now := s.now()
	hour := now.Unix() / 3600
	if hour != s.rateHour {
		s.rateHour = hour
		clear(s.rateCount)
	}
	reset := (hour + 1) * 3600
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(s.rateLimit))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
	if s.rateCount[u.SysID] >= s.rateLimit {
		w.Header().Set("Retry-After", strconv.FormatInt(max(reset-now.Unix(), 1), 10))
		w.Header().Set("X-RateLimit-Remaining", "0")
		return false
	}
	s.rateCount[u.SysID]++
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(s.rateLimit-s.rateCount[u.SysID]))
	return true
}

func (s *Server) handleTable(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/now/table/")
	table, sysID, _ := strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	u := s.authenticate(r)
	if u == nil {
		writeNotAuthenticated(w)
		return
	}
	if !s.allowRequest(w, u) {
		writeError(w, http.StatusTooManyRequests, "Too Many Requests", "Rate limit exceeded for user "+u.UserName)
		return
	}
	t := tables[table]
	if t == nil {
		writeError(w, http.StatusBadRequest, "Invalid table "+clip(table), "Table "+clip(table)+" does not exist")
		return
	}
	if strings.Contains(sysID, "/") {
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", "")
		return
	}
	opts, qe := parseRenderOptions(t, r.URL.Query())
	if qe != nil {
		writeError(w, http.StatusBadRequest, "Invalid query", qe.detail)
		return
	}
	switch {
	case r.Method == http.MethodGet && sysID == "":
		s.list(w, r, u, t, opts)
	case r.Method == http.MethodGet:
		s.getOne(w, r, u, t, sysID, opts)
	case r.Method == http.MethodPost && sysID == "":
		s.create(w, r, u, t, opts)
	case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && sysID != "":
		s.update(w, r, u, t, sysID, opts)
	case r.Method == http.MethodDelete && sysID != "":
		s.remove(w, u, t, sysID)
	default:
		writeError(w, http.StatusMethodNotAllowed, "Method not Supported", "Method "+clip(r.Method)+" is not supported for this resource")
	}
}

// ---- ACLs ----

func (s *Server) canReadLocked(u *User, table string, rec map[string]string) bool {
	if table != "incident" {
		return true
	}
	if u.hasRole("itil", "admin") {
		return true
	}
	me := u.SysID
	if rec["caller_id"] == me || rec["opened_by"] == me || rec["assigned_to"] == me {
		return true
	}
	g := rec["assignment_group"]
	return g != "" && slices.Contains(u.Groups, g)
}

func canWrite(u *User, table string, rec map[string]string) bool {
	if table != "incident" {
		return false
	}
	return u.hasRole("itil", "admin") || rec["caller_id"] == u.SysID || rec["opened_by"] == u.SysID
}

// ---- rendering ----

type displayMode int

const (
	displayFalse displayMode = iota
	displayTrue
	displayAll
)

type renderOptions struct {
	fields      []string // nil: all
	display     displayMode
	excludeLink bool
	query       *encodedQuery
	limit       int
	offset      int
}

func parseRenderOptions(t *tableSpec, q url.Values) (*renderOptions, *queryError) {
	o := &renderOptions{limit: MaxLimit}
	if f := q.Get("sysparm_fields"); f != "" {
		if len(f) > maxQueryLength {
			return nil, qerr("sysparm_fields longer than %d characters", maxQueryLength)
		}
		seen := map[string]bool{}
		for _, name := range strings.Split(f, ",") {
			name = strings.TrimSpace(name)
			// ServiceNow silently omits unknown fields from sysparm_fields.
			if name == "" || seen[name] || checkField(t, name) != nil {
				continue
			}
			seen[name] = true
			o.fields = append(o.fields, name)
		}
		if o.fields == nil {
			o.fields = []string{}
		}
	}
	switch strings.ToLower(q.Get("sysparm_display_value")) {
	case "true":
		o.display = displayTrue
	case "all":
		o.display = displayAll
	}
	o.excludeLink = strings.EqualFold(q.Get("sysparm_exclude_reference_link"), "true")
	if l := q.Get("sysparm_limit"); l != "" {
		if n, err := strconv.Atoi(l); err == nil && n > 0 {
			o.limit = min(n, MaxLimit)
		}
	}
	if off := q.Get("sysparm_offset"); off != "" {
		if n, err := strconv.Atoi(off); err == nil && n > 0 {
			o.offset = n
		}
	}
	eq, err := parseEncodedQuery(t, q.Get("sysparm_query"))
	if err != nil {
		return nil, err
	}
	o.query = eq
	return o, nil
}

// orderedObj is a JSON object that keeps its keys in insertion order.
type orderedObj struct {
	keys []string
	vals []any
}

func (o *orderedObj) set(k string, v any) {
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
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

func (s *Server) lookupLocked(table, sysID string) map[string]string {
	if sysID == "" {
		return nil
	}
	return s.rows[table][sysID]
}

func (s *Server) displayOfLocked(table, sysID string) string {
	rec := s.lookupLocked(table, sysID)
	if rec == nil {
		return ""
	}
	return rec[tables[table].display]
}

func (s *Server) renderLocked(base string, t *tableSpec, rec map[string]string, o *renderOptions) *orderedObj {
	names := o.fields
	if names == nil {
		names = make([]string, len(t.fields))
		for i, f := range t.fields {
			names[i] = f.name
		}
	}
	ev := &evaluator{table: t, lookup: s.lookupLocked}
	out := &orderedObj{}
	for _, name := range names {
		v, f := ev.value(rec, name)
		var link, display string
		display = v
		if f != nil {
			switch f.kind {
			case kRef:
				if v != "" {
					link = base + "/api/now/table/" + f.ref + "/" + v
				}
				display = s.displayOfLocked(f.ref, v)
			case kChoice:
				if label, ok := f.choices[v]; ok {
					display = label
				}
			}
		}
		switch o.display {
		case displayTrue:
			out.set(name, display)
		case displayAll:
			obj := &orderedObj{}
			obj.set("display_value", display)
			obj.set("value", v)
			if link != "" && !o.excludeLink {
				obj.set("link", link)
			}
			out.set(name, obj)
		default:
			if link != "" && !o.excludeLink {
				obj := &orderedObj{}
				obj.set("link", link)
				obj.set("value", v)
				out.set(name, obj)
			} else {
				out.set(name, v)
			}
		}
	}
	return out
}

type resultBody struct {
	Result any `json:"result"`
}

// ---- handlers ----

func (s *Server) list(w http.ResponseWriter, r *http.Request, u *User, t *tableSpec, o *renderOptions) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ev := &evaluator{table: t, lookup: s.lookupLocked, me: u}
	var rows []map[string]string
	for _, id := range s.order[t.name] {
		rec := s.rows[t.name][id]
		if s.canReadLocked(u, t.name, rec) && ev.match(rec, o.query) {
			rows = append(rows, rec)
		}
	}
	if len(o.query.orderBy) > 0 {
		sort.SliceStable(rows, func(i, j int) bool {
			for _, ob := range o.query.orderBy {
				a, f := ev.value(rows[i], ob.field)
				b, _ := ev.value(rows[j], ob.field)
				if f != nil && f.kind == kRef { // references sort by display value
					a, b = s.displayOfLocked(f.ref, a), s.displayOfLocked(f.ref, b)
				}
				c := compareValues(f, a, b)
				if c == 0 {
					continue
				}
				return (c < 0) != ob.desc
			}
			return false
		})
	}
	total := len(rows)
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	if links := pageLinks(s.base(r), r.URL, total, o.offset, o.limit); links != "" {
		w.Header().Set("Link", links)
	}
	page := []*orderedObj{}
	if o.offset < total {
		end := min(o.offset+o.limit, total)
		for _, rec := range rows[o.offset:end] {
			page = append(page, s.renderLocked(s.base(r), t, rec, o))
		}
	}
	writeJSON(w, http.StatusOK, resultBody{Result: page})
}

// pageLinks builds the Link header (first, prev, next, last) as the Table
// API does.
func pageLinks(base string, u *url.URL, total, offset, limit int) string {
	link := func(off int, rel string) string {
		q := u.Query()
		q.Set("sysparm_offset", strconv.Itoa(off))
		q.Set("sysparm_limit", strconv.Itoa(limit))
		return fmt.Sprintf("<%s%s?%s>;rel=%q", base, u.Path, q.Encode(), rel)
	}
	var parts []string
	parts = append(parts, link(0, "first"))
	if offset > 0 {
		parts = append(parts, link(max(offset-limit, 0), "prev"))
	}
	if offset+limit < total {
		parts = append(parts, link(offset+limit, "next"))
	}
	last := 0
	if total > 0 {
		last = ((total - 1) / limit) * limit
	}
	parts = append(parts, link(last, "last"))
	return strings.Join(parts, ",")
}

func (s *Server) getOne(w http.ResponseWriter, r *http.Request, u *User, t *tableSpec, sysID string, o *renderOptions) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec := s.rows[t.name][sysID]
	if rec == nil || !s.canReadLocked(u, t.name, rec) {
		writeNoRecord(w)
		return
	}
	writeJSON(w, http.StatusOK, resultBody{Result: s.renderLocked(s.base(r), t, rec, o)})
}

// readBody decodes a JSON object of field values; scalars become strings
// as ServiceNow stores them, unknown and read-only fields are ignored.
func readBody(w http.ResponseWriter, r *http.Request, t *tableSpec) (map[string]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	var in map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil || in == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	out := map[string]string{}
	for k, v := range in {
		f := t.field(k)
		if f == nil || f.readOnly {
			continue
		}
		var sv string
		switch v := v.(type) {
		case string:
			sv = v
		case json.Number:
			sv = v.String()
		case bool:
			sv = strconv.FormatBool(v)
		case nil:
			sv = ""
		default:
			continue
		}
		if len(sv) > maxValueBytes {
			sv = sv[:maxValueBytes]
		}
		out[k] = sv
	}
	return out, nil
}

// resolveRefLocked accepts a sys_id or, like ServiceNow, a display value
// (for users also user_name or email) for a reference field.
func (s *Server) resolveRefLocked(f *fieldSpec, v string) string {
	if v == "" || s.rows[f.ref][v] != nil {
		return v
	}
	for _, id := range s.order[f.ref] {
		rec := s.rows[f.ref][id]
		if strings.EqualFold(rec[tables[f.ref].display], v) ||
			(f.ref == "sys_user" && (strings.EqualFold(rec["user_name"], v) || strings.EqualFold(rec["email"], v))) {
			return id
		}
	}
	return v
}

func (s *Server) nowString() string { return s.now().UTC().Format("2006-01-02 15:04:05") }

// applyLocked writes values into rec and maintains derived incident fields.
func (s *Server) applyLocked(u *User, t *tableSpec, rec, values map[string]string) {
	for k, v := range values {
		f := t.field(k)
		if f.kind == kRef {
			v = s.resolveRefLocked(f, v)
		}
		if k == "caller_id" && !u.hasRole("itil", "admin") {
			continue // only fulfillers may set the caller to someone else
		}
		rec[k] = v
	}
	_, impact := values["impact"]
	_, urgency := values["urgency"]
	if impact || urgency {
		rec["priority"] = priorityMatrix(rec["impact"], rec["urgency"])
	}
	if st, ok := values["state"]; ok {
		now := s.nowString()
		switch st {
		case "6":
			rec["resolved_at"] = now
		case "7":
			rec["closed_at"] = now
		}
	}
	rec["active"] = strconv.FormatBool(rec["state"] != "7" && rec["state"] != "8")
	rec["sys_updated_on"] = s.nowString()
	rec["sys_updated_by"] = u.UserName
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, u *User, t *tableSpec, o *renderOptions) {
	if t.name != "incident" {
		writeError(w, http.StatusForbidden, "Operation Failed", "ACL restricts the record insert")
		return
	}
	values, err := readBody(w, r, t)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.incSeq++
	now := s.nowString()
	rec := map[string]string{
		"sys_id": newSysID(), "number": fmt.Sprintf("INC%07d", s.incSeq),
		"caller_id": u.SysID, "opened_by": u.SysID, "opened_at": now,
		"state": "1", "impact": "3", "urgency": "3", "category": "inquiry",
		"sys_created_on": now, "sys_created_by": u.UserName,
	}
	s.applyLocked(u, t, rec, values)
	rec["priority"] = priorityMatrix(rec["impact"], rec["urgency"])
	s.insert("incident", rec)
	s.log.Info("servicenow sandbox: incident created", "number", rec["number"], "user", u.UserName)
	w.Header().Set("Location", s.base(r)+"/api/now/table/incident/"+rec["sys_id"])
	writeJSON(w, http.StatusCreated, resultBody{Result: s.renderLocked(s.base(r), t, rec, o)})
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, u *User, t *tableSpec, sysID string, o *renderOptions) {
	values, err := readBody(w, r, t)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rows[t.name][sysID]
	if rec == nil || !s.canReadLocked(u, t.name, rec) {
		writeNoRecord(w)
		return
	}
	if !canWrite(u, t.name, rec) {
		writeError(w, http.StatusForbidden, "Operation Failed", "ACL restricts the record update")
		return
	}
	s.applyLocked(u, t, rec, values)
	n, _ := strconv.Atoi(rec["sys_mod_count"])
	rec["sys_mod_count"] = strconv.Itoa(n + 1)
	s.log.Info("servicenow sandbox: record updated", "table", t.name, "sys_id", sysID, "user", u.UserName)
	writeJSON(w, http.StatusOK, resultBody{Result: s.renderLocked(s.base(r), t, rec, o)})
}

func (s *Server) remove(w http.ResponseWriter, u *User, t *tableSpec, sysID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rows[t.name][sysID]
	if rec == nil || !s.canReadLocked(u, t.name, rec) {
		writeNoRecord(w)
		return
	}
	// Deleting incidents is reserved to admins (no seeded user is one).
	if t.name != "incident" || !u.hasRole("admin") {
		writeError(w, http.StatusForbidden, "Operation Failed", "ACL restricts the record deletion")
		return
	}
	delete(s.rows[t.name], sysID)
	s.order[t.name] = slices.DeleteFunc(s.order[t.name], func(id string) bool { return id == sysID })
	w.WriteHeader(http.StatusNoContent)
}
