package errtext

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTransport(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, dialErr := net.Dial("tcp", addr)
	_, getErr := http.Get("http://" + addr + "/mcp?secret=1")
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	_, tlsErr := http.Get(tlsSrv.URL) // self-signed: unknown authority
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	_, recErr := (&http.Client{Timeout: 5 * time.Second}).Get(strings.Replace(plain.URL, "http:", "https:", 1))
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return nil, errors.New("no resolver")
	}}
	_, dnsErr := resolver.LookupHost(context.Background(), "crm.internal.example")

	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"dial", dialErr, "dial: connection refused"},
		{"http get", getErr, "dial: connection refused"},
		{"wrapped", fmt.Errorf("connecting: %w", getErr), "dial: connection refused"},
		{"tls unknown authority", tlsErr, "unknown authority"},
		{"tls to a plain server", recErr, "HTTP response to HTTPS"},
		{"dns", dnsErr, "DNS lookup failed"},
		{"hostname", x509.HostnameError{Host: "10.1.2.3"}, "not valid for its host name"},
		{"eof", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), "unexpected EOF"},
		{"url error", &url.Error{Op: "Post", URL: "https://10.0.0.5:8443/token", Err: errors.New("boom at 10.0.0.5:8443")}, "boom at [address]"},
		{"tls record", tls.RecordHeaderError{Msg: "x"}, "did not answer with TLS"},
	} {
		got := Transport(tc.err)
		if !strings.Contains(got, tc.want) || strings.Contains(got, addr) || strings.Contains(got, "127.0.0.1") || strings.Contains(got, "10.0.0.5") || strings.Contains(got, "secret") {
			t.Errorf("%s: Transport(%v) = %q, want it to contain %q and no address", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestStripAddrs(t *testing.T) {
	for in, want := range map[string]string{
		"dial tcp 10.0.0.5:443: connect: connection refused": "dial tcp [address]: connect: connection refused",
		"dial tcp [fd00::1]:8080: i/o timeout":               "dial tcp [address]: i/o timeout",
		"Get http://crm.internal.svc:8080/mcp: EOF":          "Get http://[address]/mcp: EOF",
		"localhost:9000 refused":                             "[address] refused",
		"upstream crm: HTTP 502":                             "upstream crm: HTTP 502",
		"timed out after 30s":                                "timed out after 30s",
		"version 1.2.3 is old":                               "version 1.2.3 is old",
	} {
		if got := StripAddrs(in); got != want {
			t.Errorf("StripAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}
