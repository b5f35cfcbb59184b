// Package errtext renders errors for messages that leave the operator's
// side (JSON-RPC errors, tool errors, /readyz): the cause of a failure,
// never an internal network address (host:port, IP), which tells an
// outsider the layout of the internal network.
//
//	errtext.Transport(err) // "dial: connection refused" for "dial tcp 10.0.0.5:443: connect: connection refused"
//	errtext.StripAddrs(s)  // "… [address] …"
package errtext

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
)

// Transport describes a transport error (dialing, TLS, reading) by its
// cause: the innermost network error without addresses or URLs.
func Transport(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected EOF (connection closed mid-response)"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		switch {
		case dns.IsNotFound:
			return "DNS lookup failed: no such host"
		case dns.IsTimeout:
			return "DNS lookup timed out"
		}
		return "DNS lookup failed"
	}
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invErr x509.CertificateInvalidError
	var recErr tls.RecordHeaderError
	switch {
	case errors.As(err, &hostErr):
		return "TLS: the server's certificate is not valid for its host name"
	case errors.As(err, &authErr):
		return "TLS: the server's certificate is signed by an unknown authority"
	case errors.As(err, &invErr):
		return "TLS: the server's certificate is invalid (expired or not yet valid?)"
	case errors.As(err, &recErr):
		return "TLS handshake failed: the server did not answer with TLS"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + cause(op.Err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return Transport(ue.Err)
	}
	return StripAddrs(err.Error())
}

func cause(err error) string {
	var sc *os.SyscallError
	if errors.As(err, &sc) {
		return sc.Err.Error() // "connection refused", "connection reset by peer"
	}
	if err == nil {
		return "failed"
	}
	return StripAddrs(err.Error())
}

// addrPattern matches IPv4 and bracketed IPv6 addresses (with an optional
// port) and host names with a port.
var addrPattern = regexp.MustCompile(`\[[0-9A-Fa-f:.%a-z]+\](?::\d{1,5})?|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b|\b(?:localhost|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+):\d{1,5}\b`)

// StripAddrs replaces network addresses in s with "[address]".
func StripAddrs(s string) string {
	return addrPattern.ReplaceAllString(s, "[address]")
}
