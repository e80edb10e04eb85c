package plugin

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// DryRun is how much of the action happens.
type DryRun string

const (
	// DryRunNone asks the server to act.
	DryRunNone DryRun = "none"
	// DryRunClient sends nothing that acts and prints what would be asked.
	DryRunClient DryRun = "client"
	// DryRunServer asks the server, which checks everything with the cloud
	// and changes nothing.
	DryRunServer DryRun = "server"
)

// dryRunBare is the value of a bare --dry-run, which kubectl has always
// read as client: nothing is sent.
const dryRunBare = "unchanged"

// Output formats of -o.
const (
	OutputJSON = "json"
	OutputYAML = "yaml"
	OutputName = "name"
)

var outputFormats = []string{OutputJSON, OutputName, OutputYAML}

// DefaultTimeout bounds, for each node, the retries of a refusal that
// says when to come back and --wait.
const DefaultTimeout = 10 * time.Minute

// DefaultDrainTimeout bounds --drain for each node: kubectl drain waits
// forever by default, which is how a PodDisruptionBudget that never
// allows an eviction holds a rollout (kured #82, #303).
const DefaultDrainTimeout = 5 * time.Minute

// Options are the flags and arguments of one run of an action.
type Options struct {
	// Action is what is done; empty Name means it is the first argument
	// (cloudnode).
	Action Action

	DryRunFlag  string
	Reason      string
	Selector    string
	MaxInFlight int
	Yes         bool
	Wait        bool
	Timeout     time.Duration
	Output      string
	// Params are the values of the action's own flags, by flag name.
	Params map[string]*string

	// Names are the nodes given as arguments, without any node/ prefix.
	Names []string

	// ContinueOnError keeps a rollout (--wait, --drain) going past a
	// node that failed.
	ContinueOnError bool

	Drain DrainOptions
	Chaos ChaosOptions

	genericiooptions.IOStreams

	dryRun DryRun
	flags  *pflag.FlagSet
}

// DrainOptions are the --drain flags, as kubectl drain has them.
type DrainOptions struct {
	Enabled            bool
	DeleteEmptyDirData bool
	// Force evicts pods that declare no controller too (kubectl drain
	// --force).
	Force bool
	// GracePeriod is the pods' grace period in seconds; negative keeps
	// each pod's own.
	GracePeriod int
	PodSelector string
	Timeout     time.Duration
	// KeepCordoned leaves the node cordoned whatever happens.
	KeepCordoned bool
	// ForceUndrained acts on a node whose drain failed or timed out.
	ForceUndrained bool
}

// ChaosOptions are --random and its rounds.
type ChaosOptions struct {
	// Random is how many nodes to pick from the selector; 0 is off.
	Random   int
	Seed     uint64
	Count    int
	Interval time.Duration
	// seedSet is true when --seed was given; otherwise one is drawn and
	// printed, so the experiment can be replayed.
	seedSet bool
}

// NewOptions returns the defaults of an action's options.
func NewOptions(a Action, streams genericiooptions.IOStreams) *Options {
	o := &Options{
		Action:      a,
		DryRunFlag:  string(DryRunNone),
		MaxInFlight: 1,
		Timeout:     DefaultTimeout,
		Params:      map[string]*string{},
		IOStreams:   streams,
		Drain:       DrainOptions{GracePeriod: -1, Timeout: DefaultDrainTimeout},
		Chaos:       ChaosOptions{Count: 1},
	}
	for _, p := range a.Params {
		v := p.Default
		o.Params[p.Flag] = &v
	}
	return o
}

