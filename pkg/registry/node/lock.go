package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// LockRecord says who holds a node's lock and why; it is kept on the Lease
// so an operator can read it with kubectl.
type LockRecord struct {
	Action  string `json:"action"`
	User    string `json:"user"`
	NodeUID string `json:"nodeUID"`
}

// Lock is a held node lock.
type Lock interface {
	// Renew starts the hold again from now. The action handler renews
	// while the cloud call runs, so the lock outlives a slow call, and
	// once more when the call returns, so the cooldown counts from then.
	Renew(ctx context.Context) error
	// Release frees the lock before its hold time ends.
	Release(ctx context.Context) error
}

// Locker gives one action at a time per node. Acquire fails with a 409
// Status (with Retry-After) when the node is locked.
type Locker interface {
	Acquire(ctx context.Context, node string, rec LockRecord, hold time.Duration) (Lock, error)
	// Check answers as Acquire would (nil or the same 409) without taking
	// the lock: a dry run tells what the real request would meet.
	Check(ctx context.Context, node string) error
}

// LeaseLocker keeps each node's lock in a coordination.k8s.io Lease, so the
// lock holds across replicas and restarts of this server: two requests for
// the same node that land on different replicas still meet.
//
// Expiry is judged as client-go's leader election judges it: a Lease is
// held until LeaseDurationSeconds have passed, on this replica's own
// clock, since this replica first saw its current holder and renew time.
// The renewTime another replica wrote is never compared with the local
// clock, so a replica whose clock runs ahead cannot take a lock over early;
// a replica that sees a Lease for the first time waits a whole duration.
type LeaseLocker struct {
	Client    kubernetes.Interface
	Namespace string
	// Identity names this replica in the Lease's holderIdentity.
	Identity string
	// Clock is this replica's clock (tests replace it); nil means the
	// real one, whose readings carry the monotonic clock.
	Clock clock.PassiveClock

	mu   sync.Mutex
	seen map[string]sighting
}

// sighting is a Lease's holder and renew time, and when this replica
// first saw them.
type sighting struct {
	holder, renew string
	duration      int32
	at            time.Time
}

const lockRecordAnnotation = infraopsv1.GroupName + "/lock"

// Labels on every lock Lease: `kubectl get leases -l infraops.michael.io/lock`
// lists them, `-l infraops.michael.io/node=<node>` finds one node's.
const (
	LockLabel     = infraopsv1.GroupName + "/lock"
	LockNodeLabel = infraopsv1.GroupName + "/node"
)

// leaseName is "node-action-<node>", or a hash when that would be longer
// than an object name may be.
func leaseName(node string) string {
	name := "node-action-" + node
	if len(name) <= validation.DNS1123SubdomainMaxLength {
		return name
	}
	sum := sha256.Sum256([]byte(node))
	return "node-action-" + hex.EncodeToString(sum[:16])
}

func (l *LeaseLocker) now() time.Time {
	if l.Clock != nil {
		return l.Clock.Now()
	}
	return time.Now()
}

// saw notes a Lease as read or written now, and returns when this replica
// first saw its current holder and renew time.
func (l *LeaseLocker) saw(lease *coordinationv1.Lease) sighting {
	s := sighting{holder: ptr.Deref(lease.Spec.HolderIdentity, ""), duration: ptr.Deref(lease.Spec.LeaseDurationSeconds, 0)}
	if rt := lease.Spec.RenewTime; rt != nil {
		s.renew = rt.UTC().Format(time.RFC3339Nano)
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]sighting{}
	}
	if prev, ok := l.seen[lease.Name]; ok && prev.holder == s.holder && prev.renew == s.renew && prev.duration == s.duration {
		return prev
	}
	s.at = now
	l.seen[lease.Name] = s
	return s
}

func (l *LeaseLocker) forget(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, name)
}

// remaining is how long the Lease stays held, judged on this replica's
// clock from its first sighting of the current holder and renew time.
func (l *LeaseLocker) remaining(lease *coordinationv1.Lease) time.Duration {
	if ptr.Deref(lease.Spec.HolderIdentity, "") == "" || lease.Spec.LeaseDurationSeconds == nil {
		return 0
	}
	s := l.saw(lease)
	return s.at.Add(time.Duration(s.duration) * time.Second).Sub(l.now())
}

// acquireAttempts bounds the loop over a Lease that keeps vanishing
// between a create that found it and the read that follows.
const acquireAttempts = 5

