package servicenow

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/rest"
)

// Deps are what an Adapter needs from the process (rest.Deps).
// Credentials (required) obtains the calling user's ServiceNow token:
// jwt_bearer (Mandate signs an assertion whose sub names the sys_user,
// matched by the OAuth app's user field) or token_exchange (the company IdP
// exchanges the user's token for one whose audience is the ServiceNow
// instance's OIDC client id). The adapter uses whatever token the Source gives; with
// client_credentials the calls run as that service account, and the audit
// record says so (callinfo). HTTPClient calls the Table API (redirects are
// never followed); Logger receives one debug record per REST call (never a
// token, query or record content).
type Deps = rest.Deps

func init() {
	upstreams.RegisterKind(upstreams.KindServiceNow, upstreams.Kind{
		New: func(cfg upstreams.Config, deps upstreams.Deps) (upstreams.Adapter, error) {
			a, err := New(cfg, Deps{Credentials: deps.Credentials, HTTPClient: deps.HTTPClient, Logger: deps.Logger})
			if err != nil {
				return nil, err
			}
			return a, nil
		},
		Validate: validate,
	})
}

// validate is the kind's config check (upstreams.Kind.Validate): the
// instance URL (no path) and the servicenow options block.
func validate(c *upstreams.Config, path string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	if u, ok := rest.ParseInstanceURL(c.URL); !ok || (u.Path != "" && u.Path != "/") {
		bad("url", "must be the ServiceNow instance URL (https://<instance>.service-now.com), got %q", c.URL)
	}
	if c.ServiceNow.MaxRecords < 1 || c.ServiceNow.MaxRecords > 10000 {
		bad("servicenow.max_records", "must be 1..10000, got %d", c.ServiceNow.MaxRecords)
	}
	return errors.Join(errs...)
}

// Adapter is a configured ServiceNow upstream. Safe for concurrent use.
type Adapter struct {
	cl         *rest.Client
	maxRecords int
	svc        *rest.Service
	dict       *dictCache // field lists of tables, for checking queries
}

var _ upstreams.Adapter = (*Adapter)(nil)

// New builds the adapter of one kind: servicenow upstream. cfg's zero
// fields take their defaults (upstreams.Config.WithDefaults).
func New(cfg upstreams.Config, deps Deps) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	cl, err := rest.New(cfg, rest.Platform{
		Kind:         upstreams.KindServiceNow,
		Name:         "ServiceNow",
		Flows:        "jwt_bearer or token_exchange",
		TooLargeHint: "request fewer fields or a smaller limit",
		ParseError:   parseAPIError,
		ClassifyAPI:  classifyAPI,
		LogAttrs:     func(method, path string) []any { return []any{"method", method, "table", tableOf(path)} },
	}, deps)
	if err != nil {
		return nil, err
	}
	a := &Adapter{cl: cl, maxRecords: cfg.ServiceNow.MaxRecords, dict: newDictCache()}
	a.svc = &rest.Service{
		Tools: a.buildTools(),
		Templates: []*mcp.ResourceTemplate{{
			URITemplate: RecordURITemplate,
			Name:        "table_record",
			Title:       "ServiceNow record",
			Description: "One ServiceNow record by table and sys_id (e.g. servicenow://table/incident/9d385017c611228701d22104cc95c371), every field with its value and display value, as JSON. ServiceNow's ACLs decide what you may read.",
			MIMEType:    "application/json",
		}},
		Read:       func(rc *rest.Call, uri string) (*mcp.ReadResourceResult, error) { return a.call(rc).readResource(uri) },
		Completion: rest.Completion{URI: RecordURITemplate, Argument: "table", Values: commonTables},
		OnDemand:   "ServiceNow records",
	}
	return a, nil
}

// Name implements upstreams.Adapter.
func (a *Adapter) Name() string { return a.cl.Name() }

// Open implements upstreams.Adapter. Sessions are cheap: no I/O happens
// until a call, and every call takes the caller's identity from its ctx.
func (a *Adapter) Open(context.Context, upstreams.OpenOptions) (upstreams.Session, error) {
	return a.cl.Open(a.svc)
}

// Close implements upstreams.Adapter; idempotent. Sessions fail after it.
func (a *Adapter) Close() error { return a.cl.Close() }

// commonTables complete the {table} argument of the record template.
var commonTables = []string{"change_request", "incident", "kb_knowledge", "problem", "sc_req_item", "sys_user", "sys_user_group", "task"}
