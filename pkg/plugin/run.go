package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
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
	// kube is the user's clientset, for --drain.
	kube kubernetes.Interface
	now  func() time.Time
	rep  *reporter
	// evictRetryDelay is the pause between refused evictions.
	evictRetryDelay time.Duration
}

// Run acts on every node of the options and prints the outcome. Failures
// on single nodes are printed as they happen; the error returned is then
// errReported.
func (r *runner) Run(ctx context.Context) error {
	defer r.rep.done()
	if r.Chaos.Random > 0 {
		return r.runChaos(ctx)
	}
	targets, err := r.targets(ctx)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		fmt.Fprintln(r.ErrOut, "No resources found")
		return nil
	}
	if len(targets) > 1 && r.dryRun == DryRunNone && !r.Yes {
		ok, err := r.confirm(ctx, fmt.Sprintf("About to %s %d nodes:\n", r.Action.Name, len(targets)), targets)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("aborted: no node was asked to %s", r.Action.Name)
		}
	}
	if err := r.preflight(ctx); err != nil {
		return err
	}
	outcomes := r.runAll(ctx, targets, 0)
	return r.finish(outcomes, len(targets) > 1)
}

// finish prints the objects and the summary of the outcomes.
func (r *runner) finish(outcomes []outcome, summarise bool) error {
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
	events := r.Output == OutputJSON && r.streaming()
	if (r.Output == OutputJSON || r.Output == OutputYAML) && !events && len(objs) > 0 {
		if err := printObjects(r.Out, r.Output, objs); err != nil {
			return err
		}
	}
	done := len(outcomes) - failed - skipped
	r.rep.event(Event{Type: EventSummary, Done: intp(done), Failed: intp(failed), Skipped: intp(skipped)})
	if summarise {
		if r.rollout() {
			r.rep.errLine(fmt.Sprintf("%d done, %d failed, %d skipped", done, failed, skipped))
		} else {
			r.rep.errLine(summary(len(outcomes), failed, skipped))
		}
	}
	if failed > 0 || skipped > 0 {
		return errReported
	}
	return nil
}

// runChaos is --random: rounds of nodes picked from the selector.
func (r *runner) runChaos(ctx context.Context) error {
	seed := r.Chaos.Seed
	if !r.Chaos.seedSet {
		seed = drawSeed()
	}
	p := newPicker(seed)
	var all []outcome
	next := time.Now()
	for round := 1; round <= r.Chaos.Count; round++ {
		if round > 1 {
			next = next.Add(r.Chaos.Interval)
			r.rep.setStatus("", fmt.Sprintf("Next round (%d of %d) at %s", round, r.Chaos.Count, next.Format(time.TimeOnly)))
			timer := time.NewTimer(time.Until(next))
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				r.rep.clearStatus("")
				r.rep.errLine(fmt.Sprintf("Interrupted before round %d of %d", round, r.Chaos.Count))
				return r.finish(all, true)
			}
			r.rep.clearStatus("")
		}
		candidates, err := r.targets(ctx)
		if err != nil {
			return err
		}
		picked, err := p.pick(candidates, r.Chaos.Random, r.Selector)
		if err != nil {
			if round == 1 {
				return err
			}
			r.rep.errLine(FormatError(err))
			all = append(all, outcome{attempted: true, err: err})
			break
		}
		names := targetNames(picked)
		r.rep.event(Event{Type: EventPicked, Round: round, Nodes: names, Seed: &seed})
		head := fmt.Sprintf("Round %d of %d: picked %d of %d nodes matching %q at random (--seed %d): %s",
			round, r.Chaos.Count, len(picked), len(candidates), r.Selector, seed, strings.Join(names, ", "))
		if round == 1 && r.dryRun == DryRunNone && !r.Yes {
			prompt := fmt.Sprintf("About to %s %d nodes picked at random (--seed %d) from the %d matching %q", r.Action.Name, len(picked), seed, len(candidates), r.Selector)
			if r.Chaos.Count > 1 {
				prompt += fmt.Sprintf(", then %d more rounds every %s, each picking anew", r.Chaos.Count-1, r.Chaos.Interval)
			}
			ok, err := r.confirm(ctx, prompt+":\n", picked)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("aborted: no node was asked to %s", r.Action.Name)
			}
			if err := r.preflight(ctx); err != nil {
				return err
			}
		} else {
			if round == 1 {
				if err := r.preflight(ctx); err != nil {
					return err
				}
			}
			r.rep.errLine(head)
		}
		outcomes := r.runAll(ctx, picked, round)
		all = append(all, outcomes...)
		if ctx.Err() != nil || (!r.ContinueOnError && slices.ContainsFunc(outcomes, func(o outcome) bool { return o.err != nil || !o.attempted })) {
			break
		}
	}
	return r.finish(all, true)
}

