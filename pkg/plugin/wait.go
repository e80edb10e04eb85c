package plugin

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// bootState is what --wait looks at on the core Node.
type bootState struct {
	// Rebooted is true once the boot ID differs from the one before.
	Rebooted bool
	// Ready is the status of the Ready condition.
	Ready corev1.ConditionStatus
}

func (s bootState) String() string {
	boot := "boot ID unchanged"
	if s.Rebooted {
		boot = "new boot ID"
	}
	return fmt.Sprintf("%s, Ready=%s", boot, s.Ready)
}

func stateOf(n *corev1.Node, bootIDBefore string) bootState {
	s := bootState{
		Rebooted: n.Status.NodeInfo.BootID != "" && n.Status.NodeInfo.BootID != bootIDBefore,
		Ready:    corev1.ConditionUnknown,
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			s.Ready = c.Status
		}
	}
	return s
}

// rebootWait is one node being waited for.
type rebootWait struct {
	Nodes corev1client.NodeInterface
	Name  string
	// UID is the node restarted; a node of the same name with another UID
	// is a new node, not this one back.
	UID types.UID
	// BootIDBefore and ReadyBefore are status.nodeInfo.bootID and the
	// Ready condition read before the request.
	BootIDBefore string
	ReadyBefore  corev1.ConditionStatus
	// Goal is what the wait is for; GoalNone means GoalRebooted.
	Goal Goal
	// Progress receives the state each time it changes.
	Progress func(bootState)
	// View, when set, is watched instead of the core Node: the group's
	// node carries the same boot ID and Ready, and status.lastAction,
	// whose phase ends the wait when it is the record of Answer. Nodes is
	// then unused.
	View   viewSource
	Answer *infraopsv1.NodeAction
}

// viewSource lists and watches the group's nodes (viewNodes; tests fake it).
type viewSource interface {
	List(ctx context.Context, opts metav1.ListOptions) (*infraopsv1.NodeList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// errActionEnded is an action the server followed to Failed or TimedOut.
var errActionEnded = errors.New("the action did not complete")

// errNodeGone is returned when the node is deleted or replaced while
// waiting: the machine may be back, but not as this node.
var errNodeGone = errors.New("node is gone")

// wait watches the core Node until it has booted again and is Ready. Both
// are needed: Ready alone may never have turned false on a quick reboot,
// and a new boot ID comes with Ready=False until the kubelet is up. The
// watch is list-then-watch and re-lists when it expires, so no update is
// missed on a long reboot.
func (w rebootWait) wait(ctx context.Context) (*corev1.Node, error) {
	selector := fields.OneTermEqualSelector(metav1.ObjectNameField, w.Name).String()
	if w.View != nil {
		return w.waitView(ctx, selector)
	}
	// The reflector streams the initial state with a watch-list when the
	// client can; fakes say through the client that they cannot.
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			return w.Nodes.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			return w.Nodes.Watch(ctx, opts)
		},
	}, w.Nodes)
	var (
		last *bootState
		done *corev1.Node
	)
	report := func(s bootState) {
		if last == nil || *last != s {
			last = &s
			if w.Progress != nil {
				w.Progress(s)
			}
		}
	}
	// The informer hands on every event it received before its cache
	// synced, after the precondition has reported the cache's state,
	// which is their result: replaying them would send the progress back
	// (Unknown, True, Unknown for a machine already down when the wait
	// began). They end with the very object the precondition saw.
	var replayUntil runtime.Object
	precondition := func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(w.Name)
		if err != nil {
			return false, err
		}
		if !exists {
			return false, fmt.Errorf("%s: %w (deleted)", resourceName(w.Name), errNodeGone)
		}
		replayUntil = obj.(runtime.Object)
		return w.check(obj.(*corev1.Node), report, &done)
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, precondition, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			return false, fmt.Errorf("%s: %w (deleted)", resourceName(w.Name), errNodeGone)
		case watch.Error:
			return false, apierrors.FromObject(ev.Object)
		}
		if replayUntil != nil {
			if ev.Object == replayUntil {
				replayUntil = nil
			}
			return false, nil
		}
		n, ok := ev.Object.(*corev1.Node)
		if !ok || n.Name != w.Name {
			return false, nil
		}
		return w.check(n, report, &done)
	})
	if err != nil && ctx.Err() != nil {
		state := "nothing seen yet"
		if last != nil {
			state = last.String()
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("timed out waiting for %s to %s (%s)", resourceName(w.Name), w.Goal.progress(), state)
		}
		return nil, fmt.Errorf("stopped waiting for %s to %s (%s): %w", resourceName(w.Name), w.Goal.progress(), state, ctx.Err())
	}
	return done, err
}

