package testjaeger

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts Jaeger in its own process group (so Close can kill the
// whole group) and makes the kernel kill it if the process that started it
// dies without calling Close (a test binary killed by a timeout, say).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the process group led by pid.
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}
