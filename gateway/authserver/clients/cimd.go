package clients

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document):
// a client_id that is an https URL names a JSON document of the client's
// metadata, which Mandate fetches: https only, a size and time limit, no
// redirects, never from a special-use address (RFC 6890), cached per the
// response's HTTP caching headers. Failures are never cached.
const (
	// MaxMetadataDocumentBytes bounds a metadata document (the draft
	// suggests 5 KB).
	MaxMetadataDocumentBytes = 5 << 10
	// MetadataFetchTimeout bounds a whole fetch: connect, TLS, headers and
	// body.
	MetadataFetchTimeout = 5 * time.Second
	// DefaultMetadataTTL is how long a document without caching headers is
	// cached; MaxMetadataTTL caps any max-age.
	DefaultMetadataTTL = 5 * time.Minute
	MaxMetadataTTL     = 24 * time.Hour
	// metadataCacheSize is how many documents the cache holds.
	metadataCacheSize = 1024
)

type fetcher struct {
	cfg     MetadataDocumentsConfig
	client  *http.Client
	cache   *lru.Cache[string, cachedDoc]
	group   singleflight.Group
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
}

type cachedDoc struct {
	client *Client
	until  time.Time
}

func newFetcher(cfg MetadataDocumentsConfig, hc *http.Client, log *slog.Logger, now func() time.Time) *fetcher {
	if hc == nil {
		hc = newSafeClient(cfg.AllowLoopbackHTTP, nil)
	}
	// Whatever client we were given: a redirect is an error, never followed.
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cache, err := lru.New[string, cachedDoc](metadataCacheSize)
	if err != nil {
		panic(err) // only for a size ≤ 0
	}
	return &fetcher{cfg: cfg, client: &c, cache: cache, timeout: MetadataFetchTimeout, log: log, now: now}
}

