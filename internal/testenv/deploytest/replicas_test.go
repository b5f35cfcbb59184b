package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/testenv/testproc"
)

// Routing policies of lbProxy, the load balancer in front of the replicas.
const (
	// roundRobin: each request to the next replica (a Service without
	// affinity, or an ingress without annotations).
	roundRobin = "round-robin"
	// headerHash: hash of the Mcp-Session-Id header, "" when absent (what
	// ingress-nginx does with upstream-hash-by: "$http_mcp_session_id").
	headerHash = "header-hash"
	// learned: requests without a session id go round robin; the proxy
	// records which replica answered with a new Mcp-Session-Id and sends
	// that session's requests there (HAProxy `stick store-response
	// res.hdr(mcp-session-id)`, NGINX Plus `sticky learn`).
	learned = "learned"
)

// lbProxy is a loopback reverse proxy over the replicas with a switchable
// routing policy; it counts the requests each replica served. It is Go's
// httputil.ReverseProxy on a net/http server, as Go-based balancers are,
// with their flaw kept on purpose: a response that starts before the
// transport's read past Content-Length can lose its rest (golang/go#40747;
// see holdHeaderWriter in gateway/peers.go).
type lbProxy struct {
	backends []*url.URL
	served   []atomic.Int64
	rr       atomic.Uint64
	policy   atomic.Value // string

	mu      sync.Mutex
	owner   map[string]int // learned: session id -> replica
	created []created      // sessions created, in order
}

// created is a session id and the replica that answered the initialize
// request that created it.
type created struct {
	ID      string
	Replica int
}

func newLBProxy(backends []*url.URL, policy string) *lbProxy {
	p := &lbProxy{backends: backends, served: make([]atomic.Int64, len(backends)), owner: map[string]int{}}
	p.policy.Store(policy)
	return p
}

func (p *lbProxy) setPolicy(policy string) { p.policy.Store(policy) }

// hashReplica is the replica headerHash picks for a session id.
func (p *lbProxy) hashReplica(sid string) int {
	h := fnv.New32a()
	h.Write([]byte(sid))
	return int(h.Sum32() % uint32(len(p.backends)))
}

func (p *lbProxy) pick(r *http.Request) int {
	sid := r.Header.Get("Mcp-Session-Id")
	switch p.policy.Load().(string) {
	case headerHash:
		return p.hashReplica(sid)
	case learned:
		p.mu.Lock()
		defer p.mu.Unlock()
		if i, ok := p.owner[sid]; ok && sid != "" {
			return i
		}
		// A new session: spread sessions, not requests, over the replicas
		// (the go-sdk v1.8 client sends two POSTs without a session id per
		// session, server/discover then initialize, so per-request round
		// robin would put every session on the same replica).
		return len(p.owner) % len(p.backends)
	}
	return int(p.rr.Add(1)-1) % len(p.backends)
}

type replicaKey struct{}

func (p *lbProxy) handler() http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			i := r.In.Context().Value(replicaKey{}).(int)
			r.SetURL(p.backends[i])
			r.Out.Host = r.In.Host // as an ingress does: public_url's host
			r.SetXForwarded()
		},
		FlushInterval: -1, // SSE: flush every write
		ModifyResponse: func(resp *http.Response) error {
			i := resp.Request.Context().Value(replicaKey{}).(int)
			if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && resp.Request.Header.Get("Mcp-Session-Id") == "" {
				p.mu.Lock()
				p.owner[sid] = i
				p.created = append(p.created, created{ID: sid, Replica: i})
				p.mu.Unlock()
			}
			return nil
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := p.pick(r)
		p.served[i].Add(1)
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), replicaKey{}, i)))
	})
}

func (p *lbProxy) counts() []int64 {
	out := make([]int64, len(p.served))
	for i := range p.served {
		out[i] = p.served[i].Load()
	}
	return out
}

func (p *lbProxy) lastCreated() (created, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.created) == 0 {
		return created{}, false
	}
	return p.created[len(p.created)-1], true
}

