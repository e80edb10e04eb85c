package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// DefaultCompletionTimeout is how long an accepted action may take to show
// on the Node (a restart's new boot ID and Ready, a stop's NotReady, a
// start's Ready) before its lastAction is TimedOut. An EC2 reboot forces
// itself after about four minutes; a node that has not come back within
// fifteen needs a person.
const DefaultCompletionTimeout = 15 * time.Minute

// The record of each node's last action is a Lease in the server's own
// namespace (the lock namespace), beside the lock Lease: the server writes
// Leases already and needs no write access to Nodes. It is a separate
// object from the lock because the lock is deleted when a refused call
// frees the node, while the record of that refusal must stay.
const (
	// HistoryLabel marks the record Leases:
	// `kubectl get leases -l infraops.michael.io/last-action`.
	HistoryLabel = infraopsv1.GroupName + "/last-action"
	// lastActionAnnotation holds the LastAction as JSON.
	lastActionAnnotation = infraopsv1.GroupName + "/last-action"
	// historyNodeAnnotation names the node (the label may be hashed).
	historyNodeAnnotation = infraopsv1.GroupName + "/node-name"
)

func historyLeaseName(node string) string {
	name := "node-last-action-" + node
	if len(name) <= validation.DNS1123SubdomainMaxLength {
		return name
	}
	sum := sha256.Sum256([]byte(node))
	return "node-last-action-" + hex.EncodeToString(sum[:16])
}

// NodeState is what a phase is judged from: the Node's boot ID and the
// status of its Ready condition.
type NodeState struct {
	BootID string
	Ready  string
}

// Judges of Action.Done: has the Node shown the action's result, given
// its state at the request and now?
var (
	// Rebooted: a new boot ID, and Ready again.
	Rebooted = func(at, now NodeState) bool {
		return now.BootID != "" && now.BootID != at.BootID && now.Ready == string(corev1.ConditionTrue)
	}
	// WentDown: no longer Ready (False, or Unknown once the kubelet stops
	// posting).
	WentDown = func(_, now NodeState) bool { return now.Ready != string(corev1.ConditionTrue) }
	// CameUp: Ready, after not being Ready at the request (or with a new
	// boot ID, should the kubelet's last Ready have been stale then).
	CameUp = func(at, now NodeState) bool {
		return now.Ready == string(corev1.ConditionTrue) && (at.Ready != string(corev1.ConditionTrue) || now.BootID != at.BootID)
	}
)

// History keeps each node's last action in its record Lease.
type History struct {
	Client    kubernetes.Interface
	Namespace string
}

