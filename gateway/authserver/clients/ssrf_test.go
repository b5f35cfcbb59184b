package clients

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// TestSSRFGuard: with the default HTTP client (Options.HTTPClient nil),
// metadata documents are never fetched from special-use addresses, checked
// on the address actually dialled: IP literals, IPv4-mapped forms and names
// that resolve to loopback alike. Loopback is allowed only with
// allow_loopback_http.
func TestSSRFGuard(t *testing.T) {
	t.Parallel()
	tlsSrv := newDocServer(t, true)
	tlsID := tlsSrv.serveDoc("/c.json", nil, nil)
	port := tlsSrv.Listener.Addr().(*net.TCPAddr).Port
	plain := newDocServer(t, false)
	plainID := plain.serveDoc("/c.json", nil, nil)

	strict, err := New(Options{Registration: RegistrationConfig{Policy: PolicyOff}})
	if err != nil {
		t.Fatal(err)
	}
	loopback, err := New(Options{Registration: RegistrationConfig{Policy: PolicyOff}, MetadataDocuments: MetadataDocumentsConfig{AllowLoopbackHTTP: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		r    *Registry
		id   string
		want string
	}{
		{"loopback literal", strict, tlsID, "resolves to 127.0.0.1, a loopback address, which is refused"},
		{"IPv4-mapped loopback", strict, "https://[::ffff:127.0.0.1]:" + itoa(port) + "/c.json", "127.0.0.1, a loopback address"},
		{"name resolving to loopback", strict, "https://localhost:" + itoa(port) + "/c.json", "a loopback address, which is refused"},
		{"IPv6 loopback", strict, "https://[::1]:" + itoa(port) + "/c.json", "::1, a loopback address"},
		{"private", strict, "https://10.0.0.1/c.json", "10.0.0.1, a private (RFC 1918) address"},
		{"private 192.168", loopback, "https://192.168.1.1/c.json", "192.168.1.1, a private (RFC 1918) address"},
		{"cloud metadata", loopback, "https://169.254.169.254/latest/meta-data", "169.254.169.254, a link-local address"},
		{"CGNAT", strict, "https://100.64.0.1/c.json", "shared (carrier-grade NAT"},
		{"unique local IPv6", strict, "https://[fd00::1]/c.json", "fd00::1, a unique local (private) address"},
		{"unspecified", strict, "https://0.0.0.0:" + itoa(port) + "/c.json", "0.0.0.0, a \"this network\" address"},
		{"documentation", strict, "https://192.0.2.1/c.json", "documentation"},
		{"http without allow_loopback_http", strict, plainID, "must be https"},
		{"http on a name, even with allow_loopback_http", loopback, strings.Replace(plainID, "127.0.0.1", "localhost", 1), "http is allowed only on 127.0.0.1 and [::1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, e := tc.r.Resolve(ctx, tc.id)
			if e == nil {
				t.Fatalf("Resolve(%s) = %+v, want refused", tc.id, c)
			}
			if e.Code != "invalid_client" || !strings.Contains(e.Description, tc.want) {
				t.Fatalf("Resolve(%s) = %s %q, want %q", tc.id, e.Code, e.Description, tc.want)
			}
		})
	}
	if n := tlsSrv.count("/c.json") + plain.count("/c.json"); n != 0 {
		t.Fatalf("the guard let %d requests through", n)
	}
	// With allow_loopback_http, the same default client fetches from
	// http://127.0.0.1 (the demo).
	c, e := loopback.Resolve(ctx, plainID)
	if e != nil || c.ID != plainID {
		t.Fatalf("allow_loopback_http: Resolve(%s) = %v, %v", plainID, c, e)
	}
}

// TestDialGuard: the dialer's check on its own, on a listening socket it
// would otherwise reach.
func TestDialGuard(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, allow := range []bool{false, true} {
		tr := newSafeClient(allow, nil).Transport.(*http.Transport)
		conn, err := tr.DialContext(context.Background(), "tcp", ln.Addr().String())
		if allow != (err == nil) {
			t.Errorf("allowLoopback %v: dial 127.0.0.1: %v", allow, err)
		}
		if conn != nil {
			conn.Close()
		}
		if tr.Proxy != nil {
			t.Error("the metadata client uses a proxy from the environment")
		}
	}
}

func TestSpecialUse(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"8.8.8.8":             "",
		"1.1.1.1":             "",
		"2606:4700::1111":     "",
		"64:ff9b::808:808":    "", // NAT64 of a public address
		"127.0.0.1":           kindLoopback,
		"127.255.255.254":     kindLoopback,
		"::1":                 kindLoopback,
		"::ffff:127.0.0.1":    kindLoopback,
		"::ffff:10.1.2.3":     "private (RFC 1918)",
		"64:ff9b::a00:1":      "private (RFC 1918) (through NAT64)",
		"10.1.2.3":            "private (RFC 1918)",
		"172.31.255.255":      "private (RFC 1918)",
		"172.32.0.1":          "",
		"192.168.0.1":         "private (RFC 1918)",
		"169.254.169.254":     "link-local",
		"100.100.100.200":     "shared (carrier-grade NAT, RFC 6598)",
		"0.0.0.0":             "\"this network\"",
		"224.0.0.1":           "multicast",
		"255.255.255.255":     "reserved",
		"198.18.0.1":          "benchmarking",
		"::":                  "unspecified",
		"fe80::1%eth0":        "link-local",
		"fd12:3456::1":        "unique local (private)",
		"ff02::1":             "multicast",
		"2001:db8::1":         "documentation",
		"2002:a00:1::1":       "6to4",
		"2001:0:4136:e378::1": "IETF protocol assignment", // Teredo
	} {
		if got := specialUse(netip.MustParseAddr(addr)); got != want {
			t.Errorf("specialUse(%s) = %q, want %q", addr, got, want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
