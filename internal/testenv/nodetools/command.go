package nodetools

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// NodeCommand returns a command running the Node script (for example the
// path from Conformance or Inspector) under Node 22, with Node 22's
// directory first on PATH so anything the script spawns as `node` is Node 22
// too. Example:
//
//	cli, _ := nodetools.Conformance()
//	cmd, err := nodetools.NodeCommand(ctx, cli, "server", "--url", url, "--suite", "all")
func NodeCommand(ctx context.Context, script string, args ...string) (*exec.Cmd, error) {
	node, ok := Node22()
	if !ok {
		return nil, fmt.Errorf("%w: node 22 not at %s", ErrToolMissing, node)
	}
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return cmd, nil
}
