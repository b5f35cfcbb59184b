package front

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"
)

// Session routing between replicas (stateful mode, server.session.peer_url).
//
// A session lives in the memory of the replica that created it. With
// peer routing on, the session id names that replica: it is the replica's
// peer URL and 16 random bytes, sealed with AES-GCM under a key derived
// from server.session.peer_secret (shared by the replicas). Any replica
// that receives a request for another replica's session forwards it there
// unchanged (headers, body, event streams); the owner authenticates and
// serves it. Clients cannot forge an owner (the id is authenticated) nor
// learn the replicas' addresses (it is encrypted). An id that does not
// open, or whose owner is gone, gets 404: the client starts a new session.

const (
	// SessionIDPrefix marks routable session ids (and their format version).
	SessionIDPrefix = "m1."
	// ForwardedHeader marks a request one replica forwarded to another; a
	// forwarded request is never forwarded again (no loops).
	ForwardedHeader = "Mandate-Forwarded"
)

// Peers seals and opens session ids and forwards requests.
type Peers struct {
	Self  string // this replica's peer URL, as configured
	aead  cipher.AEAD
	proxy *httputil.ReverseProxy
}

func NewPeers(self, secret string, transport http.RoundTripper) (*Peers, error) {
	key := sha256.Sum256([]byte("mandate session ids\x00" + secret))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	p := &Peers{Self: strings.TrimSuffix(self, "/"), aead: aead}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			owner, _ := url.Parse(pr.In.Header.Get(ForwardedHeader))
			pr.Out.Header.Set(ForwardedHeader, "1")
			pr.Out.URL.Scheme, pr.Out.URL.Host = owner.Scheme, owner.Host
			pr.Out.Host = pr.In.Host // the public Host: the owner checks it
			// The owner takes the client IP from X-Forwarded-For when this
			// replica is in its server.trusted_proxies: pass the chain on,
			// with this replica's peer appended.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1, // event streams pass through as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The owner is gone (restarted, scaled down): so is the session.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"session not found"}`))
		},
	}
	return p, nil
}

// NewID returns a session id owned by this replica.
func (p *Peers) NewID() string {
	plain := make([]byte, 16, 16+len(p.Self))
	_, _ = rand.Read(plain)
	plain = append(plain, p.Self...)
	nonce := make([]byte, p.aead.NonceSize(), p.aead.NonceSize()+len(plain)+p.aead.Overhead())
	_, _ = rand.Read(nonce)
	return SessionIDPrefix + base64.RawURLEncoding.EncodeToString(p.aead.Seal(nonce, nonce, plain, []byte(SessionIDPrefix)))
}

var errForeignID = errors.New("not a session id of this deployment")

// owner returns the peer URL of the replica that holds session id.
func (p *Peers) Owner(id string) (string, error) {
	raw, ok := strings.CutPrefix(id, SessionIDPrefix)
	if !ok || len(raw) > 1024 {
		return "", errForeignID
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) < p.aead.NonceSize()+p.aead.Overhead()+16 {
		return "", errForeignID
	}
	ns := p.aead.NonceSize()
	plain, err := p.aead.Open(nil, b[:ns], b[ns:], []byte(SessionIDPrefix))
	if err != nil || len(plain) < 16 {
		return "", errForeignID
	}
	return string(plain[16:]), nil
}

// Route forwards a request for another replica's session to it (and
// aborts); a request for this replica's own sessions, or without a
// session, goes on. An id that does not open gets 404.
func (p *Peers) Route(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		sid := c.GetHeader("Mcp-Session-Id")
		if sid == "" {
			return
		}
		owner, err := p.Owner(sid)
		if err != nil {
			c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "session not found"})
			return
		}
		if owner == p.Self {
			return
		}
		if c.GetHeader(ForwardedHeader) != "" {
			// Forwarded here, yet not ours: the replicas disagree about who
			// holds it (a misconfigured peer_url). Never forward twice.
			log.Warn("forwarded session request for another replica; check server.session.peer_url", "owner", owner, "self", p.Self)
			c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "session not found"})
			return
		}
		r := c.Request.Clone(c.Request.Context())
		if r.Method == http.MethodPost {
			// Read the (bounded) body before forwarding: streaming it, the
			// proxy's transport reads once more past Content-Length, which
			// fails once net/http has closed the inbound body because the
			// answer began — and the transport then drops the connection
			// under the answer (golang/go#40747; the same race as below, on
			// this hop).
			body, ok := ReadBody(c)
			if !ok {
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		r.Header.Set(ForwardedHeader, owner)                        // read by Rewrite, replaced by "1"
		r.Header.Set(RequestIDHeader, c.GetString(RequestIDHeader)) // one request id on both replicas
		p.proxy.ServeHTTP(&holdHeaderWriter{ResponseWriter: c.Writer}, r)
		c.Abort()
	}
}

// holdHeaderWriter keeps a forwarded answer's status line and headers
// until its first body bytes, so that they leave in one write, as the
// owner sent them (go-sdk and the fast path write the headers with the
// first event; an event stream starts with an ": ok" comment).
// httputil.ReverseProxy flushes the headers alone as soon as they arrive
// (event streams flush at once), and a load balancer built on Go's
// ReverseProxy then loses the answer: when its transport's read for
// bytes past Content-Length comes after the balancer began its response,
// net/http has closed the inbound body, the read fails, and the transport
// closes its connection to this replica under the answer still on its way
// (golang/go#40747). With the headers and the answer in one write, the
// answer is already in the balancer's buffer; only the end of the stream
// may be cut, after the client has its answer. A response without a body
// goes out when the handler returns.
//
// ReverseProxy calls Write and Flush under one lock (its latency writer).
type holdHeaderWriter struct {
	http.ResponseWriter
	body atomic.Bool
}

func (w *holdHeaderWriter) Write(b []byte) (int, error) {
	if len(b) > 0 {
		w.body.Store(true)
	}
	return w.ResponseWriter.Write(b)
}

// Flush flushes once body bytes were written; before, it does nothing.
func (w *holdHeaderWriter) Flush() {
	if w.body.Load() {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

func (w *holdHeaderWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