// Write records an action just answered by the cloud, replacing the
// node's previous record: the latest action is the one to follow.
func (h *History) Write(ctx context.Context, node *corev1.Node, la *infraopsv1.LastAction) error {
	data, err := json.Marshal(la)
	if err != nil {
		return err
	}
	want := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      historyLeaseName(node.Name),
			Namespace: h.Namespace,
			Labels: map[string]string{
				HistoryLabel:                   "node",
				LockNodeLabel:                  labelSafe(node.Name),
				"app.kubernetes.io/managed-by": "k8s-cloud-node-manager",
			},
			Annotations: map[string]string{lastActionAnnotation: string(data), historyNodeAnnotation: node.Name},
			// Deleted with its Node, as the lock Lease is.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
		},
	}
	leases := h.Client.CoordinationV1().Leases(h.Namespace)
	for range acquireAttempts {
		current, err := leases.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			want.ResourceVersion = ""
			if _, err = leases.Create(ctx, want, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		want.ResourceVersion = current.ResourceVersion
		if _, err = leases.Update(ctx, want, metav1.UpdateOptions{}); !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return fmt.Errorf("the record Lease of node %s kept changing", node.Name)
}

// advance moves a record on from Requested, only if the Lease is still the
// one judged (resourceVersion precondition): of replicas judging the same
// record, one writes, and a newer action is never overwritten.
func (h *History) advance(ctx context.Context, lease *coordinationv1.Lease, la *infraopsv1.LastAction) error {
	data, err := json.Marshal(la)
	if err != nil {
		return err
	}
	next := lease.DeepCopy()
	next.Annotations[lastActionAnnotation] = string(data)
	_, err = h.Client.CoordinationV1().Leases(h.Namespace).Update(ctx, next, metav1.UpdateOptions{})
	return err
}

// recordOf reads a record Lease: its node and last action.
func recordOf(obj interface{}) (string, *infraopsv1.LastAction, *coordinationv1.Lease, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	lease, ok := obj.(*coordinationv1.Lease)
	if !ok || lease.Annotations == nil {
		return "", nil, nil, false
	}
	node := lease.Annotations[historyNodeAnnotation]
	var la infraopsv1.LastAction
	if node == "" || json.Unmarshal([]byte(lease.Annotations[lastActionAnnotation]), &la) != nil || la.Action == "" {
		return "", nil, nil, false
	}
	return node, &la, lease, true
}

// Follower follows every record from Requested to its end on every
// replica: it feeds the records to the view's Cache (status.lastAction)
// and judges each Requested one against its Node as the Node changes,
// writing Completed or TimedOut. Replicas judge the same inputs the same
// way, and the write's resourceVersion precondition lets one of them
// write it.
type Follower struct {
	History *History
	Cache   *Cache
	// Actions give each action's Done judge.
	Actions []Action
	// Timeout is the completion timeout (DefaultCompletionTimeout when 0).
	Timeout time.Duration
	Clock   clock.WithTicker

	informer cache.SharedIndexInformer
	queue    workqueue.TypedDelayingInterface[string]
	byNode   cache.Indexer
}

const recordNodeIndex = "node"

// NewFollower wires the follower to a Lease informer of the history
// namespace (filtered to HistoryLabel) and to the cache's Node changes.
func NewFollower(f *Follower, informer cache.SharedIndexInformer) (*Follower, error) {
	if f.Timeout <= 0 {
		f.Timeout = DefaultCompletionTimeout
	}
	if f.Clock == nil {
		f.Clock = clock.RealClock{}
	}
	f.informer = informer
	f.queue = workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: "node-last-action", Clock: f.Clock})
	if err := informer.AddIndexers(cache.Indexers{recordNodeIndex: func(obj interface{}) ([]string, error) {
		if node, _, _, ok := recordOf(obj); ok {
			return []string{node}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	f.byNode = informer.GetIndexer()
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { f.seen(obj, false) },
		UpdateFunc: func(_, obj interface{}) { f.seen(obj, false) },
		DeleteFunc: func(obj interface{}) { f.seen(obj, true) },
	})
	if err != nil {
		return nil, err
	}
	f.Cache.OnNodeChange(f.queue.Add)
	return f, nil
}

func (f *Follower) seen(obj interface{}, deleted bool) {
	node, la, lease, ok := recordOf(obj)
	if !ok {
		return
	}
	if deleted {
		la = nil
	}
	f.Cache.SetLastAction(node, la, lease.ResourceVersion)
	f.queue.Add(node)
}

// HasSynced reports whether the records have been read.
func (f *Follower) HasSynced() bool { return f.informer.HasSynced() }

// Run judges records until ctx is done. The informer is run by its
// factory.
func (f *Follower) Run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		f.queue.ShutDown()
	}()
	for {
		node, quit := f.queue.Get()
		if quit {
			return
		}
		f.judge(ctx, node)
		f.queue.Done(node)
	}
}

func (f *Follower) judge(ctx context.Context, node string) {
	objs, err := f.byNode.ByIndex(recordNodeIndex, node)
	if err != nil || len(objs) == 0 {
		return
	}
	_, la, lease, ok := recordOf(objs[0])
	if !ok || la.Phase != infraopsv1.ActionRequested {
		return
	}
	v, ok := f.Cache.get(node)
	if !ok {
		return // the Node is gone; its record goes with it
	}
	at := NodeState{BootID: la.BootIDAtRequest, Ready: la.ReadyAtRequest}
	now := NodeState{BootID: v.Status.BootID, Ready: v.Status.Ready}
	var done func(at, now NodeState) bool
	for _, a := range f.Actions {
		if a.Name == la.Action {
			done = a.Done
		}
	}
	t := f.Clock.Now()
	next := la.DeepCopy()
	switch {
	case done != nil && done(at, now):
		next.Phase = infraopsv1.ActionCompleted
	case t.Sub(la.RequestedAt.Time) >= f.Timeout:
		next.Phase = infraopsv1.ActionTimedOut
		next.Message = fmt.Sprintf("the node did not show the %s's result within %s", la.Action, f.Timeout)
	default:
		f.queue.AddAfter(node, la.RequestedAt.Time.Add(f.Timeout).Sub(t))
		return
	}
	next.CompletedAt = &metav1.Time{Time: t}
	next.BootID, next.Ready = now.BootID, now.Ready
	err = f.History.advance(ctx, lease, next)
	switch {
	case err == nil, apierrors.IsConflict(err), apierrors.IsNotFound(err):
		// Written, or changed meanwhile (another replica, a newer
		// action): the informer brings the new record back here.
	default:
		klog.FromContext(ctx).Error(err, "Cannot record the end of an action", "node", node, "action", la.Action)
		f.queue.AddAfter(node, time.Second)
	}
}
