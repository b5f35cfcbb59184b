package clients

import (
	"strings"
	"testing"
)

func TestCheckRedirectURI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		uri  string
		want string // "" = accepted; else a part of the error
	}{
		{"https://app.example.com/callback", ""},
		{"https://app.example.com:8443/cb?x=1", ""},
		{"http://127.0.0.1:33418/callback", ""},
		{"http://127.0.0.1/callback", ""},
		{"http://[::1]:8080/cb", ""},
		{"http://localhost:6274/oauth/callback", ""},
		{"cursor://anysphere.cursor-retrieval/oauth/user-mandate/callback", ""},
		{"vscode://vscode.github-authentication/did-authenticate", ""},
		{"com.example.app:/oauth2redirect", ""},
		{"http://app.example.com/callback", "http is allowed only for loopback"},
		{"http://127.0.0.2/callback", "http is allowed only for loopback"},
		{"http://localhost.evil.example/cb", "http is allowed only for loopback"},
		{"javascript:alert(document.cookie)", "javascript: scheme is not allowed"},
		{"JavaScript://%0Aalert(1)", "javascript: scheme is not allowed"},
		{"data:text/html,<script>alert(1)</script>", "data: scheme is not allowed"},
		{"data:text/html;base64,PHNjcmlwdD4=", "data: scheme is not allowed"},
		{"file:///etc/passwd", "file: scheme is not allowed"},
		{"vbscript:msgbox", "vbscript: scheme is not allowed"},
		{"https://app.example.com/cb#frag", "fragment"},
		{"https://app.example.com/cb#", "fragment"},
		{"/relative/callback", "not an absolute URI"},
		{"", "empty"},
		{"https://user:pw@app.example.com/cb", "user information"},
		{"https:///cb", "no host"},
		{"https://app.example.com/c b", "white space"},
		{"urn:ietf:wg:oauth:2.0:oob", "out-of-band"},
		{"myapp:", "nothing after its scheme"},
		{"https://app.example.com/" + strings.Repeat("a", 2001), "longer than"},
	} {
		err := CheckRedirectURI(tc.uri)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckRedirectURI(%q) = %v, want accepted", tc.uri, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckRedirectURI(%q) = %v, want an error containing %q", tc.uri, err, tc.want)
		}
	}
}

// TestRedirectAllowed: exact match, except any port for http on loopback
// hosts (RFC 8252 §7.3); open-redirect attempts are refused.
func TestRedirectAllowed(t *testing.T) {
	t.Parallel()
	c := &Client{RedirectURIs: []string{
		"https://app.example.com/oauth/callback",
		"http://127.0.0.1/callback",
		"http://[::1]:3000/cb?x=1",
		"http://localhost:6274/oauth/callback",
		"cursor://anysphere.cursor-retrieval/oauth/callback",
	}}
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"https://app.example.com/oauth/callback", true},
		{"cursor://anysphere.cursor-retrieval/oauth/callback", true},
		{"http://127.0.0.1/callback", true},
		{"http://127.0.0.1:51234/callback", true}, // ephemeral port
		{"http://[::1]:9999/cb?x=1", true},
		{"http://[::1]/cb?x=1", true},
		{"http://localhost:40000/oauth/callback", true},
		// open redirects and near misses
		{"https://evil.example/", false},
		{"https://evil.example/oauth/callback", false},
		{"https://app.example.com/oauth/callback2", false},    // same host, other path
		{"https://app.example.com/oauth/callback/", false},    // trailing slash
		{"https://app.example.com/oauth/other", false},        // same host, other path
		{"https://app.example.com/oauth/callback?x=1", false}, // added query
		{"https://app.example.com:443/oauth/callback", false}, // ports only flex on loopback http
		{"https://APP.example.com/oauth/callback", false},
		{"https://app.example.com.evil.example/oauth/callback", false},
		{"https://app.example.com@evil.example/oauth/callback", false},
		{"https://app.example.com/oauth/callback#x", false},
		{"http://app.example.com/oauth/callback", false},
		{"https://127.0.0.1/callback", false},             // scheme differs
		{"http://127.0.0.1:8080/callback/../evil", false}, // path differs
		{"http://127.0.0.1:8080/callbackx", false},
		{"http://127.0.0.1:8080/callback?next=evil", false},
		{"http://127.0.0.1:8080/callback#x", false},
		{"http://localhost:8080/callback", false}, // host must match too
		{"http://127.0.0.1.evil.example:8080/callback", false},
		{"http://evil@127.0.0.1:8080/callback", false},
		{"http://127.0.0.1:80a/callback", false},
		{"http://127.0.0.1:/callback", false},
		{"http://[::1]:9999/cb?x=2", false},
		{"cursor://anysphere.cursor-retrieval/oauth/callback/x", false},
		{"", false},
	} {
		if got := c.RedirectAllowed(tc.uri); got != tc.want {
			t.Errorf("RedirectAllowed(%q) = %v, want %v", tc.uri, got, tc.want)
		}
	}
}
