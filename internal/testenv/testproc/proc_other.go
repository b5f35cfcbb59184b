//go:build !linux

package testproc

import (
	"os"
	"os/exec"
)

func setProcAttr(cmd *exec.Cmd) {}

// killGroup kills only the process itself on systems without the Linux
// process-group attributes used in proc_linux.go.
func killGroup(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
