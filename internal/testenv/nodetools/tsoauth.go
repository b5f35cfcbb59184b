package nodetools

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// tsOAuthScript drives the TypeScript SDK client's OAuth support; see the
// comment at its top.
//
//go:embed testdata/tsoauth.mjs
var tsOAuthScript []byte

// Registration modes of TSOAuthOptions.
const (
	RegistrationDCR  = "dcr"  // RFC 7591 dynamic client registration
	RegistrationCIMD = "cimd" // a client ID metadata document URL as client_id
)

// TSOAuthOptions configure RunTSOAuth.
type TSOAuthOptions struct {
	// URL is the MCP endpoint.
	URL string
	// LoginHint is appended to the authorization URL the SDK opens (the
	// authorization server forwards it to the IdP, which signs that demo
	// user in without the picker).
	LoginHint string
	// RedirectURI is the client's redirect_uri; nothing needs to listen
	// there (the script reads the code from the redirect). Default
	// http://127.0.0.1:1/callback.
	RedirectURI string
	// Registration is RegistrationDCR (default) or RegistrationCIMD.
	Registration string
	// ClientMetadataURL is the metadata document URL (CIMD). The SDK
	// 1.32.2 uses CIMD only for an https URL with a path (isHttpsUrl in
	// dist/esm/client/auth.js); for an http URL (a loopback document, which
	// the demo allows) the script gives the client that URL as its
	// client_id up front — the same client information the SDK's CIMD
	// branch stores — so the server-side CIMD path is what is tested.
	ClientMetadataURL string
	// Issuer is the authorization server's issuer (the client information
	// preset for an http metadata document is bound to it).
	Issuer string
	// Replay posts the first refresh token again after it was rotated
	// (reuse detection must refuse it); TSOAuthOutput.Replay has the answer.
	Replay bool
	// CallTool, when set, is called after sign-in by a client that
	// declares capabilities.elicitation.url; a -32042 answer's URL
	// elicitation is opened headlessly (cookie jar, LoginHint at every
	// /authorize, each page's one post form posted with decision=allow,
	// until a page without a form) and the call retried (per-user grants:
	// TSOAuthOutput.Elicitation, Connect, Retry).
	CallTool string
	// SkipRefresh leaves out the forced refresh (and Replay).
	SkipRefresh bool
}

// TSToolAnswer is a tools/call result as the TypeScript client saw it.
type TSToolAnswer struct {
	IsError bool   `json:"isError"`
	Text    string `json:"text"`
}

