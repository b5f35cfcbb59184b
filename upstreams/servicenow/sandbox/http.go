package sandbox

// The Table API's HTTP front: routing, error bodies, session
// authentication, rate limits, and the ACLs a request is checked against.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

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

func (s *Server) handleTable(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/now/table/")
	table, sysID, _ := strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	u := s.authenticate(r)
	if u == nil {
		writeNotAuthenticated(w)
		return
	}
	if !s.allowRequest(w, u) {
		return // 429 written (ratelimit.go)
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
	opts.user = u
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
	if schemaTables[table] {
		return s.dictRoles == nil || u.hasRole(s.dictRoles...)
	}
	if rule := tableRules[table]; rule != nil { // daily.go
		return rule.read == nil || rule.read(s, u, rec)
	}
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
	if rule := tableRules[table]; rule != nil { // daily.go
		return rule.write != nil && rule.write(u, rec)
	}
	if table != "incident" {
		return false
	}
	return u.hasRole("itil", "admin") || rec["caller_id"] == u.SysID || rec["opened_by"] == u.SysID
}
