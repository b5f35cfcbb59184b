package kinds_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

func TestBuiltinKindsAreRegistered(t *testing.T) {
	t.Parallel()
	want := []string{upstreams.KindMCP, upstreams.KindSalesforce, upstreams.KindServiceNow}
	if got := upstreams.Kinds(); !slices.Equal(got, want) {
		t.Fatalf("Kinds() = %v, want %v", got, want)
	}
}

// Config.Validate reports through the registry exactly what it reported
// when the kinds were a fixed list: the kind list, and each native kind's
// own checks (now its Validate hook) with their paths.
func TestValidateMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  upstreams.Config
		want []string // "" = valid
	}{
		{"unknown kind", upstreams.Config{Kind: "ftp", URL: "https://x.example"},
			[]string{`upstreams[u].kind: must be mcp, salesforce or servicenow, got "ftp"`}},
		{"mcp", upstreams.Config{Kind: upstreams.KindMCP, URL: "https://x.example/mcp?tenant=1"}, nil},
		{"salesforce", upstreams.Config{Kind: upstreams.KindSalesforce, URL: "https://acme.my.salesforce.com"}, nil},
		{"salesforce options", upstreams.Config{Kind: upstreams.KindSalesforce, URL: "https://acme.my.salesforce.com/services?x=1",
			Salesforce: upstreams.SalesforceOptions{APIVersion: "62", MaxRecords: 90000}},
			[]string{
				`upstreams[u].url: must be the Salesforce instance URL (https://…my.salesforce.com), got "https://acme.my.salesforce.com/services?x=1"`,
				`upstreams[u].salesforce.api_version: must look like v66.0, got "62"`,
				`upstreams[u].salesforce.max_records: must be 1..50000, got 90000`,
			}},
		{"servicenow", upstreams.Config{Kind: upstreams.KindServiceNow, URL: "https://acme.service-now.com/"}, nil},
		{"servicenow options", upstreams.Config{Kind: upstreams.KindServiceNow, URL: "https://acme.service-now.com/api",
			ServiceNow: upstreams.ServiceNowOptions{MaxRecords: 10001}},
			[]string{
				`upstreams[u].url: must be the ServiceNow instance URL (https://<instance>.service-now.com), got "https://acme.service-now.com/api"`,
				`upstreams[u].servicenow.max_records: must be 1..10000, got 10001`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Name = "u"
			cfg.Credentials = credentials.Config{Flow: credentials.FlowNone}
			cfg = cfg.WithDefaults()
			err := cfg.Validate("upstreams[u]")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tc.want)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("Validate:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
