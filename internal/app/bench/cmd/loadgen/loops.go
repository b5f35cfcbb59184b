package main

// The workers' loops: calls (and lists) on an open session, and
// session set-up (setup and cold scenarios).

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func (w *worker) fail(err error, wrong bool, measured bool) {
	if !measured {
		return
	}
	if wrong {
		w.wrong++
	} else {
		w.errs++
	}
	if w.first == nil {
		w.first = err
	}
}

func (c *config) callLoop(ctx context.Context, s *session, w *worker, start, end time.Time) {
	params := &mcp.CallToolParams{Name: c.tool, Arguments: c.args}
	for {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		if c.scenario == "list" {
			lt, err := s.cs.ListTools(cctx, c.listParams())
			cancel()
			t1 := time.Now()
			measured := !t0.Before(start) && !t1.After(end)
			switch {
			case err != nil:
				w.fail(err, false, measured)
				if errors.Is(err, mcp.ErrConnectionClosed) {
					return
				}
			case len(lt.Tools) == 0:
				w.fail(errors.New("tools/list returned no tools"), true, measured)
			case measured:
				w.tools = len(lt.Tools)
				w.lat = append(w.lat, t1.Sub(t0))
			}
			continue
		}
		r, err := s.cs.CallTool(cctx, params)
		cancel()
		t1 := time.Now()
		measured := !t0.Before(start) && !t1.After(end)
		if err != nil {
			w.fail(err, false, measured)
			if errors.Is(err, mcp.ErrConnectionClosed) {
				return
			}
			continue
		}
		if wrong, err := c.check(s, r); err != nil {
			w.fail(err, wrong, measured)
			continue
		}
		if measured {
			w.lat = append(w.lat, t1.Sub(t0))
		}
	}
}

func (c *config) setupLoop(ctx context.Context, tr http.RoundTripper, i int, w *worker, start, end time.Time) {
	params := &mcp.CallToolParams{Name: c.tool, Arguments: c.args}
	for n := 0; ; n++ {
		tok := c.tokenFor(i + n*c.sessions)
		if c.fresh {
			var ok bool
			if tok, ok = c.freshToken(); !ok {
				w.fail(errNoTokens, false, true)
				return
			}
		}
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		s, err := c.connect(cctx, tr, tok)
		wrong, tools := false, 0
		if err == nil && c.scenario == "cold" {
			var r *mcp.CallToolResult
			if r, err = s.cs.CallTool(cctx, params); err == nil {
				wrong, err = c.check(s, r)
			}
		} else if err == nil {
			var lt *mcp.ListToolsResult
			lt, err = s.cs.ListTools(cctx, c.listParams())
			if err == nil && len(lt.Tools) == 0 {
				err = errors.New("tools/list returned no tools")
			} else if err == nil {
				tools = len(lt.Tools)
			}
		}
		t1 := time.Now()
		cancel()
		if s != nil {
			_ = s.cs.Close()
		}
		measured := !t0.Before(start) && !t1.After(end)
		if err != nil {
			w.fail(err, wrong, measured)
			continue
		}
		if measured {
			w.tools = max(w.tools, tools)
			w.lat = append(w.lat, t1.Sub(t0))
		}
	}
}