func (p *lbProxy) resetCounts() {
	for i := range p.served {
		p.served[i].Store(0)
	}
}

// cluster is two `mandate serve` replicas sharing one config behind lbProxy.
type cluster struct {
	proxy  *lbProxy
	URL    string // the proxy's URL = server.public_url of both replicas
	MCPURL string
}

// startCluster starts the proxy listener (its URL is the public_url), two
// mandate processes with the same config in sessionMode, and waits until
// both are ready. With peer, the replicas run peer routing configured as the
// Helm chart renders it (peer_url http://${POD_IP}:<port>, peer_secret
// ${MANDATE_PEER_SECRET}), with POD_IP=127.0.0.1 and a shared secret.
func startCluster(t *testing.T, bin, issuer, sessionMode string, peer bool) *cluster {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	publicURL := "http://" + ln.Addr().String()
	var peerCfg string
	var env []string
	if peer {
		peerCfg = fmt.Sprintf("\n    peer_url: %s\n    peer_secret: %s",
			strings.Replace(chartPeerURLIPv4, ":8080", ":{{PORT}}", 1), chartPeerSecret)
		env = []string{"POD_IP=127.0.0.1", "MANDATE_PEER_SECRET=" + testPeerSecret}
	}
	var backends []*url.URL
	for i := range 2 {
		addr := startReplica(t, bin, i, env, fmt.Sprintf(`server:
  listen: {{ADDR}}
  public_url: %s
  shutdown_grace: 2s
  session:
    mode: %s%s
identity:
  issuer: %s
  required_scopes: [mcp]
telemetry:
  traces: none
  metrics: none
`, publicURL, sessionMode, peerCfg, issuer))
		backends = append(backends, &url.URL{Scheme: "http", Host: addr})
	}
	p := newLBProxy(backends, roundRobin)
	srv := &http.Server{Handler: p.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &cluster{proxy: p, URL: publicURL, MCPURL: publicURL + "/mcp"}
}

// startReplica writes cfg ({{ADDR}} = a free loopback address, {{PORT}} its
// port) and runs `mandate serve --config` with env added to the test's
// environment until /readyz answers 200 (internal/testenv/testproc: own process
// group, bounded log, a retry when the port was taken meanwhile); it
// returns the address.
func startReplica(t *testing.T, bin string, n int, env []string, cfg string) string {
	t.Helper()
	type replica struct {
		p    *testproc.Process
		addr string
	}
	r, err := testproc.StartRetrying(context.Background(), 60*time.Second, func(ctx context.Context) (replica, error) {
		ports, err := testproc.FreePorts(1)
		if err != nil {
			return replica{}, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		path := filepath.Join(t.TempDir(), fmt.Sprintf("replica-%d.yaml", n))
		if err := os.WriteFile(path, []byte(strings.NewReplacer("{{ADDR}}", addr, "{{PORT}}", strconv.Itoa(ports[0])).Replace(cfg)), 0o600); err != nil {
			return replica{}, err
		}
		p, err := testproc.Start(testproc.Command{Name: fmt.Sprintf("replica %d", n), Path: bin,
			Args: []string{"serve", "--config", path}, Env: append(os.Environ(), env...)})
		if err != nil {
			return replica{}, err
		}
		if err := p.WaitHTTP(ctx, "http://"+addr+"/readyz"); err != nil {
			_ = p.Close()
			return replica{}, err
		}
		return replica{p, addr}, nil
	})
	if err != nil {
		t.Fatalf("replica %d: %v", n, err)
	}
	t.Cleanup(func() {
		_ = r.p.Close()
		if t.Failed() {
			t.Logf("replica %d (%s) logs:\n%s", n, r.addr, r.p.Log())
		}
	})
	return r.addr
}

type bearer struct {
	token string
	base  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func connect(ctx context.Context, endpoint, token string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "mandate-deploytest", Version: "1"}, nil)
	tr := &http.Transport{}
	return c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: &bearer{token: token, base: tr}},
		MaxRetries: -1, // a failure is a failure: no reconnect that could hide it
	}, nil)
}

