package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// target is a node to act on. UID, when set, is sent as the precondition.
type target struct {
	Name string
	UID  types.UID
}

// outcome is what happened to one target.
type outcome struct {
	attempted bool
	// answer is the server's NodeAction; request is the body a client dry
	// run would have sent.
	answer  *infraopsv1.NodeAction
	request runtime.Object
	err     error
}

// runner does one run of Options against a cluster.
type runner struct {
	*Options
	group *groupClient
	// nodes reads and watches core Nodes, for --wait.
	nodes corev1client.NodeInterface
	now   func() time.Time

	mu sync.Mutex // serialises writes to Out and ErrOut
}

// Run acts on every node of the options and prints the outcome. Failures
// on single nodes are printed as they happen; the error returned is then
// errReported.
func (r *runner) Run(ctx context.Context) error {
	targets, err := r.targets(ctx)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		fmt.Fprintln(r.ErrOut, "No resources found")
		return nil
	}
	if len(targets) > 1 && r.dryRun == DryRunNone && !r.Yes {
		ok, err := r.confirm(ctx, targets)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("aborted: no node was asked to %s", r.Action.Name)
		}
	}

	outcomes := r.runAll(ctx, targets)

	var objs []runtime.Object
	failed, skipped := 0, 0
	for _, oc := range outcomes {
		switch {
		case !oc.attempted:
			skipped++
		case oc.err != nil:
			failed++
		case oc.answer != nil:
			objs = append(objs, oc.answer)
		case oc.request != nil:
			objs = append(objs, oc.request)
		}
	}
	if (r.Output == OutputJSON || r.Output == OutputYAML) && len(objs) > 0 {
		if err := printObjects(r.Out, r.Output, objs); err != nil {
			return err
		}
	}
	if len(targets) > 1 {
		fmt.Fprintln(r.ErrOut, summary(len(targets), failed, skipped))
	}
	if failed > 0 || skipped > 0 {
		return errReported
	}
	return nil
}

// targets are the named nodes, or the nodes the selector matches; those
// carry their UID, so a node recreated under the same name since it was
// listed is not hit.
func (r *runner) targets(ctx context.Context) ([]target, error) {
	if r.Selector == "" {
		out := make([]target, len(r.Names))
		for i, n := range r.Names {
			out[i] = target{Name: n}
		}
		return out, nil
	}
	list, err := r.group.list(ctx, r.Selector)
	if err != nil {
		return nil, err
	}
	out := make([]target, len(list.Items))
	for i, n := range list.Items {
		out[i] = target{Name: n.Name, UID: n.UID}
	}
	return out, nil
}

