package credentials

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Platforms whose token endpoints the jwt_bearer flow knows by name
// (Config.Platform, set by package upstreams from the upstream's kind).
// Another value, or none, gets the RFC 7523 defaults.
const (
	PlatformSalesforce = "salesforce"
	PlatformServiceNow = "servicenow"
)

// Salesforce login hosts, the aud values its JWT bearer flow accepts.
const (
	SalesforceLoginAudience   = "https://login.salesforce.com"
	SalesforceSandboxAudience = "https://test.salesforce.com"
	// SalesforceMaxAssertionLifetime: "exp … within 3 minutes".
	SalesforceMaxAssertionLifetime = 3 * time.Minute
)

// platform is what one platform's token endpoint requires of jwt_bearer
// beyond RFC 7523: defaults, limits, and what its documented errors mean.
type platform struct {
	// audience is the assertion's aud when assertion_audience is not set.
	audience func(c *Config) string
	// clientAuth is client_auth when a secret is set and client_auth is not.
	clientAuth string
	// maxLifetime bounds assertion_lifetime (0: MaxAssertionLifetime).
	maxLifetime time.Duration
	// explain returns the actionable message for a token endpoint error,
	// or "" to keep the generic one. sub is the platform username the
	// assertion named; mapping names the subject mapping that produced it.
	explain func(e *Error, sub, mapping string) string
}

var platforms = map[string]*platform{
	PlatformServiceNow: serviceNowPlatform,
	PlatformSalesforce: salesforcePlatform,
}

func platformOf(c *Config) *platform { return platforms[c.Platform] }

// ServiceNow, "Create an OAuth JWT API endpoint for external clients"
// (https://docs.servicenow.com/bundle/tokyo-platform-security/page/administer/security/task/create-jwt-endpoint.html,
// and "Configure an OAuth JSON web token bearer grant", Zurich): the
// assertion's aud must match the application's Client ID (iss should too);
// the token request carries client_id and client_secret in the form body.
// Every refusal is the same opaque 401 {"error":"server_error",
// "error_description":"access_denied"}.
var serviceNowPlatform = &platform{
	audience:   func(c *Config) string { return c.ClientID },
	clientAuth: AuthClientSecretPost,
	explain: func(e *Error, sub, mapping string) string {
		if e.Description != "access_denied" && e.Code != "access_denied" {
			return ""
		}
		return fmt.Sprintf("ServiceNow refused the JWT bearer grant for the platform user %q (from %s) without saying why; ask the Mandate administrators to check, in the instance's OAuth application registry entry for this client: the assertion's aud and iss must equal its Client ID (credentials.assertion_audience, if set), the client secret must match, private_key_file must match a JWT verifier map certificate, and the User field must find an active sys_user with that value", sub, mapping)
	},
}

// Salesforce, "OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration"
// (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm):
// aud is https://login.salesforce.com, or https://test.salesforce.com for
// a sandbox org; exp within 3 minutes; RS256 only; errors are
// {"error": ..., "error_description": ...} pairs, explained below.
var salesforcePlatform = &platform{
	audience:    salesforceAudience,
	maxLifetime: SalesforceMaxAssertionLifetime,
	explain:     explainSalesforce,
}

// salesforceAudience is https://test.salesforce.com when the token URL is
// a sandbox org's login host (test.salesforce.com, or a My Domain under
// sandbox.my.salesforce.com or scratch.my.salesforce.com), else
// https://login.salesforce.com. A sandbox org's users cannot sign in at
// login.salesforce.com, so its token_url names one of those hosts.
func salesforceAudience(c *Config) string {
	if IsSalesforceSandboxHost(c.TokenURL) {
		return SalesforceSandboxAudience
	}
	return SalesforceLoginAudience
}

// IsSalesforceSandboxHost reports whether rawURL is on a Salesforce sandbox
// (or scratch) org's login host.
func IsSalesforceSandboxHost(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "test.salesforce.com" ||
		strings.HasSuffix(h, ".sandbox.my.salesforce.com") ||
		strings.HasSuffix(h, ".scratch.my.salesforce.com")
}

func explainSalesforce(e *Error, sub, mapping string) string {
	switch d := strings.ToLower(e.Description); {
	case e.Code == "invalid_grant" && d == "user hasn't approved this consumer":
		// Salesforce answers this both for a username it does not know and
		// for a user the connected app is not authorised for.
		return fmt.Sprintf("Salesforce has no user %q that the Mandate connected app may act for. Either no such username exists in this org — the subject mapping (%s) produced it; ask the Mandate administrators to fix the mapping (a sandbox org's usernames carry the sandbox suffix) — or the connected app is not pre-authorised for your profile or permission set; ask your Salesforce administrator to set the app's Permitted Users to \"Admin approved users are pre-authorized\" and add your profile or a permission set you hold", sub, mapping)
	case e.Code == "invalid_app_access":
		return fmt.Sprintf("Salesforce user %q is not admin-approved for the Mandate connected app; ask your Salesforce administrator to add your profile or a permission set you hold to the connected app (Manage Connected Apps → the app → Profiles / Permission Sets)", sub)
	case e.Code == "invalid_grant" && d == "audience is invalid":
		return "Salesforce refused the assertion's audience; this is a gateway configuration problem — report it to the Mandate administrators: credentials.assertion_audience must be https://login.salesforce.com (production and Developer Edition orgs) or https://test.salesforce.com (sandbox orgs)"
	case e.Code == "invalid_grant" && d == "invalid assertion":
		return "Salesforce refused the signed assertion; this is a gateway configuration problem — report it to the Mandate administrators: the connected app's digital-signature certificate must match credentials.private_key_file, the algorithm must be RS256, and the assertion lifetime at most 3 minutes"
	case e.Code == "invalid_grant" && d == "expired authorization code":
		return "Salesforce found the assertion already expired; the gateway's clock is probably wrong — report it to the Mandate administrators (check NTP on the gateway hosts), then retry"
	case e.Code == "invalid_grant" && d == "inactive user":
		return fmt.Sprintf("Salesforce user %q is deactivated; ask your Salesforce administrator to reactivate it (or the Mandate administrators to map you to your active username)", sub)
	case e.Code == "invalid_client_id":
		return "Salesforce does not know the connected app; this is a gateway configuration problem — report it to the Mandate administrators: credentials.client_id must be the connected app's consumer key, in the org that token_url signs in to"
	}
	return ""
}

// mappingName describes where the platform username came from, for
// messages: the subject template or the subject map file.
func mappingName(subject, mapFile string) string {
	if mapFile != "" {
		return "credentials.subject_map_file"
	}
	return fmt.Sprintf("credentials.subject %q", orString(subject, DefaultSubject))
}
