// Package plugin is the kubectl plugin of the infraops.michael.io API:
// `kubectl restart NODE…` and `kubectl cloudnode ACTION NODE…`. One command
// implementation drives every action of the group; an action is data (its
// subresource name, its options kind and its own fields), so a new server
// action needs one more entry in Actions, or none at all when its options
// are only the common ones (see cloudnode, which discovers actions).
package plugin

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// Param is a field of an action's options kind beyond the common
// ActionOptions, set from a flag of the same meaning.
type Param struct {
	// Flag is the command-line flag.
	Flag string
	// Usage is the flag's help text.
	Usage string
	// Values are the accepted values, checked before anything is sent;
	// empty accepts any text.
	Values []string
	// Default is the flag's default, sent when the flag is not given.
	Default string
}

// Action is one subresource POST nodes/{name}/<Name> of the group.
type Action struct {
	// Name is the subresource, e.g. "restart".
	Name string
	// Kind is the options kind of the request body, e.g. "RestartOptions".
	Kind string
	// Short is the one-line help of the command.
	Short string
	// Params are the action's own fields.
	Params []Param
	// NewOptions builds the typed request body from the common options and
	// the Params' values by flag name. Nil sends only the common options,
	// which is how an action this plugin does not know yet is driven.
	NewOptions func(common infraopsv1.ActionOptions, params map[string]string) runtime.Object
	// Until is what --wait waits for on the Node (GoalNone: no --wait).
	Until Goal
	// Drain is what --drain does around the action; zero: no --drain
	// unless drainByName knows the action.
	Drain DrainPolicy
}

// DrainPolicy is what --drain does after the action of a drained node.
type DrainPolicy int

const (
	drainNone DrainPolicy = iota
	// DrainUncordonWhenBack waits until the machine is back (new boot
	// ID, Ready) and uncordons the node.
	DrainUncordonWhenBack
	// DrainStayCordoned leaves the node cordoned: the machine stays down,
	// and pods scheduled to it would only wait there.
	DrainStayCordoned
)

// drainByName are the actions that take a machine down, for an action the
// server serves before this plugin has an entry for it (found through
// discovery): drain them too.
var drainByName = map[string]DrainPolicy{
	"restart": DrainUncordonWhenBack,
	"stop":    DrainStayCordoned,
}

func drainPolicyOf(a Action) DrainPolicy {
	if a.Drain != drainNone {
		return a.Drain
	}
	return drainByName[a.Name]
}

func drainAfterUsage(a Action) string {
	switch drainPolicyOf(a) {
	case DrainStayCordoned:
		return "leaves the node cordoned after the action (uncordon it once the machine is started again)."
	case DrainUncordonWhenBack:
		return "waits (as --wait) until the node is back and Ready, then uncordons it."
	}
	return "waits until a restarted node is back and uncordons it, and leaves a stopped node cordoned."
}

// Goal is what --wait waits for on the core Node after the request.
type Goal int

const (
	// GoalNone: the action has no --wait.
	GoalNone Goal = iota
	// GoalRebooted: a new boot ID and Ready (restart). Both are needed:
	// Ready alone may never have turned false on a quick reboot, and a
	// new boot ID comes with Ready=False until the kubelet is up.
	GoalRebooted
	// GoalNotReady: the Ready condition is no longer True (stop).
	GoalNotReady
	// GoalReady: Ready, after not being Ready at the request, or with a
	// new boot ID (start).
	GoalReady
)

// done tells whether the node has reached the goal.
func (g Goal) done(s bootState, readyBefore corev1.ConditionStatus) bool {
	switch g {
	case GoalRebooted:
		return s.Rebooted && s.Ready == corev1.ConditionTrue
	case GoalNotReady:
		return s.Ready != corev1.ConditionTrue
	case GoalReady:
		return s.Ready == corev1.ConditionTrue && (readyBefore != corev1.ConditionTrue || s.Rebooted)
	}
	return false
}

// waitHelp is --wait's help.
func (g Goal) waitHelp() string {
	switch g {
	case GoalNotReady:
		return "After the request is accepted, wait until the node is NotReady (the machine is down)."
	case GoalReady:
		return "After the request is accepted, wait until the node is Ready."
	}
	return "After the request is accepted, wait until the node has booted again (its boot ID changed) and is Ready."
}

// progress names what --wait is waiting for, for its progress lines.
func (g Goal) progress() string {
	if g == GoalNotReady {
		return "go down"
	}
	return "come back"
}

// Restart is POST nodes/{name}/restart.
var Restart = Action{
	Name:  "restart",
	Kind:  "RestartOptions",
	Short: "Restart the cloud machines behind nodes",
	Params: []Param{{
		Flag:   "mode",
		Usage:  "How to reboot: soft asks the OS to reboot cleanly, hard resets the machine. Without it the cloud's own reboot (soft where the cloud has one; GCE has only a hard reset); a mode the cloud lacks is refused.",
		Values: []string{string(infraopsv1.RestartModeSoft), string(infraopsv1.RestartModeHard)},
		// No default: the server picks the cloud's own reboot and says
		// which in the answer, so a hard-only cloud is not refused.
		Default: "",
	}},
	NewOptions: func(common infraopsv1.ActionOptions, params map[string]string) runtime.Object {
		return &infraopsv1.RestartOptions{
			ActionOptions: common,
			Mode:          infraopsv1.RestartMode(params["mode"]),
		}
	},
	Until: GoalRebooted,
	Drain: DrainUncordonWhenBack,
}

