package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/version"
)

// Main runs the plugin as the binary args[0] and returns the exit code.
// Errors are printed the way kubectl prints them.
func Main(args []string, streams genericiooptions.IOStreams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first interrupt cancels what is in flight and lets the command
	// report; a second one kills it the usual way.
	go func() {
		<-ctx.Done()
		stop()
	}()
	return run(ctx, args, streams, defaultDeps())
}

func run(ctx context.Context, args []string, streams genericiooptions.IOStreams, d deps) int {
	if len(args) == 0 {
		fmt.Fprintln(streams.ErrOut, "error: no program name")
		return 1
	}
	cmd, err := newCommand(args[0], streams, d)
	if err != nil {
		fmt.Fprintln(streams.ErrOut, FormatError(err))
		return 1
	}
	cmd.SetArgs(args[1:])
	if err := cmd.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(streams.ErrOut, FormatError(err))
		}
		return 1
	}
	return 0
}

// NewCommand returns the command the binary's name asks for (see
// InvocationFor), with every connection flag kubectl has.
func NewCommand(binary string, streams genericiooptions.IOStreams) (*cobra.Command, error) {
	return newCommand(binary, streams, defaultDeps())
}

// deps is what tests replace: the core Nodes client --wait uses, the
// clientset --drain uses, the clock of the progress lines and whether
// ErrOut is a terminal.
type deps struct {
	nodes func(*rest.Config) (corev1client.NodeInterface, error)
	kube  func(*rest.Config) (kubernetes.Interface, error)
	now   func() time.Time
	// terminal is ErrOut's width when it is a terminal.
	terminal func(io.Writer) (int, bool)
	// evictRetryDelay is the pause between refused evictions.
	evictRetryDelay time.Duration
}

func defaultDeps() deps {
	return deps{
		nodes: func(cfg *rest.Config) (corev1client.NodeInterface, error) {
			c, err := corev1client.NewForConfig(cfg)
			if err != nil {
				return nil, err
			}
			return c.Nodes(), nil
		},
		kube: func(cfg *rest.Config) (kubernetes.Interface, error) {
			return kubernetes.NewForConfig(cfg)
		},
		now:             time.Now,
		terminal:        terminalWidth,
		evictRetryDelay: evictRetryDelay,
	}
}

// cli is what the commands of one binary share.
type cli struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	deps    deps
}

func newCommand(binary string, streams genericiooptions.IOStreams, d deps) (*cobra.Command, error) {
	inv, err := InvocationFor(binary)
	if err != nil {
		return nil, err
	}
	c := &cli{flags: genericclioptions.NewConfigFlags(true), streams: streams, deps: d}
	// Nodes are cluster-scoped: a -n/--namespace flag would only suggest
	// it meant something.
	c.flags.Namespace = nil
	var root *cobra.Command
	if inv.Action != "" {
		a, known := LookupAction(inv.Action)
		if !known {
			a = Action{Name: inv.Action, Short: discoveredAction(inv.Action, "").Short}
		}
		root = c.actionCommand(inv.CommandName, "kubectl "+inv.CommandName, a, !known)
	} else {
		root = c.multiActionCommand(inv.CommandName)
	}
	c.flags.AddFlags(root.PersistentFlags())
	// --version without cobra's -v shorthand, which kubectl users read as
	// verbosity.
	root.Version = fmt.Sprintf("%s %s (%s)", filepath.Base(binary), version.Version, runtime.Version())
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().Bool("version", false, "Print the plugin's version and exit.")
	c.registerConfigCompletions(root)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SilenceErrors = true
	root.SilenceUsage = true
	// kubectl completes plugins through kubectl_complete-<name> scripts
	// (see cmd/kubectl-restart); a completion command of the plugin's own
	// would only compete with kubectl's.
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s --help' for usage", err, displayName(cmd))
	})
	return root, nil
}

func displayName(cmd *cobra.Command) string {
	if n, ok := cmd.Annotations[cobra.CommandDisplayNameAnnotation]; ok {
		return n
	}
	return cmd.CommandPath()
}

