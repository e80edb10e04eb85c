// Command kubectl-restart is the kubectl plugin of the infraops.michael.io
// API. Its name picks the action: kubectl-restart (or krew's
// kubectl-cloudnode_restart) is `kubectl restart NODE…`; the same binary
// installed as kubectl-cloudnode is `kubectl cloudnode ACTION NODE…`.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	// The auth-provider plugins kubectl has (oidc); exec credential plugins
	// need no registration.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"github.com/michael/k8s-cloud-node-manager/pkg/plugin"
)

func main() {
	os.Exit(plugin.Main(os.Args, genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