// TSOAuthOutput is what the TypeScript SDK client did and saw.
type TSOAuthOutput struct {
	// Steps narrate the flow (redirect origins and paths, never tokens).
	Steps []string `json:"steps"`
	// ClientID the client used (the registration's, or the metadata URL).
	ClientID string `json:"clientId"`
	// Authorize is the SDK's authorization request.
	Authorize struct {
		Endpoint            string `json:"endpoint"`
		Resource            string `json:"resource"`
		Scope               string `json:"scope"`
		CodeChallengeMethod string `json:"codeChallengeMethod"`
		ClientID            string `json:"clientId"`
	} `json:"authorize"`
	// ConsentPage is the consent form the script posted (nil: none shown).
	ConsentPage *struct {
		URL    string   `json:"url"`
		Action string   `json:"action"`
		Fields []string `json:"fields"`
	} `json:"consentPage"`
	ConsentHasScript bool `json:"consentHasScript"`
	// Grants are the grant_type values the client sent, in order.
	Grants             []string `json:"grants"`
	RefreshTokenIssued bool     `json:"refreshTokenIssued"`
	// Tools after sign-in, and after the forced refresh.
	Tools               []string `json:"tools"`
	ToolsAfterRefresh   []string `json:"toolsAfterRefresh"`
	Refreshed           bool     `json:"refreshed"`
	RefreshTokenRotated bool     `json:"refreshTokenRotated"`
	// AccessToken is the last access token (empty after Replay, which
	// revokes it).
	AccessToken string `json:"accessToken"`
	Replay      *struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"replay"`
	// FirstCall is CallTool's answer when it came without an elicitation.
	FirstCall *TSToolAnswer `json:"firstCall"`
	// Elicitation is CallTool's first error and its URL elicitation.
	Elicitation *struct {
		Code          int    `json:"code"`
		URL           string `json:"url"`
		Mode          string `json:"mode"`
		Message       string `json:"message"`
		ElicitationID string `json:"elicitationId"`
		Error         string `json:"error"`
	} `json:"elicitation"`
	// Connect is the headless visit of the elicitation's URL.
	Connect *struct {
		Steps []string `json:"steps"`
		Forms int      `json:"forms"`
		Final *struct {
			URL       string `json:"url"`
			Status    int    `json:"status"`
			HasForm   bool   `json:"hasForm"`
			HasScript bool   `json:"hasScript"`
			Text      string `json:"text"`
		} `json:"final"`
	} `json:"connect"`
	// Retry is CallTool's answer after the link was opened.
	Retry *TSToolAnswer `json:"retry"`
	Error string        `json:"error"`
}

// RunTSOAuth signs in to the MCP endpoint with the official TypeScript SDK
// client's OAuth support, headless (testdata/tsoauth.mjs): discovery →
// registration → authorization (login_hint, consent form) → token →
// tools/list → refresh → tools/list. It needs Node 22 and MANDATE_TS_SDK. A
// failed flow returns the output so far (Steps) and an error; no error ever
// contains a token.
func RunTSOAuth(ctx context.Context, o TSOAuthOptions) (*TSOAuthOutput, error) {
	node, ok := Node22()
	if !ok {
		return nil, fmt.Errorf("%w: node 22 not at %s", ErrToolMissing, node)
	}
	sdk, ok := TSSDK()
	if !ok {
		return nil, fmt.Errorf("%w: @modelcontextprotocol/sdk not at %q", ErrToolMissing, sdk)
	}
	if o.RedirectURI == "" {
		o.RedirectURI = "http://127.0.0.1:1/callback"
	}
	if o.Registration == "" {
		o.Registration = RegistrationDCR
	}
	if o.Registration == RegistrationCIMD && o.ClientMetadataURL == "" {
		return nil, errors.New("nodetools: RunTSOAuth: cimd needs ClientMetadataURL")
	}
	cfg, err := json.Marshal(map[string]any{
		"url": o.URL, "loginHint": o.LoginHint, "redirectUri": o.RedirectURI,
		"registration": o.Registration, "clientMetadataUrl": o.ClientMetadataURL,
		"clientIdPreset": o.Registration == RegistrationCIMD && !strings.HasPrefix(o.ClientMetadataURL, "https://"),
		"issuer":         o.Issuer, "replay": o.Replay,
		"callTool": o.CallTool, "skipRefresh": o.SkipRefresh,
	})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mcp-tsoauth-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "tsoauth.mjs")
	if err := os.WriteFile(script, tsOAuthScript, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, node, script, string(cfg))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir,
		"MANDATE_TS_SDK="+sdk,
		"NO_COLOR=1",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out TSOAuthOutput
	if err := json.Unmarshal(lastLine(stdout.Bytes()), &out); err != nil {
		if ctx.Err() != nil {
			runErr = ctx.Err()
		}
		return nil, fmt.Errorf("typescript sdk oauth client: %v (output not JSON: %v)\nstderr: %s\nstdout: %.500s", runErr, err,
			redactJWTs(strings.TrimSpace(stderr.String())), redactJWTs(stdout.String()))
	}
	if runErr != nil || out.Error != "" {
		return &out, fmt.Errorf("typescript sdk oauth client: %v: %s\nsteps:\n  %s\nstderr: %s", runErr, redactJWTs(out.Error),
			strings.Join(out.Steps, "\n  "), redactJWTs(strings.TrimSpace(stderr.String())))
	}
	return &out, nil
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// redactJWTs replaces anything shaped like a JWT (three base64url parts) in s.
func redactJWTs(s string) string {
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return !(r == '.' || r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
	for _, f := range fields {
		if strings.Count(f, ".") == 2 && len(f) > 40 {
			s = strings.ReplaceAll(s, f, "[REDACTED]")
		}
	}
	return s
}
