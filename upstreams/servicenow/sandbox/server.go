package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
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
	// RateLimitPerHour caps Table API requests per user per clock hour: a
	// rate limit rule for all users (sys_id RuleAllUsers); beyond it the
	// API answers 429 with Retry-After. 0 means no such rule.
	RateLimitPerHour int
	// RateLimitRules are further rate limit rules (sys_rate_limit_rules)
	// for single users or users with a role; see RateLimitRule.
	RateLimitRules []RateLimitRule
	// InvalidQueryReturnsNoRows is the instance's system property
	// glide.invalid_query.returns_no_rows: when true, a query with an
	// invalid part (an unknown field, a malformed condition) returns no
	// rows. ServiceNow's default, false, drops the invalid part and runs
	// the rest, which returns MORE rows.
	InvalidQueryReturnsNoRows bool
	// DictionaryRoles, when set, restricts reading the schema tables
	// (sys_db_object, sys_dictionary) to users with one of these roles; nil
	// lets every authenticated user read them.
	DictionaryRoles []string
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
	rateRules []RateLimitRule
	rateHour  int64
	// invalidNoRows is glide.invalid_query.returns_no_rows.
	invalidNoRows bool
	dictRoles     []string
	rateCount     map[string]int
	incSeq        int
	// journal holds the journal entries (sys_journal_field) by record
	// sys_id, oldest first; see journal.go.
	journal map[string][]journalEntry
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
		rateRules: rateRules(opts),
		rateCount: map[string]int{},

		invalidNoRows: opts.InvalidQueryReturnsNoRows,
		dictRoles:     slices.Clone(opts.DictionaryRoles),
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
	s.loadSchema()
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
		s.seedJournal(rec)
		s.insert("incident", rec)
	}
	return s.loadRecords(seed.Records)
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

// loadSchema fills sys_db_object and sys_dictionary from the table specs,
// as an instance describes itself: one sys_db_object row per table (with
// super_class for tables that extend another) and one sys_dictionary row
// per field, under the table that defines it, plus each table's
// "collection" row (element empty). ServiceNow docs: "Table
// administration" (sys_db_object) and "Data dictionary tables"
// (sys_dictionary).
func (s *Server) loadSchema() {
	names := make([]string, 0, len(tables)+len(superFields))
	for name := range tables {
		names = append(names, name)
	}
	for name := range superFields {
		names = append(names, name)
	}
	slices.Sort(names)
	objID := map[string]string{}
	for i, name := range names {
		objID[name] = fmt.Sprintf("db0b%028x", i+1)
	}
	for _, name := range names {
		super := ""
		if t := tables[name]; t != nil && t.super != "" {
			super = objID[t.super]
		}
		s.insert("sys_db_object", map[string]string{"sys_id": objID[name], "name": name, "label": label(name), "super_class": super})
	}
	seq := 0
	add := func(table, element, internalType, ref string) {
		seq++
		s.insert("sys_dictionary", map[string]string{
			"sys_id": fmt.Sprintf("d1c7%028x", seq), "name": table, "element": element, "column_label": label(element),
			"internal_type": internalType, "reference": objID[ref], "max_length": "40", "active": "true",
		})
	}
	for _, name := range names {
		add(name, "", "collection", "")
		t := tables[name]
		if t == nil { // a super table: its fields come from the tables that extend it
			for _, sub := range names {
				if st := tables[sub]; st != nil && st.super == name {
					for _, f := range st.fields {
						if superFields[name][f.name] {
							add(name, f.name, internalType(&f), f.ref)
						}
					}
				}
			}
			continue
		}
		for _, f := range t.fields {
			if !superFields[t.super][f.name] {
				add(name, f.name, internalType(&f), f.ref)
			}
		}
	}
}

func internalType(f *fieldSpec) string {
	switch f.kind {
	case kRef:
		return "reference"
	case kBool:
		return "boolean"
	case kDateTime:
		return "glide_date_time"
	case kSysID:
		return "GUID"
	case kChoice:
		for v := range f.choices {
			if _, err := strconv.Atoi(v); err != nil {
				return "string"
			}
		}
		return "integer"
	}
	if f.name == "comments" || f.name == "work_notes" {
		return "journal_input"
	}
	return "string"
}

// label turns a field or table name into a label: short_description →
// Short description.
func label(name string) string {
	if name == "" {
		return ""
	}
	l := strings.ReplaceAll(strings.TrimSuffix(name, "_id"), "_", " ")
	return strings.ToUpper(l[:1]) + l[1:]
}
