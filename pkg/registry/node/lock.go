package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// CallEnded says the action's cloud call has returned: the Lease now
	// holds the node for the action's cooldown, which refuses a repeat of
	// the same action (a retry, a second click) but not a different one
	// (a start after a stop). While the call runs, every action is refused.
	CallEnded bool `json:"callEnded,omitempty"`
	// Cooldowns are earlier actions' cooldowns still running when this
	// action took the lock over; they go on refusing those actions.
	Cooldowns []CarriedCooldown `json:"cooldowns,omitempty"`
}

// CarriedCooldown is an earlier action's cooldown kept by the Lease after
// a different action took it over.
type CarriedCooldown struct {
	Action string `json:"action"`
	User   string `json:"user"`
	// Seconds is how long the cooldown still runs, counted as the Lease's
	// own duration is: from when a replica first sees this renewal, on its
	// own clock, so a skewed clock cannot shorten it either.
	Seconds int32 `json:"seconds"`
}

// Lock is a held node lock.
type Lock interface {
	// Renew starts the hold again from now. The action handler renews
	// while the cloud call runs, so the lock outlives a slow call.
	Renew(ctx context.Context) error
	// EndCall renews once more when the cloud call has returned, so the
	// cooldown counts from then, and marks the call as ended: from now on
	// the lock refuses only a repeat of the same action.
	EndCall(ctx context.Context) error
	// Release frees the lock before its hold time ends.
	Release(ctx context.Context) error
}

// Locker gives one action at a time per node, and keeps each action from
// being repeated within its cooldown. Acquire fails with a 409 Status
// (with Retry-After and a NodeLocked cause) when the node is locked for
// rec.Action: another action's cloud call is under way, or this action's
// cooldown runs.
type Locker interface {
	Acquire(ctx context.Context, node string, rec LockRecord, hold time.Duration) (Lock, error)
	// Check answers as Acquire would for action (nil or the same 409)
	// without taking the lock: a dry run tells what the real request
	// would meet. An empty action asks whether the node is held at all
	// (a call under way or any cooldown).
	Check(ctx context.Context, node, action string) error
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

// lockState is what a Lease holds a node for, judged on this replica's
// clock from its first sighting of the current holder and renew time.
type lockState struct {
	rec LockRecord
	// held is how long the Lease itself stays held (a call under way, or
	// rec.Action's cooldown).
	held time.Duration
	// carried are the cooldowns running, by action, the Lease's own
	// action's included; nil while the call runs.
	carried map[string]carriedUntil
}

type carriedUntil struct {
	user  string
	until time.Time
}

func (l *LeaseLocker) stateOf(lease *coordinationv1.Lease) lockState {
	var st lockState
	if ptr.Deref(lease.Spec.HolderIdentity, "") == "" || lease.Spec.LeaseDurationSeconds == nil {
		return st
	}
	at, now := l.saw(lease).at, l.now()
	st.held = at.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second).Sub(now)
	if st.held <= 0 {
		return st
	}
	if raw := lease.Annotations[lockRecordAnnotation]; raw == "" || json.Unmarshal([]byte(raw), &st.rec) != nil {
		st.rec = LockRecord{} // unreadable: refuses every action
	}
	if !st.rec.CallEnded || st.rec.Action == "" {
		return st
	}
	st.carried = map[string]carriedUntil{st.rec.Action: {st.rec.User, now.Add(st.held)}}
	for _, c := range st.rec.Cooldowns {
		until := at.Add(time.Duration(c.Seconds) * time.Second)
		if until.After(now) && c.Action != st.rec.Action {
			st.carried[c.Action] = carriedUntil{c.User, until}
		}
	}
	return st
}

// refuses is how long the Lease refuses action (0: not at all), and the
// action and user to name in the refusal.
func (st lockState) refuses(action string, now time.Time) (time.Duration, LockRecord) {
	if st.held <= 0 {
		return 0, LockRecord{}
	}
	if st.carried == nil || action == "" {
		return st.held, st.rec // a call under way (or an unreadable record)
	}
	if c, ok := st.carried[action]; ok {
		return c.until.Sub(now), LockRecord{Action: action, User: c.user}
	}
	return 0, LockRecord{}
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
			return &leaseLock{l: l, lease: created, rec: rec}, nil
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
		st := l.stateOf(current)
		if left, by := st.refuses(rec.Action, l.now()); left > 0 {
			return nil, lockedError(node, by, left)
		}
		// A different action after a call that ended: it takes the
		// Lease over, and the cooldowns running go on with it.
		carried := st.carried
		delete(carried, rec.Action)
		if err := writeRecord(want, rec, carried, l.now(), holdSeconds); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		want.ResourceVersion = current.ResourceVersion
		updated, err := leases.Update(ctx, want, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return nil, lockedError(node, LockRecord{}, time.Second) // another replica took it over first
		}
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, kubeAPIError("lock the node", err)
		}
		l.saw(updated)
		return &leaseLock{l: l, lease: updated, rec: rec, carried: carried}, nil
	}
	return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("cannot lock node %s: its lock Lease kept changing; retry", node))
}