// waitView is wait on the group's node: the same progress from its
// status.bootID and status.ready, and the end from status.lastAction when
// it is the answer's record (the server judged it), else from the goal.
func (w rebootWait) waitView(ctx context.Context, selector string) (*corev1.Node, error) {
	// The server serves watch-list; a source that cannot says so.
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			return w.View.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			return w.View.Watch(ctx, opts)
		},
	}, w.View)
	var (
		last *bootState
		done *corev1.Node
	)
	report := func(s bootState) {
		if last == nil || *last != s {
			last = &s
			if w.Progress != nil {
				w.Progress(s)
			}
		}
	}
	check := func(v *infraopsv1.Node) (bool, error) {
		if w.UID != "" && v.UID != w.UID {
			return false, fmt.Errorf("%s: %w (recreated: UID %s, was %s)", resourceName(w.Name), errNodeGone, v.UID, w.UID)
		}
		n := &corev1.Node{ObjectMeta: v.ObjectMeta}
		n.Status.NodeInfo.BootID = v.Status.BootID
		ready := corev1.ConditionStatus(v.Status.Ready)
		if ready == "" {
			ready = corev1.ConditionUnknown
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
		s := stateOf(n, w.BootIDBefore)
		report(s)
		if la := v.Status.LastAction; la != nil && w.Answer != nil && la.Action == w.Answer.Action && la.CloudRequestID == w.Answer.CloudRequestID {
			switch la.Phase {
			case infraopsv1.ActionCompleted:
				done = n
				return true, nil
			case infraopsv1.ActionFailed, infraopsv1.ActionTimedOut:
				return false, fmt.Errorf("%s: the server says the %s %s: %s: %w", resourceName(w.Name), la.Action, la.Phase, la.Message, errActionEnded)
			}
			return false, nil
		}
		goal := w.Goal
		if goal == GoalNone {
			goal = GoalRebooted
		}
		if goal.done(s, w.ReadyBefore) {
			done = n
			return true, nil
		}
		return false, nil
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &infraopsv1.Node{}, func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(w.Name)
		if err != nil {
			return false, err
		}
		if !exists {
			return false, fmt.Errorf("%s: %w (deleted)", resourceName(w.Name), errNodeGone)
		}
		return check(obj.(*infraopsv1.Node))
	}, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			return false, fmt.Errorf("%s: %w (deleted)", resourceName(w.Name), errNodeGone)
		case watch.Error:
			return false, apierrors.FromObject(ev.Object)
		}
		v, ok := ev.Object.(*infraopsv1.Node)
		if !ok || v.Name != w.Name {
			return false, nil
		}
		return check(v)
	})
	if err != nil && ctx.Err() != nil {
		state := "nothing seen yet"
		if last != nil {
			state = last.String()
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("timed out waiting for %s to %s (%s)", resourceName(w.Name), w.Goal.progress(), state)
		}
		return nil, fmt.Errorf("stopped waiting for %s to %s (%s): %w", resourceName(w.Name), w.Goal.progress(), state, ctx.Err())
	}
	return done, err
}

// check reports the node's state and, once the wait is over, keeps the
// node in done.
func (w rebootWait) check(n *corev1.Node, report func(bootState), done **corev1.Node) (bool, error) {
	if w.UID != "" && n.UID != w.UID {
		return false, fmt.Errorf("%s: %w (recreated: UID %s, was %s)", resourceName(w.Name), errNodeGone, n.UID, w.UID)
	}
	s := stateOf(n, w.BootIDBefore)
	report(s)
	goal := w.Goal
	if goal == GoalNone {
		goal = GoalRebooted
	}
	ok := goal.done(s, w.ReadyBefore)
	if ok {
		*done = n
	}
	return ok, nil
}