// preflight checks, before the first node is touched, the permissions a
// drain needs.
func (r *runner) preflight(ctx context.Context) error {
	if !r.Drain.Enabled || r.dryRun == DryRunClient {
		return nil
	}
	return checkAccess(ctx, r.kube, drainRules(r.Action.Name))
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
func (r *runner) confirm(ctx context.Context, head string, targets []target) (bool, error) {
	var b strings.Builder
	b.WriteString(head)
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

// runAll handles at most MaxInFlight targets at once, in order. In a
// rollout (--wait, --drain), a failure stops it unless --continue-on-error:
// the nodes not started yet are left alone rather than taken down while
// one is not back.
func (r *runner) runAll(ctx context.Context, targets []target, round int) []outcome {
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
			outcomes[i] = r.one(ctx, t, round)
			if err := outcomes[i].err; err != nil {
				r.rep.errLine(FormatError(err))
				r.rep.event(Event{Type: EventFailed, Node: t.Name, Round: round, Message: FormatError(err)})
				if r.rollout() && !r.ContinueOnError {
					halt.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if r.rollout() && len(targets) > 1 {
		for i, oc := range outcomes {
			if !oc.attempted {
				r.rep.errLine(fmt.Sprintf("%s skipped: the rollout stopped", resourceName(targets[i].Name)))
			}
		}
	}
	return outcomes
}

// one acts on one node: with --drain, the cordon and the evictions first;
// the request and its output line; with --wait, the wait for the machine
// to be back; then the uncordon.
func (r *runner) one(ctx context.Context, t target, round int) outcome {
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
			if r.Drain.Enabled {
				r.rep.outLine(fmt.Sprintf("%s would be cordoned and drained first (dry run)", resourceName(t.Name)))
			}
			r.rep.outLine(line)
		} else if r.Output == OutputName {
			r.rep.outLine(resourceName(t.Name))
		}
		return oc
	}

	var before *corev1.Node
	if r.Wait || r.Drain.Enabled {
		// Read right before the request, not when the run started: in a
		// rollout the node may have rebooted on its own meanwhile.
		n, err := r.nodes.Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			oc.err = err
			return oc
		}
		if t.UID != "" && n.UID != t.UID {
			oc.err = fmt.Errorf("%s: %w (recreated: UID %s, was %s)", resourceName(t.Name), errNodeGone, n.UID, t.UID)
			return oc
		}
		before = n
		t.UID = n.UID
	}

	var d *drainer
	cordoned := false
	if r.Drain.Enabled {
		d = &drainer{kube: r.kube, opts: r.Drain, serverDryRun: r.dryRun == DryRunServer, retryDelay: r.evictRetryDelay, rep: r.rep, quiet: r.Output != ""}
		// The server is asked first, changing nothing: a node the
		// action would be refused on (no machine, forbidden, a policy
		// that will not allow it before the timeout) is not drained
		// for nothing.
		if r.dryRun == DryRunNone {
			common := r.commonOptions(t.UID)
			common.DryRun = []string{infraopsv1.DryRunAll}
			if _, err := r.act(ctx, t, r.Action.body(common, params), round); err != nil {
				oc.err = fmt.Errorf("%s was not drained: the server refuses the %s: %w", resourceName(t.Name), r.Action.Name, err)
				return oc
			}
		}
		var err error
		if cordoned, err = d.cordon(ctx, before); err != nil {
			oc.err = err
			return oc
		}
		if cordoned {
			r.say(t.Name, round, EventCordoned, fmt.Sprintf("%s cordoned%s", resourceName(t.Name), r.dryRunSuffix()))
		}
		if err := d.drain(ctx, t.Name); err != nil {
			if ctx.Err() != nil || !r.Drain.ForceUndrained || r.dryRun != DryRunNone {
				r.restore(ctx, d, t.Name, round, cordoned, fmt.Sprintf("nothing was asked to %s", r.Action.Name))
				oc.err = err
				return oc
			}
			r.rep.errLine(fmt.Sprintf("Warning: %s; acting on it anyway (--force-undrained)", err))
		} else {
			r.say(t.Name, round, EventDrained, fmt.Sprintf("%s drained%s", resourceName(t.Name), r.dryRunSuffix()))
		}
	}

	answer, err := r.act(ctx, t, r.Action.body(r.commonOptions(t.UID), params), round)
	if err != nil {
		oc.err = err
		if d != nil {
			// Interrupted while the request was in flight, the server may
			// have taken it: the node stays cordoned.
			if ctx.Err() != nil && !errors.Is(err, errRetryStopped) {
				r.leftCordoned(t.Name, round, cordoned, "the request was interrupted in flight, so whether the server took it is unknown")
			} else {
				r.restore(ctx, d, t.Name, round, cordoned, fmt.Sprintf("the %s was refused", r.Action.Name))
			}
		}
		return oc
	}
	oc.answer = answer
	r.rep.event(Event{Type: EventRequested, Node: t.Name, Round: round, NodeAction: answer})
	switch r.Output {
	case "":
		r.rep.outLine(acceptedLine(answer))
	case OutputName:
		r.rep.outLine(resourceName(t.Name))
	}
	if r.dryRun == DryRunServer {
		if d != nil {
			r.restore(ctx, d, t.Name, round, cordoned, "")
		}
		return oc
	}
	if r.Wait {
		back, err := r.waitBack(ctx, t, before, answer, round)
		if err != nil {
			oc.err = err
			if d != nil {
				r.leftCordoned(t.Name, round, cordoned, "it is not known to be back")
			}
			return oc
		}
		var line string
		switch r.Action.Until {
		case GoalNotReady:
			line = fmt.Sprintf("%s is down: Ready=%s", resourceName(t.Name), stateOf(back, "").Ready)
		case GoalReady:
			line = fmt.Sprintf("%s is up: boot ID %s, Ready", resourceName(t.Name), back.Status.NodeInfo.BootID)
		default:
			line = fmt.Sprintf("%s is back: new boot ID %s, Ready", resourceName(t.Name), back.Status.NodeInfo.BootID)
		}
		r.rep.event(Event{Type: EventBack, Node: t.Name, Round: round, Message: line})
		if r.Output == "" {
			r.rep.outLine(line)
		}
	}
	if d != nil {
		switch {
		case drainPolicyOf(r.Action) == DrainStayCordoned:
			r.leftCordoned(t.Name, round, cordoned, fmt.Sprintf("the machine is down after the %s; uncordon it once it is started again (kubectl uncordon %s)", r.Action.Name, t.Name))
		case r.Drain.KeepCordoned:
			r.leftCordoned(t.Name, round, cordoned, "--keep-cordoned")
		default:
			r.restore(ctx, d, t.Name, round, cordoned, "")
		}
	}
	return oc
}

// waitBack is --wait for one node.
func (r *runner) waitBack(ctx context.Context, t target, before *corev1.Node, answer *infraopsv1.NodeAction, round int) (*corev1.Node, error) {
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
			r.rep.setStatus(t.Name, fmt.Sprintf("Waiting for %s to %s: %s (%s elapsed)", resourceName(t.Name), r.Action.Until.progress(), s, r.now().Sub(start).Round(time.Second)))
			r.rep.event(Event{Type: EventWaiting, Node: t.Name, Round: round, Message: s.String()})
		},
	}
	defer r.rep.clearStatus(t.Name)
	// The server's status.lastAction says when the action is done, on
	// the same watch as the node's state, once it holds this answer's
	// record; an older server's view has none, and the core Node is
	// watched as before.
	if r.hasRecord(ctx, t.Name, answer) {
		w.View, w.Answer = viewNodes{c: r.group}, answer
	}
	return w.wait(ctx)
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

