package gateway

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/singleflight"

	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
)

type listKind uint8

const (
	kindTools listKind = iota
	kindResources
	kindTemplates
	kindPrompts
)

// Catalog limits.
const (
	// maxUpstreamPages bounds how many pages of one upstream listing are fetched.
	maxUpstreamPages = 100
	// pageSize is how many items one downstream page holds.
	pageSize         = 1000
	catalogCacheSize = 100_000
)

func (k listKind) String() string {
	return [...]string{"tools", "resources", "resource templates", "prompts"}[k]
}

func listKindOf(notification string) listKind {
	switch notification {
	case "notifications/prompts/list_changed":
		return kindPrompts
	case "notifications/resources/list_changed":
		return kindResources
	}
	return kindTools
}

type catalogKey struct {
	user, upstream string
	kind           listKind
}

// catalogEntry is one upstream's listing for one user.
type catalogEntry struct {
	at        time.Time
	gen       uint64
	tools     []*mcp.Tool
	toolIndex map[string]struct{}
	resources []*mcp.Resource
	templates []*mcp.ResourceTemplate
	prompts   []*mcp.Prompt
}

// catalogCache holds per-(user, upstream) listings until the upstream says
// list_changed or the upstream's catalog_ttl passes. Built once per process.
type catalogCache struct {
	c  *lru.Cache[catalogKey, *catalogEntry]
	sf singleflight.Group
	mu sync.Mutex
}

func newCatalogCache() *catalogCache {
	c, _ := lru.New[catalogKey, *catalogEntry](catalogCacheSize)
	return &catalogCache{c: c}
}

func (c *catalogCache) invalidate(user, upstream string, kind listKind) {
	c.c.Remove(catalogKey{user, upstream, kind})
	if kind == kindResources {
		c.c.Remove(catalogKey{user, upstream, kindTemplates})
	}
}

// listing returns u's listing of kind for the user of d: cached, or fetched
// with the user's credentials (one fetch in flight per key). On a fetch
// error a stale entry is returned with the error, if there is one.
//
// The fetch is shared by every caller waiting for it, so it does not run
// on the first caller's context (whose client may go away): it runs
// detached, bounded by the upstream's timeout, and each caller stops
// waiting when its own context ends.
func (g *Gateway) listing(ctx context.Context, d *dsession, st *state, u *upstream, kind listKind) (*catalogEntry, error) {
	id := d.id.Load()
	key := catalogKey{id.Key(), u.name, kind}
	e, ok := g.catalog.c.Get(key)
	if ok && e.fresh(st, u) {
		return e, nil
	}
	stale := e
	if stale != nil && stale.gen != st.gen {
		stale = nil
	}
	pgen := g.purgeGeneration() // a purge during the fetch wins over its cache write
	sfKey := fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d", key.user, key.upstream, key.kind, st.gen, pgen)
	fctx := context.WithoutCancel(ctx)
	ch := g.catalog.sf.DoChan(sfKey, func() (any, error) {
		ne, err := g.fetchListing(fctx, d, st, u, kind)
		if err != nil {
			return nil, err
		}
		g.cacheListing(key, ne, pgen)
		return ne, nil
	})
	var err error
	select {
	case r := <-ch:
		if r.Err == nil {
			return r.Val.(*catalogEntry), nil
		}
		err = r.Err
	case <-ctx.Done():
		err = ctx.Err()
	}
	return stale, err
}

func (g *Gateway) fetchListing(ctx context.Context, d *dsession, st *state, u *upstream, kind listKind) (*catalogEntry, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, u.cfg.Timeout, upstreams.ErrTimeout)
	defer cancel()
	sess, err := d.upstream(ctx, st, u)
	if err != nil {
		return nil, err
	}
	e := &catalogEntry{at: time.Now(), gen: st.gen}
	cursor := ""
	for page := 0; page < maxUpstreamPages; page++ {
		var next string
		switch kind {
		case kindTools:
			r, err := sess.ListTools(ctx, &mcp.ListToolsParams{Cursor: cursor})
			if err != nil {
				return nil, err
			}
			for _, t := range r.Tools {
				if err := upstreams.ValidateTool(t); err != nil {
					g.log.Warn("skipping malformed tool from upstream", "upstream", u.name, "error", err)
					continue
				}
				e.tools = append(e.tools, t)
			}
			next = r.NextCursor
		case kindResources:
			r, err := sess.ListResources(ctx, &mcp.ListResourcesParams{Cursor: cursor})
			if err != nil {
				return nil, err
			}
			for _, x := range r.Resources {
				if x == nil {
					g.log.Warn("skipping malformed resource from upstream", "upstream", u.name, "error", "null resource")
					continue
				}
				if err := upstreams.ValidateResourceURI(x.URI); err != nil {
					g.log.Warn("skipping malformed resource from upstream", "upstream", u.name, "error", err)
					continue
				}
				e.resources = append(e.resources, x)
			}
			next = r.NextCursor
		case kindTemplates:
			r, err := sess.ListResourceTemplates(ctx, &mcp.ListResourceTemplatesParams{Cursor: cursor})
			if err != nil {
				return nil, err
			}
			for _, x := range r.ResourceTemplates {
				if x == nil {
					g.log.Warn("skipping malformed resource template from upstream", "upstream", u.name, "error", "null resource template")
					continue
				}
				if err := upstreams.ValidateURITemplate(x.URITemplate); err != nil {
					g.log.Warn("skipping malformed resource template from upstream", "upstream", u.name, "error", err)
					continue
				}
				e.templates = append(e.templates, x)
			}
			next = r.NextCursor
		case kindPrompts:
			r, err := sess.ListPrompts(ctx, &mcp.ListPromptsParams{Cursor: cursor})
			if err != nil {
				return nil, err
			}
			for _, p := range r.Prompts {
				if p == nil {
					g.log.Warn("skipping malformed prompt from upstream", "upstream", u.name, "error", "null prompt")
					continue
				}
				if err := upstreams.ValidateName(p.Name); err != nil {
					g.log.Warn("skipping malformed prompt from upstream", "upstream", u.name, "error", err)
					continue
				}
				e.prompts = append(e.prompts, p)
			}
			next = r.NextCursor
		}
		if next == "" {
			e.index()
			return e, nil
		}
		cursor = next
	}
	g.log.Warn("upstream listing truncated", "upstream", u.name, "kind", kind.String(), "pages", maxUpstreamPages)
	e.index()
	return e, nil
}

