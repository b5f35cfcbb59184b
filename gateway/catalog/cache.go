// Package catalog is what Mandate serves from: the State built from one
// configuration (compiled policy, upstreams, how names route between them)
// and each user's listings of each upstream (Cache), fetched as that user,
// kept until the upstream says list_changed or catalog_ttl passes, merged,
// paged and shaped for the client's protocol revision.
package catalog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/singleflight"

	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Kind is a kind of listing.
type Kind uint8

// The kinds of listings.
const (
	Tools Kind = iota
	Resources
	Templates
	Prompts
)

// Catalog limits.
const (
	// maxUpstreamPages bounds how many pages of one upstream listing are fetched.
	maxUpstreamPages = 100
	// pageSize is how many items one downstream page holds.
	pageSize         = 1000
	catalogCacheSize = 100_000
)

// String names the kind in logs.
func (k Kind) String() string {
	return [...]string{"tools", "resources", "resource templates", "prompts"}[k]
}

// KindOf is the kind a list_changed notification is about.
func KindOf(notification string) Kind {
	switch notification {
	case "notifications/prompts/list_changed":
		return Prompts
	case "notifications/resources/list_changed":
		return Resources
	}
	return Tools
}

type key struct {
	user, upstream string
	kind           Kind
}

// Entry is one upstream's listing for one user.
type Entry struct {
	at        time.Time
	gen       uint64
	Tools     []*mcp.Tool
	toolIndex map[string]struct{}
	Resources []*mcp.Resource
	Templates []*mcp.ResourceTemplate
	Prompts   []*mcp.Prompt
}

// Opener is the user's side of a listing fetch: whose listing it is (an
// identity key), and their session on an upstream (opened on first use).
type Opener interface {
	User() string
	Upstream(ctx context.Context, st *State, u *Upstream) (upstreams.Session, error)
}

// Cache holds per-(user, upstream) listings until the upstream says
// list_changed or the upstream's catalog_ttl passes. Built once per process.
type Cache struct {
	c   *lru.Cache[key, *Entry]
	sf  singleflight.Group
	log *slog.Logger

	purgeMu  sync.Mutex // purgeGen, and cache writes racing a purge
	purgeGen uint64     // purges so far (Purge)
}

// NewCache returns an empty cache.
func NewCache(log *slog.Logger) *Cache {
	c, _ := lru.New[key, *Entry](catalogCacheSize)
	return &Cache{c: c, log: log}
}

// Invalidate forgets one user's listing of one upstream (list_changed).
func (c *Cache) Invalidate(user, upstream string, kind Kind) {
	c.c.Remove(key{user, upstream, kind})
	if kind == Resources {
		c.c.Remove(key{user, upstream, Templates})
	}
}

// Listing returns u's listing of kind for the user of d: cached, or fetched
// with the user's credentials (one fetch in flight per key). On a fetch
// error a stale entry is returned with the error, if there is one.
//
// The fetch is shared by every caller waiting for it, so it does not run
// on the first caller's context (whose client may go away): it runs
// detached, bounded by the upstream's timeout, and each caller stops
// waiting when its own context ends.
func (c *Cache) Listing(ctx context.Context, s Opener, st *State, u *Upstream, kind Kind) (*Entry, error) {
	k := key{s.User(), u.Name, kind}
	e, ok := c.c.Get(k)
	if ok && e.fresh(st, u) {
		return e, nil
	}
	stale := e
	if stale != nil && stale.gen != st.Gen {
		stale = nil
	}
	pgen := c.purgeGeneration() // a purge during the fetch wins over its cache write
	sfKey := fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d", k.user, k.upstream, k.kind, st.Gen, pgen)
	fctx := context.WithoutCancel(ctx)
	ch := c.sf.DoChan(sfKey, func() (any, error) {
		ne, err := c.fetch(fctx, s, st, u, kind)
		if err != nil {
			return nil, err
		}
		c.store(k, ne, pgen)
		return ne, nil
	})
	var err error
	select {
	case r := <-ch:
		if r.Err == nil {
			return r.Val.(*Entry), nil
		}
		err = r.Err
	case <-ctx.Done():
		err = ctx.Err()
	}
	if e := beforeConnect(u, kind, err); e != nil {
		return e, nil
	}
	return stale, err
}