func (l *LeaseLocker) Check(ctx context.Context, node, action string) error {
	current, err := l.Client.CoordinationV1().Leases(l.Namespace).Get(ctx, leaseName(node), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return kubeAPIError("read the node's lock", err)
	}
	if left, by := l.stateOf(current).refuses(action, l.now()); left > 0 {
		return lockedError(node, by, left)
	}
	return nil
}

// writeRecord puts rec, with the cooldowns it carries as they stand at
// now, on the Lease. A carried cooldown is capped at the Lease's duration,
// which is when the whole Lease expires.
func writeRecord(lease *coordinationv1.Lease, rec LockRecord, carried map[string]carriedUntil, now time.Time, maxSeconds int32) error {
	rec.Cooldowns = nil
	for action, c := range carried {
		if left := c.until.Sub(now); left > 0 {
			secs := min(int32((left+time.Second-1)/time.Second), maxSeconds)
			rec.Cooldowns = append(rec.Cooldowns, CarriedCooldown{Action: action, User: c.user, Seconds: secs})
		}
	}
	slices.SortFunc(rec.Cooldowns, func(a, b CarriedCooldown) int { return strings.Compare(a.Action, b.Action) })
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[lockRecordAnnotation] = string(b)
	return nil
}

func lockedError(node string, rec LockRecord, retryAfter time.Duration) error {
	msg := "another action on this node is in progress or in its cooldown"
	holder := "another action"
	if rec.Action != "" {
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
	rec   LockRecord
	// carried are the earlier actions' cooldowns this lock took over,
	// on this replica's clock.
	carried map[string]carriedUntil
}

func (k *leaseLock) Renew(ctx context.Context) error { return k.renew(ctx, false) }

func (k *leaseLock) EndCall(ctx context.Context) error { return k.renew(ctx, true) }

func (k *leaseLock) renew(ctx context.Context, callEnded bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	leases := k.l.Client.CoordinationV1().Leases(k.lease.Namespace)
	rec := k.rec
	rec.CallEnded = rec.CallEnded || callEnded
	for range acquireAttempts {
		next := k.lease.DeepCopy()
		now := k.l.now()
		next.Spec.RenewTime = ptr.To(metav1.NewMicroTime(now))
		// The carried cooldowns are rewritten as they stand now: a
		// renewal starts their count again on every replica.
		if err := writeRecord(next, rec, k.carried, now, ptr.Deref(next.Spec.LeaseDurationSeconds, 1)); err != nil {
			return err
		}
		updated, err := leases.Update(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			k.lease, k.rec = updated, rec
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
	if restored, ok := k.restoreCarried(current); ok {
		// Earlier actions' cooldowns still run: the Lease goes back to
		// holding only them, rather than freeing a repeat of those.
		_, err = leases.Update(ctx, restored, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
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

// restoreCarried is the Lease holding only the carried cooldowns that
// still run: under the one that runs longest, with the others carried.
func (k *leaseLock) restoreCarried(current *coordinationv1.Lease) (*coordinationv1.Lease, bool) {
	now := k.l.now()
	var longest string
	for action, c := range k.carried {
		if c.until.After(now) && (longest == "" || c.until.After(k.carried[longest].until)) {
			longest = action
		}
	}
	if longest == "" {
		return nil, false
	}
	head := k.carried[longest]
	rest := map[string]carriedUntil{}
	for action, c := range k.carried {
		if action != longest {
			rest[action] = c
		}
	}
	secs := int32((head.until.Sub(now) + time.Second - 1) / time.Second)
	next := current.DeepCopy()
	next.Spec.HolderIdentity = ptr.To(k.l.Identity + "/" + string(uuid.NewUUID()))
	next.Spec.LeaseDurationSeconds = ptr.To(secs)
	next.Spec.RenewTime = ptr.To(metav1.NewMicroTime(now))
	rec := LockRecord{Action: longest, User: head.user, NodeUID: k.rec.NodeUID, CallEnded: true}
	if err := writeRecord(next, rec, rest, now, secs); err != nil {
		return nil, false
	}
	return next, true
}