// AddFlags registers the action's flags. --wait is only there for actions
// that reboot the machine: nothing else tells when they are over; --drain
// only for actions that take the machine down (see drainPolicyOf).
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.flags = fs
	fs.StringVar(&o.DryRunFlag, "dry-run", o.DryRunFlag,
		`Must be "none", "server", or "client". If client strategy, only print what would be sent, without sending it. If server strategy, submit a server-side request that checks everything with the cloud and changes nothing.`)
	fs.Lookup("dry-run").NoOptDefVal = dryRunBare
	fs.StringVar(&o.Reason, "reason", o.Reason, "Why, recorded in the node's Event and the audit log.")
	fs.StringVarP(&o.Selector, "selector", "l", o.Selector,
		"Selector (label query) to filter nodes on, supports '=', '==', '!=', 'in', 'notin'. (e.g. -l key1=value1,key2=value2). Every matching node is acted on.")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", o.MaxInFlight,
		"How many nodes are handled at once; with --wait a node counts until it is back.")
	fs.BoolVar(&o.Yes, "yes", o.Yes, "Do not ask for confirmation when more than one node would be affected.")
	fs.StringVarP(&o.Output, "output", "o", o.Output, "Output format. One of: ("+strings.Join(outputFormats, ", ")+").")
	for _, p := range o.Action.Params {
		usage := p.Usage
		if len(p.Values) > 0 {
			usage += " One of: " + strings.Join(p.Values, ", ") + "."
		}
		fs.StringVar(o.Params[p.Flag], p.Flag, p.Default, usage)
	}
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout,
		"How long to wait for each node: for the server to accept the request (a refusal that says when to retry, such as a disruption budget's 429, is retried until then) and, with --wait, for the node to be back.")
	fs.BoolVar(&o.ContinueOnError, "continue-on-error", o.ContinueOnError,
		"With --wait or --drain, go on with the next nodes after one failed (by default the rollout stops at the first failure).")
	if o.Action.Until != GoalNone {
		fs.BoolVar(&o.Wait, "wait", o.Wait, o.Action.Until.waitHelp())
	}
	// The generic cloudnode ACTION command learns its action only from
	// its argument: it has the flags, and Validate judges them.
	if drainPolicyOf(o.Action) != drainNone || o.Action.Name == "" {
		fs.BoolVar(&o.Drain.Enabled, "drain", o.Drain.Enabled,
			"Cordon the node and evict its pods (respecting PodDisruptionBudgets, DaemonSet pods ignored) before the action; "+drainAfterUsage(o.Action))
		fs.BoolVar(&o.Drain.DeleteEmptyDirData, "delete-emptydir-data", o.Drain.DeleteEmptyDirData,
			"With --drain, evict pods using emptyDir volumes too (their data is lost), as kubectl drain --delete-emptydir-data.")
		fs.BoolVar(&o.Drain.Force, "force", o.Drain.Force,
			"With --drain, evict pods that declare no controller too, as kubectl drain --force.")
		fs.IntVar(&o.Drain.GracePeriod, "grace-period", o.Drain.GracePeriod,
			"With --drain, seconds each pod is given to terminate; negative uses the pod's own terminationGracePeriodSeconds.")
		fs.StringVar(&o.Drain.PodSelector, "pod-selector", o.Drain.PodSelector, "With --drain, evict only the pods this label selector matches.")
		fs.DurationVar(&o.Drain.Timeout, "drain-timeout", o.Drain.Timeout,
			"With --drain, how long the drain of each node may take; then the node is uncordoned (unless --keep-cordoned) and not acted on (unless --force-undrained).")
		fs.BoolVar(&o.Drain.KeepCordoned, "keep-cordoned", o.Drain.KeepCordoned,
			"With --drain, leave the node cordoned in every case: after it is back, and after a failed drain.")
		fs.BoolVar(&o.Drain.ForceUndrained, "force-undrained", o.Drain.ForceUndrained,
			"With --drain, act on the node even when its drain failed or timed out: the pods still on it go down with the machine.")
	}
	fs.IntVar(&o.Chaos.Random, "random", o.Chaos.Random,
		"Chaos: act on this many nodes picked at random from the selector (-l), shown before anything is done.")
	fs.Uint64Var(&o.Chaos.Seed, "seed", o.Chaos.Seed, "With --random, the seed of the pick, to replay an experiment (by default one is drawn and printed).")
	fs.IntVar(&o.Chaos.Count, "count", o.Chaos.Count, "With --random, how many rounds, each picking anew.")
	fs.DurationVar(&o.Chaos.Interval, "interval", o.Chaos.Interval, "With --random and --count, the time between the start of one round and the next.")
}

// Complete takes the arguments: node names, optionally as node/NAME the
// way `kubectl get nodes -o name` prints them.
func (o *Options) Complete(args []string) error {
	o.Names = o.Names[:0]
	seen := map[string]bool{}
	for _, arg := range args {
		name, err := nodeName(arg)
		if err != nil {
			return err
		}
		if !seen[name] {
			seen[name] = true
			o.Names = append(o.Names, name)
		}
	}
	o.Chaos.seedSet = o.flags != nil && o.flags.Changed("seed")
	switch o.DryRunFlag {
	case dryRunBare:
		o.dryRun = DryRunClient
	case "", string(DryRunNone):
		o.dryRun = DryRunNone
	case string(DryRunClient), string(DryRunServer):
		o.dryRun = DryRun(o.DryRunFlag)
	default:
		return fmt.Errorf(`invalid dry-run value (%s). Must be "none", "server", or "client"`, o.DryRunFlag)
	}
	// A drained node is uncordoned only once the machine is back, so a
	// drained reboot is always waited for.
	if o.Drain.Enabled && drainPolicyOf(o.Action) == DrainUncordonWhenBack && o.Action.Until != GoalNone && o.dryRun == DryRunNone {
		o.Wait = true
	}
	return nil
}

// nodePrefixes are the resource forms kubectl prints names with.
var nodePrefixes = []string{
	"node/", "nodes/",
	"node." + infraopsv1.GroupName + "/", "nodes." + infraopsv1.GroupName + "/",
}

