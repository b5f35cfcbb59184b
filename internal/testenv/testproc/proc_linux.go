package testproc

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the program in its own process group (so Close can kill
// the whole group) and makes the kernel kill it if the thread that started
// it dies without calling Close.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the process group led by pid.
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}
