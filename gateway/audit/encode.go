package audit

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The line format is fixed: the members in Record's field order, then
// "seq", "prev_hash" and finally "hash". The hash covers the exact bytes
// written, so verification never re-encodes a record and does not depend on
// this encoder staying byte-identical across versions.
//
// appendBody appends the record's JSON object up to, not including, the chain
// members and the closing brace. It allocates nothing except for Arguments.
func appendBody(b []byte, r *Record) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendOpt(b, `,"request_id":`, r.RequestID)
	b = appendOpt(b, `,"trace_id":`, r.TraceID)
	b = appendOpt(b, `,"span_id":`, r.SpanID)
	b = appendOpt(b, `,"session_id":`, r.SessionID)
	b = appendOpt(b, `,"remote_addr":`, r.RemoteAddr)

	b = appendUser(append(b, `,"user":`...), &r.User)
	if r.Target != nil {
		b = appendUser(append(b, `,"target":`...), r.Target)
	}

	b = appendOpt(b, `,"client":`, r.Client)
	b = appendOpt(b, `,"oauth_client":`, r.OAuthClient)
	b = append(b, `,"method":`...)
	b = appendString(b, r.Method)
	b = appendOpt(b, `,"upstream":`, r.Upstream)
	b = appendOpt(b, `,"tool":`, r.Tool)
	b = appendOpt(b, `,"resource":`, r.Resource)
	b = appendOpt(b, `,"prompt":`, r.Prompt)
	if d := r.Decision; d != nil {
		b = append(b, `,"decision":{"allow":`...)
		b = strconv.AppendBool(b, d.Allow)
		b = appendOpt(b, `,"rule":`, d.Rule)
		b = appendOpt(b, `,"reason":`, d.Reason)
		b = append(b, '}')
	}
	if c := r.Credential; c != nil {
		b = append(b, `,"credential":{"flow":`...)
		b = appendString(b, c.Flow)
		b = appendOpt(b, `,"platform_subject":`, c.PlatformSubject)
		b = append(b, `,"service_account":`...)
		b = strconv.AppendBool(b, c.ServiceAccount)
		b = append(b, `,"cache_hit":`...)
		b = strconv.AppendBool(b, c.CacheHit)
		b = append(b, '}')
	}
	b = append(b, `,"outcome":`...)
	b = appendString(b, r.Outcome)
	b = appendOpt(b, `,"error_class":`, r.ErrorClass)
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, scrub(r.Error))
	}
	b = append(b, `,"latency_ms":`...)
	lat := r.LatencyMS
	if math.IsNaN(lat) || math.IsInf(lat, 0) {
		lat = 0
	}
	b = strconv.AppendFloat(b, lat, 'f', -1, 64)
	if len(r.Arguments) > 0 {
		b = append(b, `,"arguments":`...)
		args, err := json.Marshal(r.Arguments) // map keys sorted: deterministic
		if err != nil {
			// The record is still written; the arguments are replaced by
			// why they could not be (the error names a type, never a value).
			b = append(b, `{"_mandate_error":`...)
			b = appendString(b, err.Error())
			b = append(b, '}')
		} else {
			b = append(b, args...)
		}
	}
	return b
}

// appendUser appends u as a JSON object.
func appendUser(b []byte, u *UserRef) []byte {
	b = append(b, `{"issuer":`...)
	b = appendString(b, u.Issuer)
	b = append(b, `,"subject":`...)
	b = appendString(b, u.Subject)
	b = appendOpt(b, `,"email":`, u.Email)
	if len(u.Roles) > 0 {
		b = append(b, `,"roles":[`...)
		for i, role := range u.Roles {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, role)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendOpt appends key and the quoted value when the value is not empty.
func appendOpt(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, key...)
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Like encoding/json it escapes
// control characters, U+2028 and U+2029, and replaces invalid UTF-8 with
// U+FFFD; unlike it, it does not escape <, > and &.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Patterns of credentials that must never reach the audit log even if a
// caller puts an upstream's error body into Record.Error.
var (
	jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	// A credential after an auth scheme: token68 characters with a digit, one
	// of . ~ + /, or an upper-case letter after the first character (so
	// "Bearer failed" and `Bearer error="..."` are kept).
	schemePattern = regexp.MustCompile(`\b((?i:bearer|basic|dpop))\s+([A-Za-z0-9._~+/=-]*[0-9._~+/][A-Za-z0-9._~+/=-]*|[A-Za-z0-9._~+/=-]+[A-Z][A-Za-z0-9._~+/=-]*)`)
	kvPattern     = regexp.MustCompile(`(?i)("?(?:access_token|refresh_token|id_token|subject_token|actor_token|assertion|client_secret|password|secret|api_key|apikey|cookie|authorization)"?\s*[:=]\s*)("[^"]*"|[^\s&,;}]+)`)
)

// scrub replaces JWTs, Authorization-style credentials and key=value /
// "key":"value" pairs whose key names a secret with [redacted].
func scrub(s string) string {
	if !maybeSecret(s) {
		return s
	}
	s = jwtPattern.ReplaceAllString(s, Redacted)
	s = schemePattern.ReplaceAllString(s, "${1} "+Redacted)
	s = kvPattern.ReplaceAllString(s, "${1}"+Redacted)
	return s
}

// maybeSecret is a cheap pre-check so that ordinary errors skip the regexps.
func maybeSecret(s string) bool {
	l := strings.ToLower(s)
	for _, k := range []string{"eyj", "bearer", "basic", "dpop", "token", "assertion", "secret", "password", "api_key", "apikey", "cookie", "authorization"} {
		if strings.Contains(l, k) {
			return true
		}
	}
	return false
}