// restConfig is the client config kubectl would use with the same flags:
// kubeconfig files (KUBECONFIG lists merged), context, credentials
// including exec and auth-provider plugins, impersonation and timeouts,
// all through client-go's loader. A --kubeconfig holding a list is read
// as KUBECONFIG would be.
func (c *cli) restConfig() (*rest.Config, error) {
	if p := *c.flags.KubeConfig; strings.ContainsRune(p, os.PathListSeparator) {
		if _, err := os.Stat(p); err != nil {
			if err := os.Setenv(clientcmd.RecommendedConfigPathEnvVar, p); err != nil {
				return nil, err
			}
			*c.flags.KubeConfig = ""
		}
	}
	cfg, err := c.flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NewWarningWriter(c.streams.ErrOut, rest.WarningWriterOptions{Deduplicate: true})
	return cfg, nil
}

func (c *cli) groupClient() (*groupClient, error) {
	cfg, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	return newGroupClient(cfg)
}

// resolve checks the action against the server's discovery and, for an
// action this plugin has no entry for, takes its options kind from there.
func (c *cli) resolve(name string) (Action, error) {
	// restConfig reads a --kubeconfig list before discovery loads it.
	if _, err := c.restConfig(); err != nil {
		return Action{}, err
	}
	d, err := c.flags.ToDiscoveryClient()
	if err != nil {
		return Action{}, err
	}
	return resolveAction(d, name)
}

// actionCommand is the command of one action. With discover, the action
// is checked against the server's discovery before anything is sent.
func (c *cli) actionCommand(use, display string, a Action, discover bool) *cobra.Command {
	o := NewOptions(a, c.streams)
	cmd := &cobra.Command{
		Use:               use + " (NODE... | -l SELECTOR)",
		Short:             a.Short,
		Long:              long(a),
		Example:           examples(display, a),
		Annotations:       map[string]string{cobra.CommandDisplayNameAnnotation: display},
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: c.completeNodes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if discover {
				resolved, err := c.resolve(a.Name)
				if err != nil {
					return err
				}
				o.Action.Kind = resolved.Kind
			}
			return c.run(cmd.Context(), o, args)
		},
	}
	o.AddFlags(cmd.Flags())
	c.registerOptionCompletions(cmd, a)
	return cmd
}

// multiActionCommand is kubectl cloudnode ACTION NODE…: one subcommand per
// action this plugin knows, and any other action the server serves run
// with the common options.
func (c *cli) multiActionCommand(use string) *cobra.Command {
	display := "kubectl " + use
	generic := NewOptions(Action{}, c.streams)
	root := &cobra.Command{
		Use:   use + " ACTION (NODE... | -l SELECTOR)",
		Short: "Act on the cloud machines behind nodes through the " + groupVersion() + " API",
		Long: "Act on the cloud machines behind nodes through the " + groupVersion() + " API.\n\n" +
			"ACTION is a nodes/<action> subresource the server serves (see discovery); the actions listed\n" +
			"below have their own flags, any other served action takes the common ones.",
		Example:     fmt.Sprintf("  %s restart ip-10-0-1-23.ec2.internal --dry-run=server", display),
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: display},
		Args:        cobra.ArbitraryArgs,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return c.completeActions(cmd, toComplete)
			}
			return c.completeNodes(cmd, args[1:], toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("you must specify an action, e.g. %s restart NODE; see '%s --help'", display, display)
			}
			a, err := c.resolve(args[0])
			if err != nil {
				return err
			}
			generic.Action = a
			return c.run(cmd.Context(), generic, args[1:])
		},
	}
	generic.AddFlags(root.Flags())
	for _, a := range Actions {
		root.AddCommand(c.actionCommand(a.Name, display+" "+a.Name, a, true))
	}
	return root
}

