package policy

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Config is the --policy-config file (see the README, "Safety policy").
type Config struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	// UnderActionBound is how long, at most, a node counts as under an
	// action after it was accepted, if nothing says it has completed
	// sooner (a node that never comes back must not hold a budget forever).
	UnderActionBound *metav1.Duration `json:"underActionBound,omitempty"`
	// OptOuts are the Node markers that refuse every action. The
	// infraops.michael.io/protect: "true" annotation always does.
	OptOuts OptOuts `json:"optOuts,omitempty"`
	// Budgets limit how many nodes are under an action at once.
	Budgets []BudgetRule `json:"budgets,omitempty"`
	// Windows allow actions only at certain times.
	Windows []WindowRule `json:"windows,omitempty"`
}

// OptOuts name the other projects' markers to honour.
type OptOuts struct {
	// KarpenterDoNotDisrupt refuses nodes annotated karpenter.sh/do-not-disrupt: "true".
	KarpenterDoNotDisrupt bool `json:"karpenterDoNotDisrupt,omitempty"`
	// ClusterAPIPaused refuses nodes carrying the cluster.x-k8s.io/paused annotation (any value).
	ClusterAPIPaused bool `json:"clusterAPIPaused,omitempty"`
}

// BudgetRule is one budget: exactly one of MaxUnderAction and MinReady.
type BudgetRule struct {
	// Name names the budget in refusals, Events, metrics and the budgets view.
	Name string `json:"name"`
	// Selector picks the nodes (kubectl -l syntax); empty: every node.
	Selector string `json:"selector,omitempty"`
	// GroupBy splits the nodes by the value of this label, each value its
	// own budget (e.g. topology.kubernetes.io/zone: one per zone). Nodes
	// without the label form one group of their own.
	GroupBy string `json:"groupBy,omitempty"`
	// Actions the budget applies to; empty: every action.
	Actions []string `json:"actions,omitempty"`
	// MaxUnderAction is how many of a group's nodes may be under an action at once.
	MaxUnderAction *int32 `json:"maxUnderAction,omitempty"`
	// MinReady is how many (or what percentage, rounded up) of a group's
	// nodes must stay Ready and not under an action.
	MinReady *intstr.IntOrString `json:"minReady,omitempty"`
}

// WindowRule allows the actions on its nodes only inside its schedules.
type WindowRule struct {
	Name     string   `json:"name"`
	Selector string   `json:"selector,omitempty"`
	Actions  []string `json:"actions,omitempty"`
	// Schedule lists weekly windows ("Mon-Fri 02:00-05:00 Europe/Berlin")
	// or "always"; the action is allowed when any is open.
	Schedule []string `json:"schedule"`
}

// DefaultUnderActionBound is how long a node counts as under an action
// when the policy does not say: longer than a machine takes to reboot.
const DefaultUnderActionBound = 30 * time.Minute

const (
	configAPIVersion = "infraops.michael.io/v1"
	configKind       = "PolicyConfig"
)

// Load reads and checks a policy file; "" means no policy (nil).
func Load(path string) (*Policy, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Parse decodes a policy strictly (unknown or duplicate keys are errors)
// and compiles it.
func Parse(data []byte) (*Policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("the policy file is empty")
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("the policy file is not a valid %s: %v", configKind, err)
	}
	return compile(c)
}

type budget struct {
	BudgetRule
	selector labels.Selector
	actions  map[string]bool
}

type window struct {
	WindowRule
	selector  labels.Selector
	actions   map[string]bool
	schedules []*Schedule
}

