package testenv

import "syscall"

// setParentDeathSignal has the kernel kill the child when the test process dies.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
