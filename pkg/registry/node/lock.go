package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
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
	// Release frees the lock before its hold time ends.
	Release(ctx context.Context) error
}

// Locker gives one action at a time per node. Acquire fails with a 409
// Status (with Retry-After) when the node is locked.
type Locker interface {
	Acquire(ctx context.Context, node string, rec LockRecord, hold time.Duration) (Lock, error)
}

// LeaseLocker keeps each node's lock in a coordination.k8s.io Lease, so the
// lock holds across replicas and restarts of this server: two requests for
// the same node that land on different replicas still meet.
type LeaseLocker struct {
	Client    kubernetes.Interface
	Namespace string
	// Identity names this replica in the Lease's holderIdentity.
	Identity string
	Now      func() time.Time
}

const lockRecordAnnotation = infraopsv1.GroupName + "/lock"

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
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

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
			Name:        leaseName(node),
			Namespace:   l.Namespace,
			Labels:      map[string]string{infraopsv1.GroupName + "/node": labelSafe(node)},
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
	created, err := l.Client.CoordinationV1().Leases(l.Namespace).Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		return &leaseLock{l: l, lease: created}, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, kubeAPIError("lock the node", err)
	}
	// Someone held it; take it over only if their hold has ended. The
	// update carries the resourceVersion we read, so of two replicas taking
	// over the same expired lease, one gets a conflict.
	current, err := l.Client.CoordinationV1().Leases(l.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, lockedError(node, "", time.Second) // released meanwhile; let the client retry
		}
		return nil, kubeAPIError("lock the node", err)
	}
	if left := leaseRemaining(current, l.now()); left > 0 {
		return nil, lockedError(node, current.Annotations[lockRecordAnnotation], left)
	}
	want.ResourceVersion = current.ResourceVersion
	updated, err := l.Client.CoordinationV1().Leases(l.Namespace).Update(ctx, want, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil, lockedError(node, "", time.Second)
	}
	if err != nil {
		return nil, kubeAPIError("lock the node", err)
	}
	return &leaseLock{l: l, lease: updated}, nil
}

func leaseRemaining(lease *coordinationv1.Lease, now time.Time) time.Duration {
	if lease.Spec.RenewTime == nil || lease.Spec.LeaseDurationSeconds == nil {
		return 0
	}
	end := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	return end.Sub(now)
}

func lockedError(node, record string, retryAfter time.Duration) error {
	msg := "another action on this node is in progress or in its cooldown"
	var rec LockRecord
	if record != "" && json.Unmarshal([]byte(record), &rec) == nil && rec.Action != "" {
		msg = fmt.Sprintf("a %s of this node requested by %s is in progress or in its cooldown", rec.Action, rec.User)
	}
	err := apierrors.NewConflict(infraopsv1.Resource("nodes"), node, fmt.Errorf("%s; retry after %s", msg, retryAfter.Round(time.Second)))
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

type leaseLock struct {
	l     *LeaseLocker
	lease *coordinationv1.Lease
}

// Release deletes the Lease only if it is still the one we wrote, never a
// lock another replica took over meanwhile (a takeover writes a new holder
// identity); the delete's resourceVersion precondition closes the race
// between the read and the delete.
func (k *leaseLock) Release(ctx context.Context) error {
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
	return err
}