// run completes, validates and runs one action's options.
func (c *cli) run(ctx context.Context, o *Options, args []string) error {
	if err := o.Complete(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	r := &runner{Options: o, now: c.deps.now, evictRetryDelay: c.deps.evictRetryDelay}
	r.rep = &reporter{out: o.Out, errOut: o.ErrOut, now: c.deps.now, events: o.Output == OutputJSON && o.streaming()}
	if c.deps.terminal != nil {
		if w, ok := c.deps.terminal(o.ErrOut); ok {
			r.rep.width = w
		}
	}
	if o.Selector != "" || o.dryRun != DryRunClient {
		cfg, err := c.restConfig()
		if err != nil {
			return err
		}
		if r.group, err = newGroupClient(cfg); err != nil {
			return err
		}
		if o.Drain.Enabled {
			if r.kube, err = c.deps.kube(cfg); err != nil {
				return err
			}
		}
		if o.Wait || o.Drain.Enabled {
			if r.nodes, err = c.deps.nodes(cfg); err != nil {
				return err
			}
		}
	}
	return r.Run(ctx)
}

func groupVersion() string { return infraopsv1.SchemeGroupVersion.String() }

func long(a Action) string {
	s := fmt.Sprintf(`%s.

Each node is asked for with POST /apis/%s/nodes/NODE/%s:
the server finds the cloud machine behind the node's providerID, calls the
cloud, and answers with a NodeAction (the machine, the cloud's request ID,
who asked).

With -l, every node the selector matches is acted on, --max-in-flight at a
time, and each node's UID is sent as a precondition, so a node recreated
under the same name since it was listed is left alone. When more than one
node would be affected, the command asks first (the answer is read from
stdin) unless --yes is given; a dry run changes nothing and does not ask.`, a.Short, groupVersion(), a.Name)
	s += `

A refusal that says when to come back (429 TooManyRequests, such as a
disruption budget of the server's policy, or a 409 with Retry-After that is
not the node's own lock) is retried then, up to --timeout per node.`
	switch a.Until {
	case GoalRebooted:
		s += `

With --wait, each node is watched after the request until the machine has
booted again (status.nodeInfo.bootID changed) and the node is Ready, up to
--timeout per node; a node that does not come back stops the rollout
(unless --continue-on-error).`
	case GoalNotReady:
		s += `

With --wait, each node is watched after the request until it is NotReady
(the machine is down), up to --timeout per node.`
	case GoalReady:
		s += `

With --wait, each node is watched after the request until it is Ready, up
to --timeout per node; a node that does not come back stops the rollout.`
	}
	if p := drainPolicyOf(a); p != drainNone || a.Name == "" {
		s += `

With --drain, each node is first checked with a server dry run of the
action, then cordoned, and its pods evicted with kubectl's drain library:
PodDisruptionBudgets are respected, DaemonSet pods are left alone, and
--delete-emptydir-data, --force, --grace-period and --pod-selector mean what
they mean to kubectl drain. A drain that does not finish within
--drain-timeout stops with the pods and PodDisruptionBudgets that held it;
the node is uncordoned (unless --keep-cordoned) and not acted on (unless
--force-undrained). Ctrl-C during a drain uncordons the node. After the
action, --drain ` + drainAfterUsage(a) + `

With -l, nodes are drained, acted on, waited for and uncordoned
--max-in-flight at a time; the first failure stops the rollout unless
--continue-on-error, and a summary counts the nodes done, failed and skipped.

Permissions: --drain runs with your credentials. It checks these rules
(cluster-wide) before it cordons anything and names the ones you lack:
` + drainRBACHelp(actionOrPlaceholder(a))
	}
	s += `

With --random N (and -l), N nodes are picked at random from those the
selector matches, shown, and acted on after confirmation (unless --yes), with
the usual --max-in-flight, --drain and --wait. --seed replays a pick; each of
--count rounds, --interval apart, picks anew. A selector that matches fewer
than N nodes is refused.

With -o json, a run that follows nodes (--wait, --drain, --random) prints one
JSON event per line as it happens (Cordoned, Evicting, Evicted, Drained,
Retrying, Requested, Waiting, Back, Uncordoned, LeftCordoned, Failed,
Picked, Summary) instead of the NodeActions at the end. On a terminal, the
state of the nodes being waited for is one line that updates in place.`
	return s
}

func actionOrPlaceholder(a Action) string {
	if a.Name == "" {
		return "<action>"
	}
	return a.Name
}

func examples(display string, a Action) string {
	lines := []string{
		fmt.Sprintf("  # Ask the cloud to %s the machine behind a node", a.Name),
		fmt.Sprintf("  %s ip-10-0-1-23.ec2.internal --reason 'kernel update'", display),
		"",
		"  # Check everything with the cloud, changing nothing",
		fmt.Sprintf("  %s ip-10-0-1-23.ec2.internal --dry-run=server", display),
	}
	if i := slices.IndexFunc(a.Params, func(p Param) bool { return len(p.Values) > 1 }); i >= 0 {
		p := a.Params[i]
		lines = append(lines, "",
			fmt.Sprintf("  # Use --%s %s", p.Flag, p.Values[len(p.Values)-1]),
			fmt.Sprintf("  %s 172.16.0.13 --%s %s", display, p.Flag, p.Values[len(p.Values)-1]))
	}
	if a.Until == GoalRebooted {
		lines = append(lines, "",
			"  # One node pool, two nodes at a time, each waited for until it is back and Ready",
			fmt.Sprintf("  %s -l pool=workers --wait --max-in-flight 2 --yes", display))
	}
	if drainPolicyOf(a) != drainNone {
		lines = append(lines, "",
			"  # Drain first (PodDisruptionBudgets respected, at most 2m), then act; uncordoned when back",
			fmt.Sprintf("  %s ip-10-0-1-23.ec2.internal --drain --drain-timeout 2m --delete-emptydir-data", display),
			"",
			"  # A rolling maintenance of a pool, one node at a time, going on past failures",
			fmt.Sprintf("  %s -l pool=workers --drain --continue-on-error --yes", display))
	}
	if a.Until == GoalRebooted {
		lines = append(lines, "",
			"  # Chaos: 2 random nodes of the pool, 3 rounds 10 minutes apart; --seed replays the picks",
			fmt.Sprintf("  %s -l pool=workers --random 2 --count 3 --interval 10m --seed 42 --wait", display))
	} else {
		lines = append(lines, "",
			"  # Every node of a pool, without the confirmation prompt",
			fmt.Sprintf("  %s -l pool=workers --yes", display))
	}
	lines = append(lines, "",
		"  # The NodeAction objects the server answered, as YAML",
		fmt.Sprintf("  %s ip-10-0-1-23.ec2.internal -o yaml", display))
	return strings.Join(lines, "\n")
}

// flagValues lists a flag's values for completion.
func flagValues(values ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}

func (c *cli) registerOptionCompletions(cmd *cobra.Command, a Action) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(cmd.RegisterFlagCompletionFunc("dry-run", flagValues(string(DryRunNone), string(DryRunServer), string(DryRunClient))))
	must(cmd.RegisterFlagCompletionFunc("output", flagValues(outputFormats...)))
	for _, p := range a.Params {
		if len(p.Values) > 0 {
			must(cmd.RegisterFlagCompletionFunc(p.Flag, flagValues(p.Values...)))
		}
	}
}

