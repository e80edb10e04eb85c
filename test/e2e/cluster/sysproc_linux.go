package cluster

import "syscall"

// Each child leads its own process group so Stop can kill what it forked,
// and dies with the harness: a test binary killed by `go test -timeout`
// must not leave a kube-apiserver running on a shared machine.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
