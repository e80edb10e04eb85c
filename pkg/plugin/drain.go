package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	policyv1client "k8s.io/client-go/kubernetes/typed/policy/v1"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/drain"
)

// evictRetryDelay is the pause after a refused eviction (a
// PodDisruptionBudget's 429) before the next try, as kubectl drain's.
const evictRetryDelay = 5 * time.Second

// restoreTimeout bounds the uncordon after a failed or interrupted drain:
// it runs after Ctrl-C, on a context of its own.
const restoreTimeout = 30 * time.Second

// drainer drains one node with kubectl's own drain library, so evictions,
// PodDisruptionBudgets, DaemonSet pods, emptyDir and bare pods are
// handled exactly as kubectl drain handles them.
type drainer struct {
	kube kubernetes.Interface
	opts DrainOptions
	// serverDryRun cordons and evicts with dryRun=All.
	serverDryRun bool
	retryDelay   time.Duration
	rep          *reporter
	// quiet drops the lines of the default output (-o given).
	quiet bool
}

func (d *drainer) line(s string) {
	if !d.quiet {
		d.rep.outLine(s)
	}
}

// cordon marks the node unschedulable and says whether it changed it: a
// node someone else had cordoned is not uncordoned at the end.
func (d *drainer) cordon(ctx context.Context, n *corev1.Node) (bool, error) {
	h := drain.NewCordonHelper(n.DeepCopy())
	if !h.UpdateIfRequired(true) {
		return false, nil
	}
	err, patchErr := h.PatchOrReplaceWithContext(ctx, d.kube, d.serverDryRun)
	if err != nil {
		if patchErr != nil {
			err = errors.Join(err, patchErr)
		}
		return false, fmt.Errorf("cordoning %s: %w", resourceName(n.Name), err)
	}
	return true, nil
}

// uncordon reads the node again (it changed while it rebooted) and marks
// it schedulable.
func (d *drainer) uncordon(ctx context.Context, name string) error {
	n, err := d.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("uncordoning %s: %w", resourceName(name), err)
	}
	h := drain.NewCordonHelper(n)
	if !h.UpdateIfRequired(false) {
		return nil
	}
	if err, _ := h.PatchOrReplaceWithContext(ctx, d.kube, d.serverDryRun); err != nil {
		return fmt.Errorf("uncordoning %s: %w", resourceName(name), err)
	}
	return nil
}

// drain evicts the node's pods, within the drain timeout. A drain that
// does not finish names what held it: the pods left and, for each, the
// PodDisruptionBudget that refused its eviction.
func (d *drainer) drain(ctx context.Context, node string) error {
	// The library checks its own timeout only between tries, one retry
	// delay apart; this one ends the drain on time, and an interrupt at
	// once: every eviction after it fails with the cancelled context, so
	// no pod is evicted once the node is being uncordoned.
	dctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	rec := &evictionRecorder{pods: map[string]*evictionState{}}
	h := &drain.Helper{
		Ctx:                  dctx,
		Client:               recordingClient{Interface: d.kube, rec: rec},
		Force:                d.opts.Force,
		GracePeriodSeconds:   d.opts.GracePeriod,
		IgnoreAllDaemonSets:  true,
		Timeout:              d.opts.Timeout,
		DeleteEmptyDirData:   d.opts.DeleteEmptyDirData,
		PodSelector:          d.opts.PodSelector,
		EvictErrorRetryDelay: d.retryDelay,
		// The library's own lines repeat at every retry; the
		// callbacks below say the same once.
		Out:    io.Discard,
		ErrOut: io.Discard,
		OnPodDeletionOrEvictionStarted: func(pod *corev1.Pod, _ bool) {
			if rec.start(podKey(pod)) {
				d.line(fmt.Sprintf("evicting pod %s", podKey(pod)))
				d.rep.event(Event{Type: EventEvicting, Node: node, Pod: podKey(pod)})
			}
		},
		OnPodDeletionOrEvictionFinished: func(pod *corev1.Pod, _ bool, err error) {
			if err != nil || !rec.finish(podKey(pod)) {
				return
			}
			d.line(fmt.Sprintf("pod %s evicted", podKey(pod)))
			d.rep.event(Event{Type: EventEvicted, Node: node, Pod: podKey(pod)})
		},
	}
	if d.serverDryRun {
		h.DryRunStrategy = cmdutil.DryRunServer
	}
	list, errs := h.GetPodsForDeletion(node)
	if len(errs) > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("drain of %s interrupted: %w", resourceName(node), ctx.Err())
		}
		return fmt.Errorf("draining %s: %w", resourceName(node), errors.Join(errs...))
	}
	if w := list.Warnings(); w != "" {
		d.rep.errLine("Warning: " + w)
	}
	pods := list.Pods()
	if d.serverDryRun {
		for _, p := range pods {
			d.line(fmt.Sprintf("evicting pod %s/%s (server dry run)", p.Namespace, p.Name))
		}
	}
	// Eviction blocked by a PodDisruptionBudget is retried until the
	// drain timeout; the status line says by which one.
	rec.onRefusal = func(pod string, err error) {
		d.rep.setStatus(node, fmt.Sprintf("Draining %s: waiting to evict pod %s: %s", resourceName(node), pod, refusalText(err)))
	}
	errc := make(chan error, 1)
	go func() { errc <- h.DeleteOrEvictPods(pods) }()
	var err error
	select {
	case err = <-errc:
	case <-dctx.Done():
		err = dctx.Err()
	}
	rec.close()
	d.rep.clearStatus(node)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("drain of %s interrupted: %w", resourceName(node), ctx.Err())
	}
	if held := rec.held(); len(held) > 0 {
		return fmt.Errorf("drain of %s did not finish within %s (--drain-timeout): %s", resourceName(node), d.opts.Timeout, strings.Join(held, "; "))
	}
	return fmt.Errorf("draining %s: %w", resourceName(node), err)
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// pdbName finds the budget in the eviction API's DisruptionBudget cause
// ("The disruption budget web needs 2 healthy pods and has 2 currently").
var pdbName = regexp.MustCompile(`^The disruption budget (\S+) `)