// beforeConnect is the listing of an upstream for a user who has not
// connected their account there yet: its tools_before_connect (not cached:
// the user's own listing replaces it once they connect). nil when err is
// not a missing consent or the upstream declares none.
func beforeConnect(u *Upstream, kind Kind, err error) *Entry {
	var cre *credentials.ConsentRequiredError
	if kind != Tools || len(u.Cfg.ToolsBeforeConnect) == 0 || !errors.As(err, &cre) {
		return nil
	}
	e := &Entry{at: time.Now(), toolIndex: make(map[string]struct{}, len(u.Cfg.ToolsBeforeConnect))}
	for _, t := range u.Cfg.ToolsBeforeConnect {
		e.Tools = append(e.Tools, &mcp.Tool{Name: t.Name, Description: t.Description,
			InputSchema: map[string]any{"type": "object"}})
		e.toolIndex[t.Name] = struct{}{}
	}
	return e
}

func (c *Cache) fetch(ctx context.Context, s Opener, st *State, u *Upstream, kind Kind) (*Entry, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, u.Cfg.Timeout, upstreams.ErrTimeout)
	defer cancel()
	sess, err := s.Upstream(ctx, st, u)
	if err != nil {
		return nil, err
	}
	e := &Entry{at: time.Now(), gen: st.Gen}
	cursor := ""
	for page := 0; page < maxUpstreamPages; page++ {
		var next string
		switch kind {
		case Tools:
			r, err := sess.ListTools(ctx, &mcp.ListToolsParams{Cursor: cursor})
			if err != nil {
				return nil, err
			}
			for _, t := range r.Tools {
				if err := upstreams.ValidateTool(t); err != nil {
					c.log.Warn("skipping malformed tool from upstream", "upstream", u.Name, "error", err)
					continue
				}
				e.Tools = append(e.Tools, t)
			}
			next = r.NextCursor
		case Resources:
			r, err := sess.ListResources(ctx, &mcp.ListResourcesParams{Cursor: cursor})
			if err != nil {
				return nil, err
			}
			for _, x := range r.Resources {
				if x == nil {
					c.log.Warn("skipping malformed resource from upstream", "upstream", u.Name, "error", "null resource")
					continue
				}
				if err := upstreams.ValidateResourceURI(x.URI); err != nil {
					c.log.Warn("skipping malformed resource from upstream", "upstream", u.Name, "error", err)
					continue
				}
				e.Resources = append(e.Resources, x)
			}
			next = r.NextCursor
		case Templates:
			r, err := sess.ListResourceTemplates(ctx, &mcp.ListResourceTemplatesParams{Cursor: cursor})
			if err != nil {
				return nil, err
			}
			for _, x := range r.ResourceTemplates {
				if x == nil {
					c.log.Warn("skipping malformed resource template from upstream", "upstream", u.Name, "error", "null resource template")
					continue
				}
				if err := upstreams.ValidateURITemplate(x.URITemplate); err != nil {
					c.log.Warn("skipping malformed resource template from upstream", "upstream", u.Name, "error", err)
					continue
				}
				e.Templates = append(e.Templates, x)
			}
			next = r.NextCursor
		case Prompts:
			r, err := sess.ListPrompts(ctx, &mcp.ListPromptsParams{Cursor: cursor})
			if err != nil {
				return nil, err
			}
			for _, p := range r.Prompts {
				if p == nil {
					c.log.Warn("skipping malformed prompt from upstream", "upstream", u.Name, "error", "null prompt")
					continue
				}
				if err := upstreams.ValidateName(p.Name); err != nil {
					c.log.Warn("skipping malformed prompt from upstream", "upstream", u.Name, "error", err)
					continue
				}
				e.Prompts = append(e.Prompts, p)
			}
			next = r.NextCursor
		}
		if next == "" {
			e.index()
			return e, nil
		}
		cursor = next
	}
	c.log.Warn("upstream listing truncated", "upstream", u.Name, "kind", kind.String(), "pages", maxUpstreamPages)
	e.index()
	return e, nil
}

