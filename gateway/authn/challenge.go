package authn

import (
	"strings"
)

// Challenge renders the WWW-Authenticate value for e (RFC 6750 §3, RFC 9728
// §5.1): resource_metadata always, scope when known, error and
// error_description when a token was presented.
func (e *Error) Challenge(resourceMetadataURL string, scopes []string) string {
	var b strings.Builder
	b.WriteString(`Bearer resource_metadata="`)
	b.WriteString(quote(resourceMetadataURL))
	b.WriteByte('"')
	if len(e.Scopes) > 0 {
		scopes = e.Scopes
	}
	if len(scopes) > 0 {
		b.WriteString(`, scope="`)
		b.WriteString(quote(strings.Join(scopes, " ")))
		b.WriteByte('"')
	}
	if e.Code != "" {
		b.WriteString(`, error="`)
		b.WriteString(e.Code)
		b.WriteString(`", error_description="`)
		b.WriteString(quote(e.Description))
		b.WriteByte('"')
	}
	return b.String()
}

// quote keeps a value safe inside a quoted-string: RFC 6750 allows only
// %x20-21 / %x23-5B / %x5D-7E in error_description, so quotes, backslashes
// and control characters (CR/LF header injection) are replaced.
func quote(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}