// registerConfigCompletions completes --context, --cluster and --user from
// the kubeconfig, as kubectl does.
func (c *cli) registerConfigCompletions(root *cobra.Command) {
	complete := func(names func(clientcmdapi.Config) []string) cobra.CompletionFunc {
		return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			raw, err := c.flags.ToRawKubeConfigLoader().RawConfig()
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return withPrefix(names(raw), toComplete, nil), cobra.ShellCompDirectiveNoFileComp
		}
	}
	for flag, names := range map[string]func(clientcmdapi.Config) []string{
		"context": func(c clientcmdapi.Config) []string { return slices.Sorted(maps.Keys(c.Contexts)) },
		"cluster": func(c clientcmdapi.Config) []string { return slices.Sorted(maps.Keys(c.Clusters)) },
		"user":    func(c clientcmdapi.Config) []string { return slices.Sorted(maps.Keys(c.AuthInfos)) },
	} {
		if err := root.RegisterFlagCompletionFunc(flag, complete(names)); err != nil {
			panic(err)
		}
	}
}

// withPrefix keeps the names starting with prefix that are not in exclude.
func withPrefix(names []string, prefix string, exclude []string) []cobra.Completion {
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && !slices.Contains(exclude, n) {
			out = append(out, n)
		}
	}
	return out
}

// completionTimeout bounds the API calls of a shell completion: a shell
// waiting on an unreachable server is worse than no suggestions.
const completionTimeout = 5 * time.Second

// completeNodes lists the group's nodes for NODE arguments.
func (c *cli) completeNodes(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if sel, _ := cmd.Flags().GetString("selector"); sel != "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	g, err := c.groupClient()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	list, err := g.list(ctx, "")
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, len(list.Items))
	for i, n := range list.Items {
		names[i] = n.Name
	}
	var given []string
	for _, a := range args {
		if n, err := nodeName(a); err == nil {
			given = append(given, n)
		}
	}
	return withPrefix(names, toComplete, given), cobra.ShellCompDirectiveNoFileComp
}

// completeActions lists the served actions that have no subcommand (cobra
// lists the subcommands itself).
func (c *cli) completeActions(cmd *cobra.Command, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if _, err := c.restConfig(); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	d, err := c.flags.ToDiscoveryClient()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	served, err := servedActions(d, "")
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range served {
		if _, known := LookupAction(s.Name); !known {
			names = append(names, s.Name)
		}
	}
	return withPrefix(names, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
}