// confirm asks on ErrOut and reads the answer from In; anything but yes,
// including no answer at all, is a no. The read gives way to ctx, so an
// interrupt at the prompt ends the command.
func (r *runner) confirm(ctx context.Context, targets []target) (bool, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "About to %s %d nodes:\n", r.Action.Name, len(targets))
	for _, t := range targets {
		fmt.Fprintf(&b, "  %s\n", t.Name)
	}
	b.WriteString("Continue? [y/N]: ")
	if _, err := io.WriteString(r.ErrOut, b.String()); err != nil {
		return false, err
	}
	if r.In == nil {
		return false, nil
	}
	type answer struct {
		line string
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		line, err := bufio.NewReader(r.In).ReadString('\n')
		answers <- answer{line, err}
	}()
	var a answer
	select {
	case a = <-answers:
	case <-ctx.Done():
		fmt.Fprintln(r.ErrOut)
		return false, nil
	}
	if a.err != nil && !errors.Is(a.err, io.EOF) {
		return false, a.err
	}
	switch strings.ToLower(strings.TrimSpace(a.line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// runAll handles at most MaxInFlight targets at once, in order. With
// --wait, a failure stops the rollout: the nodes not started yet are left
// alone rather than taken down while one is not back.
func (r *runner) runAll(ctx context.Context, targets []target) []outcome {
	outcomes := make([]outcome, len(targets))
	slots := make(chan struct{}, r.MaxInFlight)
	var (
		wg   sync.WaitGroup
		halt atomic.Bool
	)
	for i, t := range targets {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || halt.Load() {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			outcomes[i] = r.one(ctx, t)
			if outcomes[i].err != nil {
				r.printErr(outcomes[i].err)
				if r.Wait {
					halt.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return outcomes
}

// one acts on one node: the request, its output line and, with --wait,
// the wait for the machine to be back.
func (r *runner) one(ctx context.Context, t target) outcome {
	oc := outcome{attempted: true}
	params := r.paramValues()
	if r.dryRun == DryRunClient {
		oc.request = r.Action.body(r.commonOptions(t.UID), params)
		if r.Output == "" {
			line, err := clientDryRunLine(r.Action.Name, t.Name, oc.request)
			if err != nil {
				oc.err = err
				return oc
			}
			r.printOut(line)
		} else if r.Output == OutputName {
			r.printOut(resourceName(t.Name))
		}
		return oc
	}

	var before *corev1.Node
	if r.Wait {
		// Read right before the request, not when the run started: in a
		// rollout the node may have rebooted on its own meanwhile.
		n, err := r.nodes.Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			oc.err = err
			return oc
		}
		before = n
		if t.UID == "" {
			t.UID = n.UID
		}
	}

	answer, err := r.group.act(ctx, r.Action.Name, t.Name, r.Action.body(r.commonOptions(t.UID), params))
	if err != nil {
		oc.err = err
		return oc
	}
	oc.answer = answer
	switch r.Output {
	case "":
		r.printOut(acceptedLine(answer))
	case OutputName:
		r.printOut(resourceName(t.Name))
	}
	if !r.Wait {
		return oc
	}

	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	start := r.now()
	w := rebootWait{
		Nodes:        r.nodes,
		Name:         t.Name,
		UID:          t.UID,
		BootIDBefore: before.Status.NodeInfo.BootID,
		ReadyBefore:  stateOf(before, "").Ready,
		Goal:         r.Action.Until,
		Progress: func(s bootState) {
			r.printErrLine(fmt.Sprintf("Waiting for %s to %s: %s (%s elapsed)", resourceName(t.Name), r.Action.Until.progress(), s, r.now().Sub(start).Round(time.Second)))
		},
	}
	// The server's status.lastAction says when the action is done, on
	// the same watch as the node's state, once it holds this answer's
	// record; an older server's view has none, and the core Node is
	// watched as before.
	if r.hasRecord(ctx, t.Name, answer) {
		w.View, w.Answer = viewNodes{c: r.group}, answer
	}
	back, err := w.wait(ctx)
	if err != nil {
		oc.err = err
		return oc
	}
	if r.Output == "" {
		switch r.Action.Until {
		case GoalNotReady:
			r.printOut(fmt.Sprintf("%s is down: Ready=%s", resourceName(t.Name), stateOf(back, "").Ready))
		case GoalReady:
			r.printOut(fmt.Sprintf("%s is up: boot ID %s, Ready", resourceName(t.Name), back.Status.NodeInfo.BootID))
		default:
			r.printOut(fmt.Sprintf("%s is back: new boot ID %s, Ready", resourceName(t.Name), back.Status.NodeInfo.BootID))
		}
	}
	return oc
}

// hasRecord reports whether the view shows the answer's lastAction. The
// server writes it before answering; its cache has it a moment later, so
// a few reads are allowed. A view without the field (an older server),
// or that cannot be read, says no.
func (r *runner) hasRecord(ctx context.Context, node string, answer *infraopsv1.NodeAction) bool {
	for i := 0; i < 10; i++ {
		v, err := r.group.get(ctx, node)
		if err != nil && !apierrors.IsNotFound(err) {
			return false
		}
		// NotFound: the view's cache has not seen a new Node yet.
		if la := v.Status.LastAction; err == nil && la != nil && la.Action == answer.Action && la.CloudRequestID == answer.CloudRequestID {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

func (r *runner) printOut(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(r.Out, line)
}

func (r *runner) printErrLine(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(r.ErrOut, line)
}

func (r *runner) printErr(err error) {
	r.printErrLine(FormatError(err))
}