func (e *Entry) index() {
	if e.Tools == nil {
		return
	}
	e.toolIndex = make(map[string]struct{}, len(e.Tools))
	for _, t := range e.Tools {
		e.toolIndex[t.Name] = struct{}{}
	}
}

// fresh reports whether a cached listing can be served as it is.
func (e *Entry) fresh(st *State, u *Upstream) bool {
	return e.gen == st.Gen && time.Since(e.at) < u.Cfg.CatalogTTL
}

// HasTool reports whether the user's listing of u has the tool. It fails
// closed: when the listing cannot be fetched and no listing of the same
// configuration is cached (even a stale one), err says why and the call
// must not go ahead — a tool the user cannot be shown is not called.
func (c *Cache) HasTool(ctx context.Context, s Opener, st *State, u *Upstream, name string) (bool, error) {
	e, err := c.Listing(ctx, s, st, u, Tools)
	if e == nil {
		return false, err
	}
	_, ok := e.toolIndex[name]
	return ok, nil
}

// CachedTool is HasTool without fetching: cached is false when no fresh
// listing of u is cached for the session's user.
func (c *Cache) CachedTool(s Opener, st *State, u *Upstream, name string) (has, cached bool) {
	e, ok := c.c.Get(key{s.User(), u.Name, Tools})
	if !ok || !e.fresh(st, u) {
		return false, false
	}
	_, has = e.toolIndex[name]
	return has, true
}

// Listing is one upstream's listing for ListAll (E nil when it could not
// be fetched: Err says why).
type Listing struct {
	U   *Upstream
	E   *Entry
	Err error
}

// ListAll collects the user's listings of every upstream, in parallel.
func (c *Cache) ListAll(ctx context.Context, s Opener, st *State, kind Kind) []Listing {
	out := make([]Listing, len(st.Ups))
	var wg sync.WaitGroup
	for i, u := range st.Ups {
		out[i].U = u
		wg.Go(func() {
			out[i].E, out[i].Err = c.Listing(ctx, s, st, u, kind)
			if out[i].Err != nil {
				level := slog.LevelWarn // a user who has yet to connect their account is no problem of the upstream
				if cre := (*credentials.ConsentRequiredError)(nil); errors.As(out[i].Err, &cre) {
					level = slog.LevelInfo
				}
				c.log.Log(ctx, level, "listing upstream failed", "upstream", u.Name, "kind", kind.String(), "error", out[i].Err)
			}
		})
	}
	wg.Wait()
	return out
}

// Visible reports whether the user may see (would be allowed to call) one item.
func (st *State) Visible(user policy.UserInput, u *Upstream, method, tool, resource, prompt string) bool {
	return st.Policy.Visible(policy.Input{User: user, Upstream: u.Name, Method: method,
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

// Page returns items[off:off+pageSize] and the next cursor.
func Page[T any](items []T, gen uint64, cursor string) ([]T, string, error) {
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

// Purge forgets every listing of user (an identity key) and makes listing
// fetches in flight skip their cache write, so a purge is not undone by a
// fetch that began before it.
func (c *Cache) Purge(user string) {
	c.purgeMu.Lock()
	defer c.purgeMu.Unlock()
	c.purgeGen++
	for _, k := range c.c.Keys() {
		if k.user == user {
			c.c.Remove(k)
		}
	}
}

// Len is the number of cached listings.
func (c *Cache) Len() int { return c.c.Len() }

// purgeGeneration is read before a listing fetch and passed to store.
func (c *Cache) purgeGeneration() uint64 {
	c.purgeMu.Lock()
	defer c.purgeMu.Unlock()
	return c.purgeGen
}

// store caches a fetched listing unless a purge happened since the fetch
// began (gen from purgeGeneration). Any user's purge counts: a rare extra
// fetch is cheaper than tracking purges per user.
func (c *Cache) store(k key, e *Entry, gen uint64) {
	c.purgeMu.Lock()
	defer c.purgeMu.Unlock()
	if c.purgeGen == gen {
		c.c.Add(k, e)
	}
}

// Users are the identity keys that have cached listings.
func (c *Cache) Users() []string {
	var out []string
	for _, k := range c.c.Keys() {
		out = append(out, k.user)
	}
	return out
}