// restore uncordons a node this run cordoned, unless --keep-cordoned,
// on a context of its own: after Ctrl-C, ctx is already cancelled.
func (r *runner) restore(ctx context.Context, d *drainer, node string, round int, cordoned bool, why string) {
	if !cordoned {
		return
	}
	if r.Drain.KeepCordoned {
		r.leftCordoned(node, round, cordoned, "--keep-cordoned")
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	if err := d.uncordon(uctx, node); err != nil {
		r.rep.errLine(FormatError(err))
		r.leftCordoned(node, round, cordoned, "uncordoning it failed")
		return
	}
	line := fmt.Sprintf("%s uncordoned%s", resourceName(node), r.dryRunSuffix())
	if why != "" {
		line += ": " + why
	}
	r.say(node, round, EventUncordoned, line)
}

// leftCordoned says a node this run cordoned stays so, and why.
func (r *runner) leftCordoned(node string, round int, cordoned bool, why string) {
	if !cordoned {
		return
	}
	r.rep.event(Event{Type: EventLeftCordoned, Node: node, Round: round, Message: why})
	r.rep.errLine(fmt.Sprintf("%s left cordoned: %s", resourceName(node), why))
}

// say is a line of the default output and its event.
func (r *runner) say(node string, round int, typ, line string) {
	r.rep.event(Event{Type: typ, Node: node, Round: round, Message: line})
	if r.Output == "" {
		r.rep.outLine(line)
	}
}

func (r *runner) dryRunSuffix() string {
	if r.dryRun == DryRunServer {
		return " (server dry run)"
	}
	return ""
}