func (l *LeaseLocker) Acquire(ctx context.Context, node string, rec LockRecord, hold time.Duration) (Lock, error) {
	recJSON, err := json.Marshal(rec)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	now := metav1.NewMicroTime(l.now())
	holdSeconds := int32(hold.Round(time.Second) / time.Second)
	if holdSeconds < 1 {
		holdSeconds = 1
	}
	want := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      leaseName(node),
			Namespace: l.Namespace,
			Labels: map[string]string{
				LockLabel:                      "node-action",
				LockNodeLabel:                  labelSafe(node),
				"app.kubernetes.io/managed-by": "k8s-cloud-node-manager",
			},
			Annotations: map[string]string{lockRecordAnnotation: string(recJSON)},
		},
		Spec: coordinationv1.LeaseSpec{
			// Unique per acquisition, so a release can tell its own lock
			// from a takeover of the same Lease.
			HolderIdentity:       ptr.To(l.Identity + "/" + string(uuid.NewUUID())),
			LeaseDurationSeconds: ptr.To(holdSeconds),
			AcquireTime:          &now,
			RenewTime:            &now,
		},
	}
	if rec.NodeUID != "" {
		// Deleted with its Node by the garbage collector, so Leases do
		// not pile up as nodes come and go. No blockOwnerDeletion: that
		// would need rights on the Node this server does not ask for.
		want.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "Node", Name: node, UID: types.UID(rec.NodeUID),
		}}
	}
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	for range acquireAttempts {
		want.ResourceVersion = ""
		created, err := leases.Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			l.saw(created)
			return &leaseLock{l: l, lease: created}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, kubeAPIError("lock the node", err)
		}
		// Someone held it; take it over only if their hold has ended. The
		// update carries the resourceVersion we read, so of two replicas
		// taking over the same expired lease, one gets a conflict.
		current, err := leases.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // released between our create and our read: try again
		}
		if err != nil {
			return nil, kubeAPIError("lock the node", err)
		}
		if left := l.remaining(current); left > 0 {
			return nil, lockedError(node, current.Annotations[lockRecordAnnotation], left)
		}
		want.ResourceVersion = current.ResourceVersion
		updated, err := leases.Update(ctx, want, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return nil, lockedError(node, "", time.Second) // another replica took it over first
		}
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, kubeAPIError("lock the node", err)
		}
		l.saw(updated)
		return &leaseLock{l: l, lease: updated}, nil
	}
	return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("cannot lock node %s: its lock Lease kept changing; retry", node))
}

func (l *LeaseLocker) Check(ctx context.Context, node string) error {
	current, err := l.Client.CoordinationV1().Leases(l.Namespace).Get(ctx, leaseName(node), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return kubeAPIError("read the node's lock", err)
	}
	if left := l.remaining(current); left > 0 {
		return lockedError(node, current.Annotations[lockRecordAnnotation], left)
	}
	return nil
}

func lockedError(node, record string, retryAfter time.Duration) error {
	msg := "another action on this node is in progress or in its cooldown"
	holder := "another action"
	var rec LockRecord
	if record != "" && json.Unmarshal([]byte(record), &rec) == nil && rec.Action != "" {
		msg = fmt.Sprintf("a %s of this node requested by %s is in progress or in its cooldown", rec.Action, rec.User)
		holder = fmt.Sprintf("%s by %s", rec.Action, rec.User)
	}
	err := apierrors.NewConflict(infraopsv1.Resource("nodes"), node, fmt.Errorf("%s; retry after %s", msg, retryAfter.Round(time.Second)))
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Type: infraopsv1.CauseNodeLocked, Message: holder})
	secs := int32((retryAfter + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	err.ErrStatus.Details.RetryAfterSeconds = secs
	return err
}

// labelSafe shortens a node name to a valid label value.
func labelSafe(s string) string {
	if len(s) <= validation.LabelValueMaxLength {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// errLockLost: the Lease is gone or held by someone else.
var errLockLost = errors.New("the node lock was released or taken over")

type leaseLock struct {
	l *LeaseLocker

	mu    sync.Mutex
	lease *coordinationv1.Lease
}

func (k *leaseLock) Renew(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	leases := k.l.Client.CoordinationV1().Leases(k.lease.Namespace)
	for range acquireAttempts {
		next := k.lease.DeepCopy()
		next.Spec.RenewTime = ptr.To(metav1.NewMicroTime(k.l.now()))
		updated, err := leases.Update(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			k.lease = updated
			k.l.saw(updated)
			return nil
		}
		if apierrors.IsNotFound(err) {
			return errLockLost
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		current, err := leases.Get(ctx, k.lease.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errLockLost
		}
		if err != nil {
			return err
		}
		if ptr.Deref(current.Spec.HolderIdentity, "") != ptr.Deref(k.lease.Spec.HolderIdentity, "") {
			return errLockLost
		}
		k.lease = current
	}
	return fmt.Errorf("renewing the node lock: the Lease kept changing")
}

// Release deletes the Lease only if it is still the one we wrote, never a
// lock another replica took over meanwhile (a takeover writes a new holder
// identity); the delete's resourceVersion precondition closes the race
// between the read and the delete.
func (k *leaseLock) Release(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	leases := k.l.Client.CoordinationV1().Leases(k.lease.Namespace)
	current, err := leases.Get(ctx, k.lease.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ptr.Deref(current.Spec.HolderIdentity, "") != ptr.Deref(k.lease.Spec.HolderIdentity, "") {
		return nil
	}
	err = leases.Delete(ctx, k.lease.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &current.UID, ResourceVersion: &current.ResourceVersion},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err == nil {
		k.l.forget(k.lease.Name)
	}
	return err
}
