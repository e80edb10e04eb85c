// Package version is the product's own version, stamped at build time by the
// Makefile (-ldflags -X). It is kept apart from component-base's version,
// which k8s.io/apiserver reads as the Kubernetes version it emulates.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set with -ldflags "-X github.com/michael/k8s-cloud-node-manager/pkg/version.Version=v…".
var Version = "v0.0.0-dev"

// String is what --version prints.
func String() string {
	k8s := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/apiserver" {
				k8s = d.Version
			}
		}
	}
	return fmt.Sprintf("%s (k8s.io/apiserver %s, %s)", Version, k8s, runtime.Version())
}
