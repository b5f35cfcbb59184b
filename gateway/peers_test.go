package gateway

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/front"
	"github.com/mandate-gw/mandate/internal/secret"
)

const testPeerSecret = "0123456789abcdef0123456789abcdef-test"

// replicaPair is two stateful replicas with peer routing behind a
// round-robin "load balancer" (a client transport) with no affinity.
type replicaPair struct {
	env       *muxEnv // replica A (and the IdP, upstreams)
	b         *testGW // replica B
	addrs     [2]string
	forwarded [2]atomic.Int64 // requests each replica received from the other
}

func startReplicaPair(t *testing.T) *replicaPair {
	t.Helper()
	return startReplicaPairOpts(t, nil, Options{})
}

// startReplicaPairOpts is startReplicaPair with mutate applied to both
// replicas' configuration and opts given to replica A.
func startReplicaPairOpts(t *testing.T, mutate func(*Config), opts Options) *replicaPair {
	t.Helper()
	rp := &replicaPair{}
	count := func(i int, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(front.ForwardedHeader) != "" {
				rp.forwarded[i].Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
	rp.env = startMuxOpts(t, func(c *Config) {
		c.Server.Session.PeerURL = "http://" + c.Server.Listen
		c.Server.Session.PeerSecret = testPeerSecret
		if mutate != nil {
			mutate(c)
		}
	}, opts)
	a := rp.env.gw
	a.srv.Config.Handler = count(0, a.g.Handler())
	rp.addrs[0] = a.srv.Listener.Addr().String()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := *a.cfg // same public_url, identity, upstreams, policy
	cfg.Server.Listen = ln.Addr().String()
	cfg.Server.Session.PeerURL = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, &cfg, Options{AuditOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(count(1, g.Handler()))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); cancel(); g.Close() })
	for !g.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	rp.b = &testGW{g: g, srv: srv, cfg: &cfg, mcpURL: cfg.MCPURL()}
	rp.addrs[1] = ln.Addr().String()
	return rp
}

// lbTransport sends each request to the next replica in turn, with the
// public Host, as a load balancer without affinity would.
type lbTransport struct {
	addrs []string
	next  atomic.Int64
}

func (l *lbTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = r.URL.Host
	r.URL.Host = l.addrs[int(l.next.Add(1))%len(l.addrs)]
	return http.DefaultTransport.RoundTrip(r)
}

// post sends body straight to replica i with the public Host, as the load
// balancer would.
func (rp *replicaPair) post(t *testing.T, i int, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	tg := &testGW{mcpURL: strings.Replace(rp.env.gw.mcpURL, rp.addrs[0], rp.addrs[i], 1)}
	return tg.postHost(t, body, hdr, rp.addrs[0])
}

