package salesforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/metric"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	"github.com/mandate-gw/mandate/upstreams/rest"
)

// Deps are what an Adapter needs from the process.
type Deps struct {
	// Credentials (required) obtains the calling user's Salesforce token
	// (flow jwt_bearer in production: sub = the Salesforce username). The
	// adapter uses whatever token the Source gives; with
	// client_credentials the calls run as that service account, and the
	// audit record says so (callinfo).
	Credentials credentials.Source
	// HTTPClient calls the REST API (redirects are never followed). Nil
	// means a client over a clone of http.DefaultTransport.
	HTTPClient *http.Client
	// Logger receives one debug record per REST call (never a token or a
	// query text) and the warnings about the org's API allowance. Nil
	// discards.
	Logger *slog.Logger
	// MeterProvider, when set, receives the org's API request usage as
	// gauges (mandate.salesforce.api_requests.used, .limit, .remaining,
	// attribute mandate.upstream). Nil: no metrics.
	MeterProvider metric.MeterProvider
}

func init() {
	upstreams.RegisterKind(upstreams.KindSalesforce, upstreams.Kind{
		New: func(cfg upstreams.Config, deps upstreams.Deps) (upstreams.Adapter, error) {
			a, err := New(cfg, Deps{Credentials: deps.Credentials, HTTPClient: deps.HTTPClient, Logger: deps.Logger, MeterProvider: deps.MeterProvider})
			if err != nil {
				return nil, err
			}
			return a, nil
		},
		Validate: validate,
	})
}

// apiVersion is the shape of a Salesforce REST API version.
var apiVersion = regexp.MustCompile(`^v[0-9]{2,3}\.[0-9]$`)

// validate is the kind's config check (upstreams.Kind.Validate): the
// instance URL and the salesforce options block.
func validate(c *upstreams.Config, path string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	if _, ok := rest.ParseInstanceURL(c.URL); !ok {
		bad("url", "must be the Salesforce instance URL (https://…my.salesforce.com), got %q", c.URL)
	}
	if !apiVersion.MatchString(c.Salesforce.APIVersion) {
		bad("salesforce.api_version", "must look like v66.0, got %q", c.Salesforce.APIVersion)
	}
	if c.Salesforce.MaxRecords < 1 || c.Salesforce.MaxRecords > 50000 {
		bad("salesforce.max_records", "must be 1..50000, got %d", c.Salesforce.MaxRecords)
	}
	errs = append(errs, validateWritable(c.Salesforce.Writable, path)...)
	return errors.Join(errs...)
}

// Adapter is a configured Salesforce upstream. Safe for concurrent use.
type Adapter struct {
	cl         *rest.Client
	version    string
	maxRecords int
	svc        *rest.Service
	usage      *apiUsage
	writable   map[string]*writable // salesforce.writable (tools_write.go)
}

var _ upstreams.Adapter = (*Adapter)(nil)

// New builds the adapter of one kind: salesforce upstream. cfg's zero
// fields take their defaults (upstreams.Config.WithDefaults).
func New(cfg upstreams.Config, deps Deps) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Every REST response passes through usage (Sforce-Limit-Info), also
	// refusals and the 401 before a retry.
	usage := &apiUsage{upstream: cfg.Name, log: log}
	hc := &http.Client{}
	if deps.HTTPClient != nil {
		*hc = *deps.HTTPClient
	}
	next := hc.Transport
	switch {
	case next != nil:
	case deps.HTTPClient != nil:
		next = http.DefaultTransport
	default:
		next = http.DefaultTransport.(*http.Transport).Clone()
	}
	hc.Transport = &usageTransport{next: next, usage: usage}
	cl, err := rest.New(cfg, rest.Platform{
		Kind:         upstreams.KindSalesforce,
		Name:         "Salesforce",
		Flows:        "jwt_bearer",
		TooLargeHint: "select fewer fields or add a LIMIT",
		InstanceURL:  instanceURL,
		ParseError:   parseAPIError,
		ClassifyAPI:  classifyAPI,
		LogAttrs:     func(_, path string) []any { return []any{"path", pathOnly(path)} },
	}, rest.Deps{Credentials: deps.Credentials, HTTPClient: hc, Logger: deps.Logger})
	if err != nil {
		return nil, err
	}
	if err := usage.register(deps.MeterProvider); err != nil {
		return nil, fmt.Errorf("salesforce adapter %s: metrics: %w", cfg.Name, err)
	}
	a := &Adapter{cl: cl, version: cfg.Salesforce.APIVersion, maxRecords: cfg.Salesforce.MaxRecords, usage: usage, writable: newWritable(cfg.Salesforce.Writable)}
	a.svc = &rest.Service{
		Tools: a.buildTools(),
		Resources: []*mcp.Resource{{
			URI:         PipelineURI,
			Name:        "my_pipeline",
			Title:       "My open opportunities",
			Description: "Your open opportunities: the ones you own in Salesforce (USING SCOPE mine), not every one you can see (Name, Amount, StageName, CloseDate), ordered by close date, as JSON.",
			MIMEType:    "application/json",
		}},
		Templates: []*mcp.ResourceTemplate{{
			URITemplate: RecordURITemplate,
			Name:        "sobject_record",
			Title:       "Salesforce record",
			Description: "One Salesforce record by sObject type and 15/18-character id (e.g. salesforce://sobjects/Opportunity/006000000000001AAA), with all fields you may read, as JSON.",
			MIMEType:    "application/json",
		}},
		Read:       func(rc *rest.Call, uri string) (*mcp.ReadResourceResult, error) { return a.call(rc).readResource(uri) },
		Completion: rest.Completion{URI: RecordURITemplate, Argument: "type", Values: commonObjects},
		OnDemand:   "Salesforce resources",
	}
	return a, nil
}

// Open implements upstreams.Adapter. Sessions are cheap: no I/O happens
// until a call, and every call takes the caller's identity from its ctx.
func (a *Adapter) Open(context.Context, upstreams.OpenOptions) (upstreams.Session, error) {
	return a.cl.Open(a.svc)
}

// Name implements upstreams.Adapter.
func (a *Adapter) Name() string { return a.cl.Name() }

// Close implements upstreams.Adapter. Sessions fail after it and the API
// usage gauges are withdrawn; idempotent.
func (a *Adapter) Close() error {
	a.usage.close()
	return a.cl.Close()
}

// APIUsage is the org's API request usage as its last REST response
// reported it (Sforce-Limit-Info): requests used and the daily allowance.
// ok is false until a response carried a well-formed header.
func (a *Adapter) APIUsage() (used, limit int64, ok bool) { return a.usage.load() }

// commonObjects complete the {type} argument of the record template.
var commonObjects = []string{"Account", "Campaign", "Case", "Contact", "Contract", "Event", "Lead", "Opportunity", "Order", "Product2", "Task", "User"}
