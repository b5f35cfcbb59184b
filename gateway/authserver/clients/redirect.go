package clients

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// maxRedirectURILen bounds one redirect URI.
const maxRedirectURILen = 2000

// forbiddenSchemes can never be redirect URIs: a browser would run or show
// the code's page content rather than hand it to an app.
var forbiddenSchemes = map[string]bool{
	"javascript": true, "data": true, "file": true, "vbscript": true,
	"blob": true, "about": true, "filesystem": true, "view-source": true,
	"jar": true, "mhtml": true,
}

// loopbackHosts are the hosts an http redirect URI may name (RFC 8252 §7.3;
// localhost is NOT RECOMMENDED there but widely used by native clients).
var loopbackHosts = map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true}

// CheckRedirectURI reports why uri may not be registered as a redirect URI:
// it must be absolute and without a fragment; https; http only on a
// loopback host (127.0.0.1, [::1], localhost); or a private-use scheme of a
// native app (cursor://…, com.example.app:/cb), never javascript:, data:,
// file: and the like.
func CheckRedirectURI(uri string) error {
	switch {
	case uri == "":
		return errors.New("empty")
	case len(uri) > maxRedirectURILen:
		return fmt.Errorf("longer than %d characters", maxRedirectURILen)
	case strings.IndexFunc(uri, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("%q contains white space or control characters", uri)
	case strings.Contains(uri, "#"):
		return fmt.Errorf("%q has a fragment (RFC 6749 §3.1.2 forbids one)", uri)
	}
	if s, _, ok := strings.Cut(uri, ":"); ok && forbiddenSchemes[strings.ToLower(s)] {
		return fmt.Errorf("%q: the %s: scheme is not allowed", uri, strings.ToLower(s))
	}
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("%q is not a URI", uri)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "":
		return fmt.Errorf("%q is not an absolute URI", uri)
	case uri == "urn:ietf:wg:oauth:2.0:oob" || strings.HasPrefix(uri, "urn:ietf:wg:oauth:2.0:oob:"):
		return fmt.Errorf("%q: the out-of-band flow is not supported", uri)
	case u.User != nil:
		return fmt.Errorf("%q has user information", uri)
	case scheme == "https":
		if u.Host == "" || u.Hostname() == "" {
			return fmt.Errorf("%q has no host", uri)
		}
	case scheme == "http":
		if !loopbackHosts[u.Hostname()] {
			return fmt.Errorf("%q: http is allowed only for loopback redirect URIs (127.0.0.1, [::1], localhost); use https", uri)
		}
		if u.Scheme != "http" {
			return fmt.Errorf("%q: write the scheme in lower case", uri)
		}
	default:
		// A private-use URI scheme of a native app (RFC 8252 §7.1).
		if u.Opaque == "" && u.Host == "" && u.Path == "" {
			return fmt.Errorf("%q has nothing after its scheme", uri)
		}
	}
	return nil
}

// RedirectAllowed reports whether uri is one of the client's redirect
// URIs: an exact string match, except that an http redirect URI on a
// loopback host (127.0.0.1, [::1], localhost) matches any port, everything
// else being equal (RFC 8252 §7.3: native apps listen on an ephemeral port).
func (c *Client) RedirectAllowed(uri string) bool {
	if uri == "" {
		return false
	}
	for _, reg := range c.RedirectURIs {
		if uri == reg {
			return true
		}
	}
	host, rest, ok := splitLoopback(uri)
	if !ok {
		return false
	}
	for _, reg := range c.RedirectURIs {
		if h, r, ok := splitLoopback(reg); ok && h == host && r == rest {
			return true
		}
	}
	return false
}

// splitLoopback splits an http URI on a loopback host into the host
// (without port) and everything after the authority, byte for byte. ok is
// false for anything else, including a port that is not a number and an
// authority with user information.
func splitLoopback(uri string) (host, rest string, ok bool) {
	const prefix = "http://"
	if !strings.HasPrefix(uri, prefix) {
		return "", "", false
	}
	s := uri[len(prefix):]
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	authority, rest := s[:end], s[end:]
	if strings.Contains(rest, "#") {
		return "", "", false
	}
	host, port := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.HasSuffix(authority, "]") {
		host, port = authority[:i], authority[i+1:]
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return "", "", false
		}
	}
	switch host {
	case "127.0.0.1", "[::1]", "localhost":
		return host, rest, true
	}
	return "", "", false
}