func nodeName(arg string) (string, error) {
	name := arg
	for _, p := range nodePrefixes {
		if rest, ok := strings.CutPrefix(arg, p); ok {
			name = rest
			break
		}
	}
	if name == "" {
		return "", fmt.Errorf("invalid node name %q", arg)
	}
	if msgs := path.IsValidPathSegmentName(name); len(msgs) > 0 || strings.Contains(name, "/") {
		return "", fmt.Errorf("invalid node name %q: a node name cannot contain '/' or '%%' or be '.' or '..'", arg)
	}
	return name, nil
}

// Validate checks the flags against each other before anything is sent.
func (o *Options) Validate() error {
	if len(o.Names) > 0 && o.Selector != "" {
		return errors.New("node names cannot be given together with a selector (-l)")
	}
	if len(o.Names) == 0 && o.Selector == "" {
		return fmt.Errorf("you must specify the name of at least one node, or a selector (-l)")
	}
	if o.Selector != "" {
		if _, err := labels.Parse(o.Selector); err != nil {
			return fmt.Errorf("invalid selector %q: %w", o.Selector, err)
		}
	}
	if o.MaxInFlight < 1 {
		return fmt.Errorf("--max-in-flight must be at least 1, got %d", o.MaxInFlight)
	}
	if o.Output != "" && !slices.Contains(outputFormats, o.Output) {
		return fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: %s", o.Output, strings.Join(outputFormats, ","))
	}
	for _, p := range o.Action.Params {
		v := *o.Params[p.Flag]
		if len(p.Values) > 0 && v != p.Default && !slices.Contains(p.Values, v) {
			return fmt.Errorf("invalid --%s %s: must be one of %s", p.Flag, strconv.Quote(v), strings.Join(p.Values, ", "))
		}
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", o.Timeout)
	}
	if o.Wait {
		if o.Action.Until == GoalNone {
			return fmt.Errorf("--wait is not supported for %s", o.Action.Name)
		}
		if o.dryRun != DryRunNone {
			return errors.New("--wait cannot be used with --dry-run: nothing would change")
		}
	}
	if err := o.validateDrain(); err != nil {
		return err
	}
	return o.validateChaos()
}

func (o *Options) validateDrain() error {
	d := o.Drain
	if !d.Enabled {
		for _, f := range []string{"delete-emptydir-data", "force", "grace-period", "pod-selector", "drain-timeout", "keep-cordoned", "force-undrained"} {
			if o.changed(f) {
				return fmt.Errorf("--%s is a --drain flag: add --drain", f)
			}
		}
		return nil
	}
	if drainPolicyOf(o.Action) == drainNone {
		return fmt.Errorf("--drain is not supported for %s: it does not take the machine down", o.Action.Name)
	}
	if d.Timeout <= 0 {
		return fmt.Errorf("--drain-timeout must be positive, got %s: a drain that may wait forever is what leaves nodes cordoned", d.Timeout)
	}
	if d.PodSelector != "" {
		if _, err := labels.Parse(d.PodSelector); err != nil {
			return fmt.Errorf("invalid --pod-selector %q: %w", d.PodSelector, err)
		}
	}
	return nil
}

func (o *Options) validateChaos() error {
	c := o.Chaos
	if c.Random == 0 {
		for _, f := range []string{"seed", "count", "interval"} {
			if o.changed(f) {
				return fmt.Errorf("--%s is a --random flag: add --random N", f)
			}
		}
		return nil
	}
	if c.Random < 0 {
		return fmt.Errorf("--random must be at least 1, got %d", c.Random)
	}
	if o.Selector == "" {
		return errors.New("--random picks from the nodes a selector matches: add -l SELECTOR")
	}
	if c.Count < 1 {
		return fmt.Errorf("--count must be at least 1, got %d", c.Count)
	}
	if c.Count > 1 && c.Interval <= 0 {
		return fmt.Errorf("--count %d needs --interval: the time between rounds", c.Count)
	}
	if c.Interval < 0 {
		return fmt.Errorf("--interval must be positive, got %s", c.Interval)
	}
	return nil
}

func (o *Options) changed(flag string) bool {
	return o.flags != nil && o.flags.Lookup(flag) != nil && o.flags.Changed(flag)
}

// rollout is true when each node is followed to its end (--wait, --drain):
// a failure then stops the nodes not started yet.
func (o *Options) rollout() bool { return o.Wait || o.Drain.Enabled }

// streaming is true when -o json prints events as they happen rather than
// the NodeActions at the end.
func (o *Options) streaming() bool { return o.rollout() || o.Chaos.Random > 0 }

// DryRunStrategy is the parsed --dry-run (after Complete).
func (o *Options) DryRunStrategy() DryRun { return o.dryRun }

// commonOptions builds the fields every action's body has.
func (o *Options) commonOptions(uid types.UID) infraopsv1.ActionOptions {
	c := infraopsv1.ActionOptions{Reason: o.Reason, NodeUID: uid}
	if o.dryRun == DryRunServer {
		c.DryRun = []string{infraopsv1.DryRunAll}
	}
	return c
}

func (o *Options) paramValues() map[string]string {
	m := make(map[string]string, len(o.Params))
	for k, v := range o.Params {
		m[k] = *v
	}
	return m
}