// resolve returns the client of the metadata document at id, from the cache
// or fetched (concurrent fetches of one URL share one request).
func (f *fetcher) resolve(ctx context.Context, id string) (*Client, error) {
	if err := f.checkURL(id); err != nil {
		return nil, err
	}
	if e, ok := f.cache.Get(id); ok {
		if f.now().Before(e.until) {
			c := *e.client
			return &c, nil
		}
		f.cache.Remove(id)
	}
	ch := f.group.DoChan(id, func() (any, error) {
		// The fetch is shared: it must not end when the first caller goes.
		return f.fetch(context.WithoutCancel(ctx), id)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		c := *res.Val.(*Client)
		return &c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// checkURL applies the draft's rules to a client_id URL (https, a path, no
// dot segments, fragment, user information or query) and
// metadata_documents.allowed_hosts.
func (f *fetcher) checkURL(id string) error {
	if strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '\\' }) >= 0 {
		return errors.New("the client_id URL contains white space, control characters or a backslash")
	}
	u, err := url.Parse(id)
	if err != nil {
		return errors.New("the client_id is not a valid URL")
	}
	switch {
	case strings.HasPrefix(id, "https://"):
	case strings.HasPrefix(id, "http://") && f.cfg.AllowLoopbackHTTP:
		if h := u.Hostname(); h != "127.0.0.1" && h != "::1" {
			return errors.New("the client_id URL must be https (http is allowed only on 127.0.0.1 and [::1], by metadata_documents.allow_loopback_http)")
		}
	default:
		return errors.New("the client_id URL must be https")
	}
	rest := id[strings.Index(id, "://")+3:]
	slash := strings.IndexByte(rest, '/')
	switch {
	case u.User != nil || strings.Contains(rest[:max(slash, 0)], "@"):
		return errors.New("the client_id URL must not contain user information")
	case strings.Contains(id, "#"):
		return errors.New("the client_id URL must not contain a fragment")
	case strings.Contains(id, "?"):
		return errors.New("the client_id URL must not contain a query")
	case u.Hostname() == "":
		return errors.New("the client_id URL has no host")
	case slash < 0:
		return errors.New("the client_id URL has no path (e.g. https://app.example.com/oauth/client.json)")
	}
	for _, seg := range strings.Split(rest[slash+1:], "/") {
		if s, err := url.PathUnescape(seg); err != nil || s == "." || s == ".." {
			return errors.New("the client_id URL must not contain dot segments (. or ..) or bad escapes in its path")
		}
	}
	if len(f.cfg.AllowedHosts) > 0 && !hostAllowed(strings.ToLower(u.Hostname()), f.cfg.AllowedHosts) {
		return fmt.Errorf("host %s is not in metadata_documents.allowed_hosts", u.Hostname())
	}
	return nil
}

func hostAllowed(host string, allowed []string) bool {
	for _, a := range allowed {
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}

// fetch GETs and validates the document; a good one is cached.
func (f *fetcher) fetch(ctx context.Context, id string) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, errors.New("the client_id is not a valid URL")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Mandate")
	resp, err := f.client.Do(req)
	if err != nil {
		f.log.InfoContext(ctx, "client metadata document fetch failed", "client_id", clip(id), "error", err)
		return nil, f.describe(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("the URL redirects (HTTP %d); redirects are not followed: serve the document at the client_id URL itself", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("fetching it returned HTTP %d (want 200)", resp.StatusCode)
	case resp.ContentLength > MaxMetadataDocumentBytes:
		return nil, tooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxMetadataDocumentBytes+1))
	if err == nil {
		// A body cut short by the deadline may end without an error.
		err = ctx.Err()
	}
	if err != nil {
		return nil, f.describe(err)
	}
	if len(body) > MaxMetadataDocumentBytes {
		return nil, tooLarge()
	}
	md, err := decodeMetadata(body)
	if err != nil {
		return nil, fmt.Errorf("the document is %v", err)
	}
	if md.ClientID != id {
		return nil, fmt.Errorf("its client_id %q differs from the URL it was fetched from (they must be equal)", clip(md.ClientID))
	}
	if e := md.check(true); e != nil {
		return nil, errors.New(e.Description)
	}
	c := &Client{
		ID:           id,
		Name:         md.ClientName,
		Kind:         KindMetadataDocument,
		RedirectURIs: md.RedirectURIs,
		URI:          md.ClientURI,
		Public:       true,
		GrantTypes:   md.GrantTypes,
	}
	if ttl := cacheTTL(resp.Header, f.now()); ttl > 0 {
		f.cache.Add(id, cachedDoc{client: c, until: f.now().Add(ttl)})
	}
	return c, nil
}

func tooLarge() error {
	return fmt.Errorf("the document is too large (more than %d bytes)", MaxMetadataDocumentBytes)
}

// describe turns a transport error into the reason a client is told.
func (f *fetcher) describe(err error) error {
	var refused *addrRefusedError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	switch {
	case errors.As(err, &refused):
		return fmt.Errorf("the host resolves to %s, which is refused", refused.reason())
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("fetching it timed out: too slow (no complete response within %s)", f.timeout)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("its host could not be resolved (%s)", dnsErr.Err)
	case errors.As(err, &certErr):
		return errors.New("its TLS certificate could not be verified")
	default:
		return errors.New("fetching it failed: could not connect or read the response")
	}
}

// cacheTTL is how long a good document may be cached per its response
// headers (RFC 9111): no-store or no-cache: not at all; max-age (less Age);
// else Expires; else DefaultMetadataTTL; at most MaxMetadataTTL.
func cacheTTL(h http.Header, now time.Time) time.Duration {
	ttl, found := DefaultMetadataTTL, false
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || n < 0 {
					return 0
				}
				if n > int64(MaxMetadataTTL/time.Second) {
					n = int64(MaxMetadataTTL / time.Second)
				}
				ttl, found = time.Duration(n)*time.Second, true
			}
		}
	}
	if found {
		if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
			ttl -= time.Duration(min(age, int64(MaxMetadataTTL/time.Second))) * time.Second
		}
	} else if exp := h.Get("Expires"); exp != "" {
		t, err := http.ParseTime(exp)
		if err != nil {
			return 0 // an invalid Expires means already expired
		}
		base := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			base = d
		}
		ttl = t.Sub(base)
	}
	return min(max(ttl, 0), MaxMetadataTTL)
}