// refusalText says why an eviction was refused, naming the
// PodDisruptionBudget when the API does.
func refusalText(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if d := status.Status().Details; d != nil {
			for _, c := range d.Causes {
				if c.Type == policyv1.DisruptionBudgetCause {
					if m := pdbName.FindStringSubmatch(c.Message); m != nil {
						return fmt.Sprintf("PodDisruptionBudget %q allows no disruption now (%s)", m[1], c.Message)
					}
					return c.Message
				}
			}
		}
	}
	return err.Error()
}

// evictionRecorder keeps, for each pod of a drain, whether its eviction
// started, was accepted and finished, and the last refusal.
type evictionRecorder struct {
	mu        sync.Mutex
	pods      map[string]*evictionState
	onRefusal func(pod string, err error)
	// closed: the drain is over, what the library still does is not
	// reported.
	closed bool
}

func (r *evictionRecorder) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}

type evictionState struct {
	accepted, finished bool
	refusal            error
}

func (r *evictionRecorder) state(pod string) *evictionState {
	s, ok := r.pods[pod]
	if !ok {
		s = &evictionState{}
		r.pods[pod] = s
	}
	return s
}

// start says whether this is the pod's first eviction attempt.
func (r *evictionRecorder) start(pod string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, seen := r.pods[pod]
	r.state(pod)
	return !seen && !r.closed
}

// finish says whether the pod's end is to be reported.
func (r *evictionRecorder) finish(pod string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.state(pod).finished = true
	return true
}

func (r *evictionRecorder) record(pod string, err error) {
	r.mu.Lock()
	s := r.state(pod)
	changed := false
	if err == nil {
		s.accepted, s.refusal = true, nil
	} else if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		changed = s.refusal == nil || s.refusal.Error() != err.Error()
		s.refusal = err
	}
	notify := r.onRefusal
	if r.closed {
		notify = nil
	}
	r.mu.Unlock()
	if changed && notify != nil && apierrors.IsTooManyRequests(err) {
		notify(pod, err)
	}
}

// held describes the pods the drain did not get off the node.
func (r *evictionRecorder) held() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for pod, s := range r.pods {
		switch {
		case s.finished:
		case s.accepted:
			out = append(out, fmt.Sprintf("pod %s was evicted but has not terminated yet", pod))
		case s.refusal != nil:
			out = append(out, fmt.Sprintf("pod %s: %s", pod, refusalText(s.refusal)))
		default:
			out = append(out, fmt.Sprintf("pod %s was not evicted", pod))
		}
	}
	slices.Sort(out)
	return out
}

// recordingClient is the clientset the drain library uses, with each
// eviction's answer recorded: the library keeps them to itself.
type recordingClient struct {
	kubernetes.Interface
	rec *evictionRecorder
}

func (c recordingClient) PolicyV1() policyv1client.PolicyV1Interface {
	return recordingPolicy{PolicyV1Interface: c.Interface.PolicyV1(), rec: c.rec}
}

type recordingPolicy struct {
	policyv1client.PolicyV1Interface
	rec *evictionRecorder
}

func (p recordingPolicy) Evictions(namespace string) policyv1client.EvictionInterface {
	return recordingEvictions{EvictionInterface: p.PolicyV1Interface.Evictions(namespace), namespace: namespace, rec: p.rec}
}

type recordingEvictions struct {
	policyv1client.EvictionInterface
	namespace string
	rec       *evictionRecorder
}

func (e recordingEvictions) Evict(ctx context.Context, eviction *policyv1.Eviction) error {
	err := e.EvictionInterface.Evict(ctx, eviction)
	e.rec.record(e.namespace+"/"+eviction.Name, err)
	return err
}
