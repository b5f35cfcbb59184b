package catalog

import (
	"encoding/json"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Cache hints on list and read results (ttlMs, cacheScope).
//
// Revision 2026-07-28 requires cacheScope on every cacheable result, and ""
// is not a valid value. Mandate's catalogs are per user, so they are
// "private", fresh for as long as Mandate's own catalog cache keeps them
// (the shortest catalog_ttl of the upstreams); a resource read is private
// and not cached (ttl 0). Older revisions have no such fields: they are
// left out of the answer (go-sdk's result types always encode them).

const cacheScopePrivate = "private"

// SessionlessProtocol is the first protocol revision without sessions
// (and with cache hints).
const SessionlessProtocol = "2026-07-28"

// ShapeResult fills in the cache hints for the request's protocol
// revision and makes every list an array, never null.
func ShapeResult(st *State, proto string, res mcp.Result) mcp.Result {
	newProto := proto >= SessionlessProtocol
	listTTL := func() int {
		var ttl time.Duration
		for i, u := range st.Ups {
			if i == 0 || u.Cfg.CatalogTTL < ttl {
				ttl = u.Cfg.CatalogTTL
			}
		}
		return int(ttl.Milliseconds())
	}
	switch r := res.(type) {
	case *mcp.ListToolsResult:
		r.Tools = nonNilList(r.Tools)
		return cacheHints(newProto, &r.Cacheable, listTTL, r, legacyTools{r})
	case *mcp.ListPromptsResult:
		r.Prompts = nonNilList(r.Prompts)
		return cacheHints(newProto, &r.Cacheable, listTTL, r, legacyPrompts{r})
	case *mcp.ListResourcesResult:
		r.Resources = nonNilList(r.Resources)
		return cacheHints(newProto, &r.Cacheable, listTTL, r, legacyResources{r})
	case *mcp.ListResourceTemplatesResult:
		r.ResourceTemplates = nonNilList(r.ResourceTemplates)
		return cacheHints(newProto, &r.Cacheable, listTTL, r, legacyTemplates{r})
	case *mcp.ReadResourceResult:
		r.Contents = nonNilList(r.Contents)
		return cacheHints(newProto, &r.Cacheable, func() int { return 0 }, r, legacyRead{r})
	}
	return res
}

// cacheHints sets c (the Cacheable of res) to private with ttl and returns
// res in 2026-07-28; before, it returns legacy, res without the fields.
func cacheHints(newProto bool, c *mcp.Cacheable, ttl func() int, res, legacy mcp.Result) mcp.Result {
	if !newProto {
		return legacy
	}
	*c = mcp.Cacheable{TTLMs: ttl(), CacheScope: cacheScopePrivate}
	return res
}

func nonNilList[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// The legacy* types are go-sdk results as revisions before 2026-07-28
// define them: the same fields without ttlMs and cacheScope.

type legacyTools struct{ *mcp.ListToolsResult }

func (r legacyTools) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Meta       mcp.Meta    `json:"_meta,omitempty"`
		NextCursor string      `json:"nextCursor,omitempty"`
		Tools      []*mcp.Tool `json:"tools"`
	}{r.Meta, r.NextCursor, r.Tools})
}

type legacyPrompts struct{ *mcp.ListPromptsResult }

func (r legacyPrompts) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Meta       mcp.Meta      `json:"_meta,omitempty"`
		NextCursor string        `json:"nextCursor,omitempty"`
		Prompts    []*mcp.Prompt `json:"prompts"`
	}{r.Meta, r.NextCursor, r.Prompts})
}

type legacyResources struct{ *mcp.ListResourcesResult }

func (r legacyResources) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Meta       mcp.Meta        `json:"_meta,omitempty"`
		NextCursor string          `json:"nextCursor,omitempty"`
		Resources  []*mcp.Resource `json:"resources"`
	}{r.Meta, r.NextCursor, r.Resources})
}

type legacyTemplates struct {
	*mcp.ListResourceTemplatesResult
}

func (r legacyTemplates) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Meta              mcp.Meta                `json:"_meta,omitempty"`
		NextCursor        string                  `json:"nextCursor,omitempty"`
		ResourceTemplates []*mcp.ResourceTemplate `json:"resourceTemplates"`
	}{r.Meta, r.NextCursor, r.ResourceTemplates})
}

type legacyRead struct{ *mcp.ReadResourceResult }

func (r legacyRead) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Meta     mcp.Meta                `json:"_meta,omitempty"`
		Contents []*mcp.ResourceContents `json:"contents"`
	}{r.Meta, r.Contents})
}
