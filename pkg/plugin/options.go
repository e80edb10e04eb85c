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

// DefaultTimeout bounds --wait for each node.
const DefaultTimeout = 10 * time.Minute

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

	genericiooptions.IOStreams

	dryRun DryRun
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
	}
	for _, p := range a.Params {
		v := p.Default
		o.Params[p.Flag] = &v
	}
	return o
}

// AddFlags registers the action's flags. --wait and --timeout are only
// there for actions that reboot the machine: nothing else tells when they
// are over.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
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
	if o.Action.Until != GoalNone {
		fs.BoolVar(&o.Wait, "wait", o.Wait, o.Action.Until.waitHelp())
		fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long --wait waits for each node.")
	}
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
	if o.Wait {
		if o.Action.Until == GoalNone {
			return fmt.Errorf("--wait is not supported for %s", o.Action.Name)
		}
		if o.dryRun != DryRunNone {
			return errors.New("--wait cannot be used with --dry-run: nothing would change")
		}
		if o.Timeout <= 0 {
			return fmt.Errorf("--timeout must be positive, got %s", o.Timeout)
		}
	}
	return nil
}

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
