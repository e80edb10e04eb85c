//go:build unix && !linux

package cluster

import "syscall"

// Each child leads its own process group so Stop can kill what it forked.
// Outside Linux there is no parent-death signal: a harness killed hard
// leaves its children behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
