package nodetools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Client names in a Listing.
const (
	ClientInspector = "inspector-cli"  // MCP Inspector 2.12 CLI
	ClientTSSDK     = "typescript-sdk" // @modelcontextprotocol/sdk 1.32 Client
)

// Listing is one client's answer to one list method.
type Listing struct {
	Client string // ClientInspector or ClientTSSDK
	Method string // a key of ListMethods
	// Keys are the items' names or URIs (see ListKeys) in the order listed;
	// nil when Err is set.
	Keys []string
	// Err is the client's failure (the TypeScript SDK's schema error, the
	// Inspector's exit) or ListKeys' complaint about the result as sent.
	Err error
}

// ListWithClients lists methods (keys of ListMethods) at the MCP endpoint
// url as a real client would: with the Inspector CLI (one run per method)
// and with the TypeScript SDK client (one session for all of them). It
// returns the Inspector's listings, then the SDK's, in the order of methods.
// An error in one listing does not stop the others.
func ListWithClients(ctx context.Context, url, token string, methods ...string) []Listing {
	var out []Listing
	for _, m := range methods {
		l := Listing{Client: ClientInspector, Method: m}
		res, err := RunInspector(ctx, url, token, m)
		if err == nil {
			var raw json.RawMessage
			if err = InspectorResult(res, &raw); err == nil {
				l.Keys, err = ListKeys(m, raw)
			}
		}
		l.Err = err
		out = append(out, l)
	}
	ts, err := RunTSClient(ctx, url, token, methods...)
	for _, m := range methods {
		l := Listing{Client: ClientTSSDK, Method: m, Err: err}
		if err == nil {
			r, ok := ts.Results[m]
			switch {
			case !ok:
				l.Err = fmt.Errorf("the typescript sdk client reported nothing for %s", m)
			case r.Error != "":
				l.Err = errors.New(r.Error)
			default:
				l.Keys, l.Err = ListKeys(m, r.Result)
			}
		}
		out = append(out, l)
	}
	for i := range out {
		out[i].Err = oneLine(out[i].Err)
	}
	return out
}

// oneLine collapses the white space of err's text (the clients print their
// schema errors as indented JSON), keeping err for errors.As.
func oneLine(err error) error {
	if err == nil {
		return nil
	}
	return &lineError{msg: strings.Join(strings.Fields(err.Error()), " "), err: err}
}

type lineError struct {
	msg string
	err error
}

func (e *lineError) Error() string { return e.msg }
func (e *lineError) Unwrap() error { return e.err }

// CheckListings compares each listing's keys, sorted, with want[method]
// (sorted; nil or empty means an empty array) and returns one line per
// listing that failed or differs, naming the client and method.
func CheckListings(ls []Listing, want map[string][]string) []string {
	var bad []string
	for _, l := range ls {
		if l.Err != nil {
			bad = append(bad, fmt.Sprintf("%s %s: %v", l.Client, l.Method, l.Err))
			continue
		}
		got := slices.Sorted(slices.Values(l.Keys))
		w := slices.Sorted(slices.Values(want[l.Method]))
		if !slices.Equal(got, w) {
			bad = append(bad, fmt.Sprintf("%s %s: got %q, want %q", l.Client, l.Method, got, w))
		}
	}
	return bad
}
