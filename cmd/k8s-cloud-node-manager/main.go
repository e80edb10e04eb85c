// Command k8s-cloud-node-manager is the aggregated API server of
// infraops.michael.io: a view of the cluster's Nodes with their cloud
// identity, and actions (restart, …) on the machines behind them.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register" // --logging-format=json
	"k8s.io/component-base/term"
	"k8s.io/klog/v2"

	"github.com/michael/k8s-cloud-node-manager/pkg/apiserver"
	"github.com/michael/k8s-cloud-node-manager/pkg/version"
)

func main() {
	os.Exit(cli.Run(newCommand()))
}

func newCommand() *cobra.Command {
	opts := apiserver.NewOptions()
	logConfig := logsapi.NewLoggingConfiguration()
	logGate := featuregate.NewFeatureGate()
	if err := logsapi.AddFeatureGates(logGate); err != nil {
		panic(err) // programming error: the gates are fixed at build time
	}
	var printVersion bool

	cmd := &cobra.Command{
		Use:   "k8s-cloud-node-manager",
		Short: "Aggregated API server to restart the cloud machines behind Kubernetes Nodes",
		// --help prints Long (component-base's help function), not Short.
		Long: `k8s-cloud-node-manager is the Kubernetes aggregated API server of infraops.michael.io/v1:
a read-only view of the cluster's Nodes with the cloud machine behind each one (nodes),
and actions on those machines (nodes/{name}/restart) through the clouds' official SDKs,
authorized by Kubernetes RBAC and audited with an Event on the Node.

It runs behind kube-apiserver, registered as an APIService (config/chart). Out of a
cluster, give it --kubeconfig, --authentication-kubeconfig and --authorization-kubeconfig
(docs/development.md); without --tls-cert-file it serves a self-signed certificate kept
in --cert-dir.`,
		// Flag errors are printed by cli.Run with the usage; runtime errors
		// should not be followed by a page of flags.
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printVersion {
				fmt.Fprintln(cmd.OutOrStdout(), version.String())
				return nil
			}
			if err := logsapi.ValidateAndApply(logConfig, logGate); err != nil {
				return err
			}
			if errs := opts.Validate(); len(errs) > 0 {
				return utilerrors.NewAggregate(errs)
			}
			// SIGTERM starts a graceful shutdown: in-flight requests finish
			// before the process exits.
			ctx := genericapiserver.SetupSignalContext()
			klog.FromContext(ctx).Info("Starting", "version", version.String())
			config, err := opts.Config()
			if err != nil {
				return err
			}
			server, err := config.Complete().New(ctx)
			if err != nil {
				return err
			}
			return server.Run(ctx)
		},
	}

	fss := opts.Flags()
	logsapi.AddFlags(logConfig, fss.FlagSet("logging"))
	fss.FlagSet("generic").BoolVar(&printVersion, "version", false, "Print the version and exit.")
	fs := cmd.Flags()
	for _, f := range fss.FlagSets {
		fs.AddFlagSet(f)
	}
	cols, _, _ := term.TerminalSize(cmd.OutOrStdout())
	cliflag.SetUsageAndHelpFunc(cmd, fss, cols)
	return cmd
}