func compile(c Config) (*Policy, error) {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.APIVersion != "" && c.APIVersion != configAPIVersion {
		bad("apiVersion must be %s, not %q", configAPIVersion, c.APIVersion)
	}
	if c.Kind != "" && c.Kind != configKind {
		bad("kind must be %s, not %q", configKind, c.Kind)
	}
	p := &Policy{config: c, bound: DefaultUnderActionBound, optOuts: c.OptOuts}
	if c.UnderActionBound != nil {
		p.bound = c.UnderActionBound.Duration
		if p.bound < time.Minute {
			bad("underActionBound must be at least 1m, got %s", p.bound)
		}
	}
	names := map[string]string{}
	checkName := func(where, name string) {
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 || len(name) > maxRuleName {
			bad("%s: name %q must be a DNS label of at most %d characters (lower-case letters, digits, '-')", where, name, maxRuleName)
		} else if prev, ok := names[name]; ok {
			bad("%s: name %q is also used by %s", where, name, prev)
		}
		names[name] = where
	}
	parseSelector := func(where, s string) labels.Selector {
		sel, err := labels.Parse(s)
		if err != nil {
			bad("%s: selector %q: %v", where, s, err)
			return labels.Nothing()
		}
		return sel
	}
	for i, b := range c.Budgets {
		where := fmt.Sprintf("budgets[%d]", i)
		checkName(where, b.Name)
		cb := &budget{BudgetRule: b, selector: parseSelector(where, b.Selector), actions: actionSet(b.Actions)}
		if b.GroupBy != "" {
			if msgs := validation.IsQualifiedName(b.GroupBy); len(msgs) > 0 {
				bad("%s: groupBy %q is not a label key: %s", where, b.GroupBy, strings.Join(msgs, "; "))
			}
		}
		switch {
		case (b.MaxUnderAction == nil) == (b.MinReady == nil):
			bad("%s (%s): set exactly one of maxUnderAction and minReady", where, b.Name)
		case b.MaxUnderAction != nil && *b.MaxUnderAction < 1:
			bad("%s (%s): maxUnderAction must be at least 1 (to refuse every action, use a window or the protect annotation), got %d", where, b.Name, *b.MaxUnderAction)
		case b.MaxUnderAction != nil && *b.MaxUnderAction > maxSlots:
			bad("%s (%s): maxUnderAction must be at most %d, got %d", where, b.Name, maxSlots, *b.MaxUnderAction)
		case b.MinReady != nil:
			if _, err := minReadyOf(*b.MinReady, 100); err != nil {
				bad("%s (%s): minReady: %v", where, b.Name, err)
			}
		}
		p.budgets = append(p.budgets, cb)
	}
	for i, w := range c.Windows {
		where := fmt.Sprintf("windows[%d]", i)
		checkName(where, w.Name)
		cw := &window{WindowRule: w, selector: parseSelector(where, w.Selector), actions: actionSet(w.Actions)}
		if len(w.Schedule) == 0 {
			bad("%s (%s): schedule must list at least one window, or \"always\"", where, w.Name)
		}
		for _, s := range w.Schedule {
			sch, err := ParseSchedule(s)
			if err != nil {
				bad("%s (%s): %v", where, w.Name, err)
				continue
			}
			cw.schedules = append(cw.schedules, sch)
		}
		p.windows = append(p.windows, cw)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid policy: %s", strings.Join(errs, "; "))
	}
	return p, nil
}

// maxRuleName keeps slot Lease names short; maxSlots bounds the Leases a
// budget can need per group.
const (
	maxRuleName = 40
	maxSlots    = 1000
)

func actionSet(actions []string) map[string]bool {
	if len(actions) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, a := range actions {
		m[a] = true
	}
	return m
}

func appliesTo(actions map[string]bool, action string) bool {
	return actions == nil || actions[action]
}

// minReadyOf turns N or N% of a group of size total into a node count,
// rounding a percentage up (80% of 3 is 3: the safe side).
func minReadyOf(v intstr.IntOrString, total int) (int, error) {
	if v.Type == intstr.String && !strings.HasSuffix(v.StrVal, "%") {
		return 0, fmt.Errorf("%q must be a number or a percentage like \"80%%\"", v.StrVal)
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, total, true)
	if err != nil {
		return 0, err
	}
	if n < 0 || (v.Type == intstr.String && n > total) {
		return 0, fmt.Errorf("%s is out of range", v.String())
	}
	return n, nil
}