func (rp *replicaPair) connect(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   rp.env.gw.mcpURL,
		HTTPClient: &http.Client{Transport: &headerTransport{token: token, base: &lbTransport{addrs: rp.addrs[:]}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestPeerRoutingStatefulReplicas: with server.session.peer_url, two
// stateful replicas behind a load balancer without affinity serve one
// session: requests that land on the other replica are forwarded to the
// session's owner, which authenticates and answers them (listings, fast
// and go-sdk path calls, the event stream), and still refuses another
// user's token on the session.
func TestPeerRoutingStatefulReplicas(t *testing.T) {
	rp := startReplicaPair(t)
	alice := rp.connect(t, rp.env.aliceTk)
	if !strings.HasPrefix(alice.ID(), front.SessionIDPrefix) || strings.Contains(alice.ID(), "127.0.0.1") {
		t.Fatalf("session id %q: want a sealed, routable id that does not show the replica's address", alice.ID())
	}
	for i := range 8 {
		if got := toolNames(t, alice); len(got) == 0 {
			t.Fatalf("listing %d: no tools", i)
		}
		if err := callWho(t, alice, "crm", "user-alice"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if w := callWhoAmI(t, alice); w.Subject != "user-alice" {
			t.Fatalf("whoami %d: %+v", i, w)
		}
	}
	if rp.forwarded[0].Load()+rp.forwarded[1].Load() == 0 {
		t.Fatal("no request was forwarded between the replicas: the test did not exercise routing")
	}
	if rp.forwarded[0].Load() > 0 && rp.forwarded[1].Load() > 0 {
		t.Fatalf("both replicas received forwarded requests (%d, %d): one session has one owner", rp.forwarded[0].Load(), rp.forwarded[1].Load())
	}
	// Bob's token on alice's session, through either replica: 403 from the owner.
	for i := range 2 {
		hdr := bearer(rp.env.bobTk)
		hdr["Mcp-Session-Id"] = alice.ID()
		hdr["Mcp-Protocol-Version"] = "2025-11-25"
		resp, body := rp.post(t, i, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, hdr)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("replica %d: bob on alice's session = %d %s, want 403", i, resp.StatusCode, body)
		}
	}
	t.Logf("forwarded requests: to A %d, to B %d", rp.forwarded[0].Load(), rp.forwarded[1].Load())
}

// TestPeerRoutingRejects: ids that do not open under the shared secret
// (forged, from another deployment, plain go-sdk ids) and ids whose owner
// is gone get 404 — the client starts a new session — and are never
// forwarded anywhere.
func TestPeerRoutingRejects(t *testing.T) {
	rp := startReplicaPair(t)
	other, err := front.NewPeers("http://127.0.0.1:1", "another deployment's secret, 32+ chars", nil)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := front.NewPeers("http://127.0.0.1:1", testPeerSecret, nil) // a replica that is no more
	if err != nil {
		t.Fatal(err)
	}
	alice := rp.connect(t, rp.env.aliceTk)
	tampered := []byte(alice.ID())
	tampered[len(tampered)-3] ^= 1
	for name, sid := range map[string]string{
		"go-sdk id":          "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
		"other secret":       other.NewID(),
		"tampered":           string(tampered),
		"prefix only":        front.SessionIDPrefix,
		"not base64":         front.SessionIDPrefix + "!!!",
		"owner gone":         gone.NewID(),
		"huge":               front.SessionIDPrefix + strings.Repeat("A", 5000),
		"forwarded, foreign": "",
	} {
		hdr := bearer(rp.env.aliceTk)
		hdr["Mcp-Session-Id"] = sid
		if name == "forwarded, foreign" {
			// A request that claims to be forwarded, for a session of the
			// other replica: never forwarded again.
			hdr["Mcp-Session-Id"] = alice.ID()
			hdr[front.ForwardedHeader] = "1"
		}
		hdr["Mcp-Protocol-Version"] = "2025-11-25"
		before := rp.forwarded[0].Load() + rp.forwarded[1].Load()
		statuses := []int{}
		for i := range 2 {
			resp, _ := rp.post(t, i, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, hdr)
			statuses = append(statuses, resp.StatusCode)
		}
		switch name {
		case "huge":
			// Malformed (over front.MaxSessionIDLen): refused before routing.
			if statuses[0] != http.StatusBadRequest || statuses[1] != http.StatusBadRequest {
				t.Errorf("%s: statuses %v, want 400 from both replicas", name, statuses)
			}
		case "forwarded, foreign":
			// The owner answers (200), the other replica refuses (404).
			if (statuses[0] == http.StatusNotFound) == (statuses[1] == http.StatusNotFound) {
				t.Errorf("%s: statuses %v, want one 404 (the non-owner) and one answer", name, statuses)
			}
		default:
			if statuses[0] != http.StatusNotFound || statuses[1] != http.StatusNotFound {
				t.Errorf("%s: statuses %v, want 404 from both replicas", name, statuses)
			}
		}
		want := int64(0)
		if name == "forwarded, foreign" {
			want = 2 // the test's own two requests carry the header
		}
		if d := rp.forwarded[0].Load() + rp.forwarded[1].Load() - before; d != want {
			t.Errorf("%s: %d requests forwarded", name, d)
		}
	}
	// The owner goes away: its sessions answer 404 through the survivor.
	owner, survivor := 0, 1
	if o, _ := rp.b.g.peers.Owner(alice.ID()); o == "http://"+rp.addrs[1] {
		owner, survivor = 1, 0
	}
	srv := rp.env.gw.srv
	if owner == 1 {
		srv = rp.b.srv
	}
	srv.Listener.Close() // not Close: it waits for the client's open event stream
	srv.CloseClientConnections()
	hdr := bearer(rp.env.aliceTk)
	hdr["Mcp-Session-Id"] = alice.ID()
	hdr["Mcp-Protocol-Version"] = "2025-11-25"
	start := time.Now()
	if resp, body := rp.post(t, survivor, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, hdr); resp.StatusCode != http.StatusNotFound {
		t.Errorf("session of a stopped replica: %d %s, want 404", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answering for a stopped replica took %s", d)
	}
}

func TestPeerRoutingConfig(t *testing.T) {
	base := "server:\n  public_url: https://mcp.example.com\n  session:\n"
	tail := "identity:\n  issuer: https://login.example.com/\n"
	vars := env(map[string]string{"PEER": testPeerSecret, "SHORT": "short"})
	for _, tc := range []struct{ yaml, want string }{
		{"    peer_url: http://10.0.0.7:8080\n", "server.session.peer_secret: required with peer_url"},
		{"    peer_url: http://10.0.0.7:8080/mcp\n    peer_secret: ${PEER}\n", "server.session.peer_url: must be scheme://host:port"},
		{"    mode: stateless\n    peer_url: http://10.0.0.7:8080\n    peer_secret: ${PEER}\n", "applies only to stateful mode"},
		{"    peer_secret: ${PEER}\n", "server.session.peer_secret: has no effect without peer_url"},
		{"    peer_url: http://10.0.0.7:8080\n    peer_secret: ${SHORT}\n", "at least 32 characters"},
		{"    peer_url: http://10.0.0.7:8080\n    peer_secret: " + testPeerSecret + "\n", "c.yaml:5: server.session.peer_secret: a secret must not be written in the configuration"},
	} {
		_, err := ParseConfig("c.yaml", []byte(base+tc.yaml+tail), vars)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if c, err := ParseConfig("c.yaml", []byte(base+"    peer_url: http://10.0.0.7:8080\n    peer_secret: ${PEER}\n"+tail), vars); err != nil {
		t.Fatal(err)
	} else if c.Server.Session.PeerSecret != secret.String(testPeerSecret) {
		t.Fatal("peer_secret not read")
	}
}

// TestPeerForwardKeepsAnswerBehindGoProxy: an answer forwarded between
// replicas reaches a client behind a load balancer built on Go's
// httputil.ReverseProxy (Traefik, gorouter, the deploytest balancer).
// Such a balancer tears down its connection to the replica when its
// transport reads the request body once more after Content-Length bytes
// (to check for extra bytes) and that read comes after the balancer
// started its response: net/http's HTTP/1 server closes the inbound body
// when a response begins (golang/go#40747). Whatever of the answer had
// not reached the balancer by then is lost, the client sees the stream
// end without its answer. The owner replica sends its answer's headers
// together with the answer; the forwarding replica must too, not flush
// the headers alone as soon as they arrive. lbProxy here makes the late
// read deterministic: it waits until the balancer flushed the response
// headers; the owner (a stub) sends the answer only after that read.
func TestPeerForwardKeepsAnswerBehindGoProxy(t *testing.T) {
	idp := startIdP(t)
	a := startGateway(t, idp.Issuer(), func(c *Config) {
		c.Server.Session.PeerURL = "http://" + c.Server.Listen
		c.Server.Session.PeerSecret = testPeerSecret
	})

	lbFlushed := make(chan struct{})    // the balancer started its response
	lateReadDone := make(chan struct{}) // its transport's read after Content-Length returned
	const answer = `{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if r.Header.Get(front.ForwardedHeader) == "" {
			t.Errorf("owner: request without %s: not forwarded", front.ForwardedHeader)
		}
		// go-sdk and the fast path send the status line with the first
		// event; this owner flushes it first, so that a forwarding hop that
		// holds nothing back shows as headers alone on the wire.
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-lateReadDone:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "event: message\ndata: "+answer+"\n\n")
	}))
	t.Cleanup(owner.Close)
	ownerRouter, err := front.NewPeers(owner.URL, testPeerSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	sid := ownerRouter.NewID()

	aURL, _ := url.Parse("http://" + a.srv.Listener.Addr().String())
	lb := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(aURL)
			pr.Out.Host = pr.In.Host
		},
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	var once sync.Once
	lbSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &lateEOFRead{ReadCloser: r.Body, left: r.ContentLength, wait: lbFlushed, done: lateReadDone}
		lb.ServeHTTP(&flushSignal{ResponseWriter: w, once: &once, flushed: lbFlushed}, r)
	}))
	t.Cleanup(lbSrv.Close)

	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami"}}`
	req, _ := http.NewRequest(http.MethodPost, lbSrv.URL+MCPPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, rerr := io.ReadAll(resp.Body)
	if !strings.Contains(string(got), answer) {
		t.Fatalf("forwarded answer lost behind the Go balancer: status %d, body %q (read error: %v)", resp.StatusCode, got, rerr)
	}
}

// lateEOFRead is a request body whose read after Content-Length bytes —
// the http.Transport's check for extra bytes — waits until wait is closed
// (or 300ms), then closes done: the scheduling that loses answers in
// golang/go#40747, made deterministic.
type lateEOFRead struct {
	io.ReadCloser
	left int64
	wait <-chan struct{}
	done chan struct{}
}

func (b *lateEOFRead) Read(p []byte) (int, error) {
	if b.left == 0 {
		select {
		case <-b.wait:
		case <-time.After(300 * time.Millisecond):
		}
		defer close(b.done)
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// flushSignal closes flushed after the first flush of the response.
type flushSignal struct {
	http.ResponseWriter
	once    *sync.Once
	flushed chan struct{}
}

func (w *flushSignal) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
	w.once.Do(func() { close(w.flushed) })
}