func (e *catalogEntry) index() {
	if e.tools == nil {
		return
	}
	e.toolIndex = make(map[string]struct{}, len(e.tools))
	for _, t := range e.tools {
		e.toolIndex[t.Name] = struct{}{}
	}
}

// fresh reports whether a cached listing can be served as it is.
func (e *catalogEntry) fresh(st *state, u *upstream) bool {
	return e.gen == st.gen && time.Since(e.at) < u.cfg.CatalogTTL
}

// hasTool reports whether the user's listing of u has the tool. It fails
// closed: when the listing cannot be fetched and no listing of the same
// configuration is cached (even a stale one), err says why and the call
// must not go ahead — a tool the user cannot be shown is not called.
func (g *Gateway) hasTool(ctx context.Context, d *dsession, st *state, u *upstream, name string) (bool, error) {
	e, err := g.listing(ctx, d, st, u, kindTools)
	if e == nil {
		return false, err
	}
	_, ok := e.toolIndex[name]
	return ok, nil
}

// cachedTool is hasTool without fetching: cached is false when no fresh
// listing of u is cached for the session's user.
func (g *Gateway) cachedTool(d *dsession, st *state, u *upstream, name string) (has, cached bool) {
	e, ok := g.catalog.c.Get(catalogKey{d.id.Load().Key(), u.name, kindTools})
	if !ok || !e.fresh(st, u) {
		return false, false
	}
	_, has = e.toolIndex[name]
	return has, true
}

// upstreamsResult collects listings of every upstream in parallel.
type upstreamListing struct {
	u   *upstream
	e   *catalogEntry
	err error
}

func (g *Gateway) listAll(ctx context.Context, d *dsession, st *state, kind listKind) []upstreamListing {
	out := make([]upstreamListing, len(st.ups))
	var wg sync.WaitGroup
	for i, u := range st.ups {
		out[i].u = u
		wg.Go(func() {
			out[i].e, out[i].err = g.listing(ctx, d, st, u, kind)
			if out[i].err != nil {
				g.log.Warn("listing upstream failed", "upstream", u.name, "kind", kind.String(), "error", out[i].err)
			}
		})
	}
	wg.Wait()
	return out
}

// visible reports whether the user may see (would be allowed to call) one item.
func (st *state) visible(user policy.UserInput, u *upstream, method, tool, resource, prompt string) bool {
	return st.policy.Visible(policy.Input{User: user, Upstream: u.name, Method: method,
		Tool: tool, Resource: resource, Prompt: prompt}).Allow
}

// Cursors are opaque to clients: base64 of "<generation>:<offset>".
func encodeCursor(gen uint64, off int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(gen, 10) + ":" + strconv.Itoa(off)))
}

func decodeCursor(c string) (gen uint64, off int, err error) {
	if c == "" {
		return 0, 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid cursor")
	}
	g, o, ok := strings.Cut(string(b), ":")
	if !ok {
		return 0, 0, fmt.Errorf("invalid cursor")
	}
	if gen, err = strconv.ParseUint(g, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("invalid cursor")
	}
	if off, err = strconv.Atoi(o); err != nil || off < 0 {
		return 0, 0, fmt.Errorf("invalid cursor")
	}
	return gen, off, nil
}

// page returns items[off:off+pageSize] and the next cursor.
func page[T any](items []T, gen uint64, cursor string) ([]T, string, error) {
	_, off, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if off > len(items) {
		off = len(items)
	}
	end := min(off+pageSize, len(items))
	next := ""
	if end < len(items) {
		next = encodeCursor(gen, end)
	}
	return items[off:end], next, nil
}
