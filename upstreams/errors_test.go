package upstreams

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
)

// TestDescribeError: transport errors are described by their network
// cause, never with the URL (whose query could carry a secret) nor the
// internal address.
func TestDescribeError(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, tc := range []struct {
		err       error
		want, not string
	}{
		{nil, "", ""},
		{&url.Error{Op: "Post", URL: "https://crm.example/mcp?sig=SECRET", Err: refused}, "dial: connect: connection refused", "SECRET"},
		{&net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8443}, Err: refused.Err}, "dial: connect: connection refused", "10.0.0.5"},
		{&url.Error{Op: "Get", URL: "https://x.example/?token=SECRET", Err: errors.New("tls: handshake failure")}, "tls: handshake failure", "SECRET"},
		{fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), "unexpected EOF (connection closed mid-response)", ""},
		{errors.New("plain"), "plain", ""},
	} {
		got := DescribeError(tc.err)
		if got != tc.want || (tc.not != "" && strings.Contains(got, tc.not)) {
			t.Errorf("DescribeError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
