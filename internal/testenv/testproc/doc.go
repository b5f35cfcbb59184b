// Package testproc runs an external program (Ory Hydra, Jaeger, …) for
// tests: it finds the binary, starts it in its own process group with a
// bounded capture of its output, waits until its HTTP endpoints are ready,
// and kills the whole group on Close. It holds what internal/testenv/testhydra and
// internal/testenv/testjaeger share; each of them adds its program's configuration
// and API client.
//
// Finding the binary: a [Binary] names the program, the environment
// variable that may point at it and the script that builds it. The path is
// an explicit one (an Options.Binary field), else the environment variable,
// else <repo>/bin/<Name>, where <repo> is the nearest directory upward whose
// go.mod declares module github.com/mandate-gw/mandate ([RepoRoot]).
//
// Usage from a wrapper package:
//
//	var hydraBin = testproc.Binary{Name: "hydra", EnvVar: "MANDATE_HYDRA_BIN",
//		BuildScript: "internal/testenv/testhydra/build/build.sh"}
//
//	func Start(ctx context.Context, opts Options) (*Hydra, error) {
//		bin, err := hydraBin.Find(opts.Binary)
//		if err != nil { return nil, fmt.Errorf("testhydra: %w", err) }
//		return testproc.StartRetrying(ctx, DefaultStartTimeout, func(ctx context.Context) (*Hydra, error) {
//			ports, err := testproc.FreePorts(2)
//			…
//			p, err := testproc.Start(testproc.Command{Name: "hydra", Path: bin, Args: …, Env: …})
//			…
//			if err := p.WaitHTTP(ctx, adminURL+"health/ready", publicURL+"health/ready"); err != nil {
//				p.Close()
//				return nil, err // wraps ErrAddrInUse when a picked port was taken
//			}
//		})
//	}
//
// From a test: path := hydraBin.Require(t) skips the test when the binary is
// missing, or fails it when MANDATE_E2E is set.
//
// The build scripts of these programs share buildtool.sh in this directory
// (sourced, bash): the absolute output path, the "skip when the binary is
// newer than go.mod/go.sum" check, and building into a temporary file moved
// into place.
//
// Like its users, this package does not import "testing".
package testproc
