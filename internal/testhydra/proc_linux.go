package testhydra

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill Hydra if the process that started it
// dies without calling Close (a test binary killed by a timeout, say).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
