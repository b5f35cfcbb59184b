package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mandate-gw/mandate/gateway"
	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
)

// errDenied makes `mandate explain` exit 1 for a denial, for scripts.
var errDenied = errors.New("denied")

func explain(args []string, stdout io.Writer) error {
	fs := newFlags("explain", stdout)
	path := fs.String("config", "config.yaml", "configuration file")
	claimsPath := fs.String("user-claims", "", "JSON file with the user's token claims (required)")
	tool := fs.String("tool", "", "tool name as clients see it (e.g. crm_get_account)")
	prompt := fs.String("prompt", "", "prompt name as clients see it")
	resource := fs.String("resource", "", "resource URI (with --upstream)")
	upstream := fs.String("upstream", "", "upstream of --resource")
	argsJSON := fs.String("arguments", "", "call arguments as a JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *claimsPath == "" {
		return usageError{errors.New("--user-claims is required")}
	}
	cfg, err := gateway.LoadConfig(*path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(*claimsPath)
	if err != nil {
		return err
	}
	req := gateway.ExplainRequest{Tool: *tool, Prompt: *prompt, Resource: *resource, Upstream: *upstream}
	// Decoded as the gateway decodes a token's claims (numbers exact).
	if req.Claims, err = authn.DecodeClaims(b); err != nil {
		return fmt.Errorf("%s: not a JSON object of claims: %w", *claimsPath, err)
	}
	if *argsJSON != "" {
		if err := json.Unmarshal([]byte(*argsJSON), &req.Arguments); err != nil {
			return usageError{fmt.Errorf("--arguments: not a JSON object: %w", err)}
		}
	}
	allowed, err := gateway.Explain(cfg, req, stdout)
	if err != nil {
		return err
	}
	if !allowed {
		return errDenied
	}
	return nil
}

const auditUsage = "usage: mandate audit verify [--allow-restarts] FILE [FILE...] (files in rotation order)"

func auditCmd(args []string, stdout io.Writer) error {
	if len(args) < 1 || args[0] != "verify" {
		return usageError{errors.New(auditUsage)}
	}
	fs := newFlags("audit verify", stdout)
	allow := fs.Bool("allow-restarts", false,
		"accept a new chain in the middle of a file even when the chain before it did not end with a close record\n"+
			"(a stdout sink collected across a crash, or logs from before close records); reported, not hidden")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() == 0 {
		return usageError{errors.New(auditUsage)}
	}
	res, err := audit.VerifyFilesWith(audit.VerifyOptions{AllowRestarts: *allow}, fs.Args()...)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.String())
	if !res.OK {
		return errors.New("audit chain broken")
	}
	return nil
}