// whoami calls the built-in whoami tool and returns the subject it reports.
func whoami(ctx context.Context, cs *mcp.ClientSession) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("whoami error result: %+v", res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return "", err
	}
	var w struct {
		Subject string `json:"subject"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return "", err
	}
	return w.Subject, nil
}

// session opens one client session and makes calls whoami calls; it returns
// how many succeeded and the first error (connect errors count as no call).
func session(ctx context.Context, endpoint, token string, calls int) (ok int, firstErr error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cs, err := connect(cctx, endpoint, token)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer cs.Close()
	for i := range calls {
		sub, err := whoami(cctx, cs)
		if err == nil && sub != "user-alice" {
			err = fmt.Errorf("whoami subject %q, want user-alice", sub)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("call %d: %w", i+1, err)
			}
			continue
		}
		ok++
	}
	return ok, firstErr
}

// TestReplicas runs two real gateway processes behind a loopback load
// balancer, with the real dev IdP, in both session modes.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts four gateway processes")
	}
	bin := mandateBinary(t)
	// The subtests run in parallel, after this function returns: tie the
	// context and the IdP to the test's cleanup, not to a defer.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	idp, err := devidp.Start(context.Background(), devidp.Options{})
	if err != nil {
		t.Fatalf("devidp.Start: %v", err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	tokenFor := func(t *testing.T, mcpURL string) string {
		tok, err := idp.Token(ctx, "alice", devidp.TokenOptions{Audience: []string{mcpURL}, Scopes: []string{"mcp"}})
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		return tok
	}

	t.Run("stateless round-robin: every call succeeds on either replica", func(t *testing.T) {
		t.Parallel()
		c := startCluster(t, bin, idp.Issuer(), "stateless", false)
		tok := tokenFor(t, c.MCPURL)
		const calls = 40
		ok, err := session(ctx, c.MCPURL, tok, calls)
		if ok != calls || err != nil {
			t.Fatalf("%d/%d whoami calls succeeded; first error: %v", ok, calls, err)
		}
		n := c.proxy.counts()
		if n[0] == 0 || n[1] == 0 {
			t.Fatalf("requests per replica %v: want both replicas to have served", n)
		}
		t.Logf("%d/%d calls succeeded; requests per replica: %v", ok, calls, n)
	})

	t.Run("stateful", func(t *testing.T) {
		t.Parallel()
		c := startCluster(t, bin, idp.Issuer(), "stateful", false)
		tok := tokenFor(t, c.MCPURL)

		// Without affinity a session's requests reach the replica that does
		// not hold it, which answers 404 (session not found).
		t.Run("round-robin fails on the other replica", func(t *testing.T) {
			c.proxy.setPolicy(roundRobin)
			c.proxy.resetCounts()
			const calls = 10
			ok, err := session(ctx, c.MCPURL, tok, calls)
			if err == nil {
				t.Fatalf("all %d calls succeeded with round robin over two stateful replicas; want failures", ok)
			}
			t.Logf("as documented: %d/%d calls succeeded; first error: %v", ok, calls, err)
		})

		// A plain hash of Mcp-Session-Id: initialize carries no session
		// id, so it lands on hash("")'s replica, which creates the session;
		// later requests go to hash(id)'s replica. The session works iff
		// the two agree, which the test predicts for every session.
		t.Run("header hash works only when the id hashes to its creator", func(t *testing.T) {
			c.proxy.setPolicy(headerHash)
			var good, bad int
			for i := 0; i < 40 && (good == 0 || bad == 0); i++ {
				ok, err := session(ctx, c.MCPURL, tok, 3)
				cr, found := c.proxy.lastCreated()
				if !found {
					t.Fatalf("session %d: no session was created (err %v)", i, err)
				}
				want := c.proxy.hashReplica(cr.ID) == cr.Replica
				if got := err == nil && ok == 3; got != want {
					t.Fatalf("session %d (created on replica %d, id hashes to %d): success=%v (%d/3 calls, err %v), want %v",
						i, cr.Replica, c.proxy.hashReplica(cr.ID), got, ok, err, want)
				}
				if want {
					good++
				} else {
					bad++
				}
			}
			if good == 0 || bad == 0 {
				t.Fatalf("good=%d bad=%d sessions: want both outcomes within 40 sessions", good, bad)
			}
			t.Logf("header hash: %d session(s) worked (id hashed to the creating replica), %d failed (it did not)", good, bad)
		})

		// Learned stickiness: every session works, and new sessions spread
		// over both replicas.
		t.Run("learned affinity: every call succeeds", func(t *testing.T) {
			c.proxy.setPolicy(learned)
			c.proxy.mu.Lock()
			before := len(c.proxy.created)
			c.proxy.mu.Unlock()
			const sessions, calls = 4, 10
			for i := range sessions {
				if ok, err := session(ctx, c.MCPURL, tok, calls); ok != calls || err != nil {
					t.Fatalf("session %d: %d/%d calls succeeded; first error: %v", i, ok, calls, err)
				}
			}
			c.proxy.mu.Lock()
			made := c.proxy.created[before:]
			c.proxy.mu.Unlock()
			per := make([]int, 2)
			for _, cr := range made {
				per[cr.Replica]++
			}
			if len(made) != sessions || per[0] == 0 || per[1] == 0 {
				t.Fatalf("sessions created per replica %v (of %d): want %d spread over both", per, len(made), sessions)
			}
			t.Logf("learned affinity: %d sessions × %d calls succeeded; sessions per replica %v", sessions, calls, per)
		})
	})

	// The chart's setup for stateful mode with several pods: peer routing,
	// no affinity. Whichever replica a request reaches, it is served by the
	// replica holding its session: round robin and the header hash, which
	// both fail above without peer routing, now succeed on every call.
	t.Run("stateful with peer routing", func(t *testing.T) {
		t.Parallel()
		c := startCluster(t, bin, idp.Issuer(), "stateful", true)
		tok := tokenFor(t, c.MCPURL)
		for _, policy := range []string{roundRobin, headerHash} {
			t.Run(policy+": every call succeeds", func(t *testing.T) {
				c.proxy.setPolicy(policy)
				c.proxy.resetCounts()
				c.proxy.mu.Lock()
				before := len(c.proxy.created)
				c.proxy.mu.Unlock()
				// At least 4 sessions, more (up to 40) until both replicas have
				// received requests: with the header hash, a few session ids
				// may all hash to one replica by chance.
				const calls = 10
				sessions := 0
				n := c.proxy.counts()
				for sessions < 4 || ((n[0] == 0 || n[1] == 0) && sessions < 40) {
					if ok, err := session(ctx, c.MCPURL, tok, calls); ok != calls || err != nil {
						t.Fatalf("session %d: %d/%d calls succeeded; first error: %v", sessions, ok, calls, err)
					}
					sessions++
					n = c.proxy.counts()
				}
				if n[0] == 0 || n[1] == 0 {
					t.Fatalf("requests per replica %v: want both replicas to have received requests", n)
				}
				if policy == headerHash {
					// Why the chart refuses upstream-hash-by: initialize has
					// no session id, so every session is created on the
					// replica hash("") picks.
					c.proxy.mu.Lock()
					made := c.proxy.created[before:]
					c.proxy.mu.Unlock()
					for _, cr := range made {
						if cr.Replica != c.proxy.hashReplica("") {
							t.Fatalf("session created on replica %d, want all on hash(\"\")'s replica %d", cr.Replica, c.proxy.hashReplica(""))
						}
					}
					if len(made) != sessions {
						t.Fatalf("%d sessions recorded, want %d", len(made), sessions)
					}
				}
				t.Logf("%s with peer routing: %d sessions × %d calls succeeded; requests per replica %v", policy, sessions, calls, n)
			})
		}
	})
}
