package sandbox

// The REST API's HTTP front: routing, error bodies, session
// authentication, the daily request limit and the versions resource.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

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

// countRequest charges one API request and reports the day's usage in
// Sforce-Limit-Info ("api-usage=used/limit"), as Salesforce does on every
// REST API response except the versions resource (REST API Developer
// Guide, "Limit Info Header",
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm).
// False means the allowance is exhausted (the header still says so).
func (s *Server) countRequest(w http.ResponseWriter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	day := s.now().UTC().Format("2006-01-02")
	if day != s.usageDay {
		s.usageDay, s.used = day, 0
	}
	if s.limit < 0 { // unlimited (load tests)
		s.used++
		return true
	}
	ok := s.used < s.limit
	if ok {
		s.used++
	}
	w.Header().Set("Sforce-Limit-Info", "api-usage="+strconv.Itoa(s.used)+"/"+strconv.Itoa(s.limit))
	return ok
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
		// A version the org does not serve is a resource that does not
		// exist: 404 NOT_FOUND in the documented error body (REST API
		// Developer Guide, "Status Codes and Error Responses",
		// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm).
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
		s.handleDML(w, r, u, version, parts) // dml.go
		return
	}
	switch {
	case len(parts) == 1 && (parts[0] == "query" || parts[0] == "queryAll"):
		s.handleQuery(w, r, u, version)
	case len(parts) == 2 && (parts[0] == "query" || parts[0] == "queryAll"):
		s.handleQueryMore(w, u, version, parts[1])
	case len(parts) == 1 && parts[0] == "search":
		s.handleSearch(w, r, u, version)
	case len(parts) == 1 && parts[0] == "recent":
		s.handleRecent(w, r, u, version)
	case len(parts) == 3 && parts[0] == "sobjects" && parts[2] == "describe":
		s.handleDescribe(w, u, version, parts[1])
	case len(parts) == 4 && parts[0] == "sobjects":
		s.handleRelationship(w, r, u, version, parts[1], parts[2], parts[3])
	case len(parts) == 3 && parts[0] == "sobjects":
		s.handleGetRecord(w, r, u, version, parts[1], parts[2])
	case len(parts) == 3 && parts[0] == "chatter" && parts[1] == "users" && parts[2] == "me":
		s.handleChatterMe(w, r, u, version)
	default:
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
}
