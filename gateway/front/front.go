// Package front is Mandate's HTTP front: the checks every request to the
// MCP endpoint passes before it is authenticated — request ids, session id
// shape, Host and Origin (DNS rebinding, CSRF), body size and read time —
// panic recovery, routing a session's requests to the replica that holds
// it (peers), and the bounded recording of authentication failures.
package front

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// Recovery answers a panic in a handler with 500 (or aborts a started
// answer) and logs it — never the request headers, which hold bearer
// tokens.
func Recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				// Never log request headers: they hold bearer tokens.
				log.Error("panic serving request", "method", c.Request.Method, "path", c.Request.URL.Path,
					"request_id", c.GetString(RequestIDHeader), "panic", rec, "stack", string(debug.Stack()))
				if !c.Writer.Written() {
					c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
				} else {
					c.Abort()
				}
			}
		}()
		c.Next()
	}
}

// RequestID accepts a sane incoming X-Request-Id or makes one, and echoes it.
func RequestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(RequestIDHeader, id)
		c.Header(RequestIDHeader, id)
		c.Next()
	}
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// MaxSessionIDLen bounds Mcp-Session-Id. go-sdk's ids are 26 characters;
// with peer routing an id carries the owner's sealed peer URL: 3 + 4/3 ×
// (44 + len(peer_url)) characters (131 for an IPv6 pod URL), so
// server.session.peer_url is limited to MaxPeerURLLen.
const (
	MaxSessionIDLen = 256
	MaxPeerURLLen   = 140
)

// CheckSessionID refuses a malformed Mcp-Session-Id before anything else
// (authentication, audit): session ids are visible ASCII (0x21-0x7E), at
// most MaxSessionIDLen bytes, one value. An empty value counts as absent.
func CheckSessionID(c *gin.Context) {
	vals := c.Request.Header.Values("Mcp-Session-Id")
	if len(vals) == 0 || len(vals) == 1 && vals[0] == "" {
		return
	}
	if len(vals) == 1 && ValidSessionID(vals[0]) {
		return
	}
	c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"jsonrpc": "2.0", "id": nil, "error": gin.H{
		"code":    jsonrpc.CodeInvalidRequest,
		"message": fmt.Sprintf("invalid Mcp-Session-Id header: want one value of 1-%d visible ASCII characters", MaxSessionIDLen),
	}})
}

func ValidSessionID(s string) bool {
	if s == "" || len(s) > MaxSessionIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Origins is what the Host and Origin checks accept: public_url's origin
// and host, and server.allowed_origins.
type Origins struct {
	Origin     string
	PublicHost string
	Allowed    []string
}

// Check enforces server.allowed_origins (CSRF protection for browser
// clients) and refuses DNS rebinding. Requests without Origin (non-browser
// clients), same-origin requests and the origin of public_url pass. On a
// loopback connection the Host must be a loopback name or public_url's
// host: a hostile name resolving to 127.0.0.1 is refused, while a sidecar
// or local proxy forwarding the public Host still works.
func (g *Origins) Check(c *gin.Context) {
	if !g.HostAllowed(c.Request) {
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "invalid Host header"})
		return
	}
	o := c.GetHeader("Origin")
	if o == "" || o == g.Origin || slices.Contains(g.Allowed, o) || sameOrigin(o, c.Request) {
		c.Next()
		return
	}
	c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "origin not allowed"})
}

// HostAllowed is the DNS rebinding check of Check.
func (g *Origins) HostAllowed(r *http.Request) bool {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return true
	}
	ta, ok := la.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.EqualFold(host, g.PublicHost) {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether origin names the host the request was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// LimitBody bounds a request body to max bytes (413 beyond) and, for a
// POST, its arrival to readTimeout.
func LimitBody(max int64, readTimeout time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) { limitBody(c, max, readTimeout) }
}

func limitBody(c *gin.Context, max int64, readTimeout time.Duration) {
	if c.Request.ContentLength > max {
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"error": "request body too large"})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
	// A body sent byte by byte must not hold a connection: the read deadline
	// is lifted at the body's end only (an unread rest, discarded by the
	// server after the answer, stays bounded by it).
	if t := readTimeout; t > 0 && c.Request.Method == http.MethodPost {
		rc := http.NewResponseController(c.Writer)
		if rc.SetReadDeadline(time.Now().Add(t)) == nil {
			c.Request.Body = &deadlineBody{ReadCloser: c.Request.Body, rc: rc, left: c.Request.ContentLength}
		}
	}
	c.Next()
}

// deadlineBody lifts the connection's read deadline when the body ends:
// at EOF, or once Content-Length bytes are in (a reader that knows the
// length, such as the peer-forwarding proxy, never asks for the EOF).
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	left int64 // bytes still expected; -1: unknown length
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left >= 0 {
		b.left -= int64(n)
	}
	if !b.done && (err == io.EOF || b.left == 0) {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// ReadBody reads the request body and puts it back for the handlers after
// this one. A body over the limit gets 413 and one that cannot be read
// 400; then the request is aborted and ok is false.
func ReadBody(c *gin.Context) (body []byte, ok bool) {
	body, err := io.ReadAll(c.Request.Body)
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"error": "request body too large"})
		} else {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "reading request body failed"})
		}
		return nil, false
	}
	return body, true
}