// newSafeClient is the default client for metadata documents: no proxy
// from the environment, and a dialer that refuses special-use addresses on
// the address actually dialled (after DNS resolution, so a name that
// resolves to a private address — or rebinds to one — is refused).
// Loopback is allowed only with allowLoopback.
func newSafeClient(allowLoopback bool, tlsConf *tls.Config) *http.Client {
	g := &dialGuard{allowLoopback: allowLoopback}
	d := &net.Dialer{Timeout: MetadataFetchTimeout, KeepAlive: 30 * time.Second, Control: g.control}
	if tlsConf == nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Timeout: MetadataFetchTimeout,
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            d.DialContext,
			TLSClientConfig:        tlsConf,
			TLSHandshakeTimeout:    MetadataFetchTimeout,
			ResponseHeaderTimeout:  MetadataFetchTimeout,
			MaxResponseHeaderBytes: 16 << 10,
			MaxIdleConns:           16,
			IdleConnTimeout:        30 * time.Second,
			ForceAttemptHTTP2:      true,
		},
	}
}

// dialGuard vets every address the dialer is about to connect to.
type dialGuard struct{ allowLoopback bool }

func (g *dialGuard) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return &addrRefusedError{addr: address, kind: "not an IP address"}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return &addrRefusedError{addr: host, kind: "not an IP address"}
	}
	if kind := specialUse(ip); kind != "" {
		if kind == kindLoopback && g.allowLoopback {
			return nil
		}
		return &addrRefusedError{addr: ip.String(), kind: kind}
	}
	return nil
}

// addrRefusedError: the dialer refused a special-use address.
type addrRefusedError struct{ addr, kind string }

func (e *addrRefusedError) Error() string {
	return "refused to connect to " + e.reason()
}

func (e *addrRefusedError) reason() string {
	return fmt.Sprintf("%s, a %s address", e.addr, e.kind)
}

const kindLoopback = "loopback"

type specialPrefix struct {
	prefix netip.Prefix
	kind   string
}

// specialPrefixes are the special-use ranges (RFC 6890 and its updates)
// Mandate never fetches a metadata document from.
var specialPrefixes = func() []specialPrefix {
	var out []specialPrefix
	for _, p := range []struct{ cidr, kind string }{
		{"0.0.0.0/8", "\"this network\""},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "shared (carrier-grade NAT, RFC 6598)"},
		{"127.0.0.0/8", kindLoopback},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignment"},
		{"192.0.2.0/24", "documentation"},
		{"192.31.196.0/24", "AS112"},
		{"192.52.193.0/24", "AMT"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"192.175.48.0/24", "AS112"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"::/128", "unspecified"},
		{"::1/128", kindLoopback},
		{"64:ff9b:1::/48", "local-use IPv4/IPv6 translation"},
		{"100::/64", "discard-only"},
		{"2001::/23", "IETF protocol assignment"},
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "segment routing"},
		{"fc00::/7", "unique local (private)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local"},
		{"ff00::/8", "multicast"},
	} {
		out = append(out, specialPrefix{netip.MustParsePrefix(p.cidr), p.kind})
	}
	return out
}()

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// specialUse names the special-use range ip is in, or "" for a public
// address. IPv4-mapped IPv6 addresses are judged as the IPv4 address they
// carry, and so are NAT64 (64:ff9b::/96) ones.
func specialUse(ip netip.Addr) string {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		if k := specialUse(netip.AddrFrom4([4]byte(b[12:]))); k != "" {
			return k + " (through NAT64)"
		}
		return ""
	}
	for _, p := range specialPrefixes {
		if p.prefix.Contains(ip) {
			return p.kind
		}
	}
	return ""
}