// Stop is POST nodes/{name}/stop.
var Stop = Action{
	Name:  "stop",
	Kind:  "StopOptions",
	Short: "Stop the cloud machines behind nodes (they keep their disks and can be started again)",
	Params: []Param{{
		Flag:    "mode",
		Usage:   "How to stop: soft shuts the OS down cleanly, hard powers the machine off, deallocate (Azure) also releases its compute.",
		Values:  []string{string(infraopsv1.StopModeSoft), string(infraopsv1.StopModeHard), string(infraopsv1.StopModeDeallocate)},
		Default: string(infraopsv1.StopModeSoft),
	}, {
		Flag:    "stop-charging",
		Usage:   "Tencent Cloud and Alibaba ECS: stop billing the stopped instance (StoppedMode STOP_CHARGING / StopCharging); EC2 and GCE never bill a stopped machine's compute; on Azure use --mode deallocate.",
		Values:  []string{"false", "true"},
		Default: "false",
	}},
	NewOptions: func(common infraopsv1.ActionOptions, params map[string]string) runtime.Object {
		return &infraopsv1.StopOptions{
			ActionOptions: common,
			Mode:          infraopsv1.StopMode(params["mode"]),
			StopCharging:  params["stop-charging"] == "true",
		}
	},
	Until: GoalNotReady,
	Drain: DrainStayCordoned,
}

// Start is POST nodes/{name}/start.
var Start = Action{
	Name:  "start",
	Kind:  "StartOptions",
	Short: "Start the stopped cloud machines behind nodes",
	NewOptions: func(common infraopsv1.ActionOptions, _ map[string]string) runtime.Object {
		return &infraopsv1.StartOptions{ActionOptions: common}
	},
	Until: GoalReady,
}

// Actions are the actions this plugin knows the options of.
var Actions = []Action{Restart, Stop, Start}

// LookupAction returns the known action of that name.
func LookupAction(name string) (Action, bool) {
	i := slices.IndexFunc(Actions, func(a Action) bool { return a.Name == name })
	if i < 0 {
		return Action{}, false
	}
	return Actions[i], true
}

// discoveredAction is an action the server serves and this plugin has no
// entry for: its body is the common options under the kind discovery names.
func discoveredAction(name, kind string) Action {
	if kind == "" {
		kind = strings.ToUpper(name[:1]) + name[1:] + "Options"
	}
	return Action{Name: name, Kind: kind, Short: fmt.Sprintf("Ask the server to %s the cloud machines behind nodes", name)}
}

// commonOptions is the body of an action without a NewOptions: the same
// Go fields every options kind embeds, so the wire form cannot drift.
type commonOptions struct {
	metav1.TypeMeta          `json:",inline"`
	infraopsv1.ActionOptions `json:",inline"`
}

func (c *commonOptions) DeepCopyObject() runtime.Object {
	out := &commonOptions{TypeMeta: c.TypeMeta}
	c.ActionOptions.DeepCopyInto(&out.ActionOptions)
	return out
}

// body builds the request body of the action, with its apiVersion and kind
// set: the server refuses a body of another kind, which guards against
// posting one action's options to another.
func (a Action) body(common infraopsv1.ActionOptions, params map[string]string) runtime.Object {
	var obj runtime.Object
	if a.NewOptions != nil {
		obj = a.NewOptions(common, params)
	} else {
		obj = &commonOptions{ActionOptions: common}
	}
	obj.GetObjectKind().SetGroupVersionKind(infraopsv1.SchemeGroupVersion.WithKind(a.Kind))
	return obj
}

// defaultParam is the value of a Param when its flag is not given.
func (a Action) defaultParam(flag string) string {
	for _, p := range a.Params {
		if p.Flag == flag {
			return p.Default
		}
	}
	return ""
}

// MultiActionName is the binary name, after "kubectl-", of the form that
// takes the action as its first argument.
const MultiActionName = "cloudnode"

// Invocation is what the binary's own name asks for.
type Invocation struct {
	// Action is the action the binary is bound to; empty for cloudnode.
	Action string
	// CommandName is how the user types it after "kubectl ", for help and
	// messages: "restart", "cloudnode-restart", "cloudnode".
	CommandName string
}

// InvocationFor reads the binary's name the way kubectl finds plugins: the
// executable is kubectl-<name>, with "_" standing for "-" in <name>.
//
//	kubectl-restart            kubectl restart NODE        (action restart)
//	kubectl-cloudnode_restart  kubectl cloudnode-restart   (krew's name for it)
//	kubectl-cloudnode          kubectl cloudnode ACTION NODE
//
// Any other kubectl-<action> or kubectl-cloudnode_<action> binds <action>;
// whether the server serves it is for the server to say.
func InvocationFor(binary string) (Invocation, error) {
	base := filepath.Base(binary)
	base = strings.TrimSuffix(base, ".exe")
	name, ok := strings.CutPrefix(base, "kubectl-")
	if !ok || name == "" {
		return Invocation{}, fmt.Errorf("cannot tell the action from the binary name %q: install it as kubectl-<action> (e.g. kubectl-restart) or kubectl-%s", base, MultiActionName)
	}
	command := strings.ReplaceAll(name, "_", "-")
	if command == MultiActionName {
		return Invocation{CommandName: command}, nil
	}
	action := command
	if rest, ok := strings.CutPrefix(command, MultiActionName+"-"); ok {
		action = rest
	}
	if !validActionName(action) {
		return Invocation{}, fmt.Errorf("cannot tell the action from the binary name %q: %q is not an action name", base, action)
	}
	return Invocation{Action: action, CommandName: command}, nil
}

// validActionName accepts what can be a path segment of a subresource
// name: lower-case letters, digits and dashes, starting with a letter.
func validActionName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}
