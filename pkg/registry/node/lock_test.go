package node

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// twoReplicas is two replicas' lockers sharing one clock and one
// kube-apiserver.
func twoReplicas() (*fake.Clientset, *testingclock.FakeClock, *LeaseLocker, *LeaseLocker) {
	kube := fake.NewClientset()
	c := testingclock.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	return kube, c,
		&LeaseLocker{Client: kube, Namespace: "ops", Identity: "replica-a", Clock: c},
		&LeaseLocker{Client: kube, Namespace: "ops", Identity: "replica-b", Clock: c}
}

func TestLeaseLocker(t *testing.T) {
	ctx := context.Background()
	kube, c, a, b := twoReplicas()
	rec := LockRecord{Action: "restart", User: "alice", NodeUID: "u1"}

	first, err := a.Acquire(ctx, "node-1", rec, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := kube.CoordinationV1().Leases("ops").Get(ctx, "node-action-node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*lease.Spec.HolderIdentity, "replica-a/") || *lease.Spec.LeaseDurationSeconds != 60 || lease.Annotations[lockRecordAnnotation] != `{"action":"restart","user":"alice","nodeUID":"u1"}` {
		t.Fatalf("unexpected lease %+v", lease)
	}

	// The holder itself, 20s later: locked, and told when to come back.
	c.Step(20 * time.Second)
	_, err = a.Acquire(ctx, "node-1", rec, time.Minute)
	if !apierrors.IsConflict(err) {
		t.Fatalf("want 409, got %v", err)
	}
	if s := err.(apierrors.APIStatus).Status(); s.Details.RetryAfterSeconds != 40 || !strings.Contains(s.Message, "a restart of this node requested by alice") ||
		len(s.Details.Causes) != 1 || s.Details.Causes[0] != (metav1.StatusCause{Type: infraopsv1.CauseNodeLocked, Message: "restart by alice"}) {
		t.Fatalf("want Retry-After 40s and who holds the lock, as message and NodeLocked cause, got %q %+v", s.Message, s.Details)
	}
	// Another replica sees the Lease for the first time: it cannot tell
	// how old the renewTime is on its own clock, so it waits a whole hold.
	_, err = b.Acquire(ctx, "node-1", rec, time.Minute)
	if s, ok := err.(apierrors.APIStatus); !ok || s.Status().Details.RetryAfterSeconds != 60 {
		t.Fatalf("want 409 with Retry-After 60s from replica-b, got %v", err)
	}
	// Other nodes are independent.
	if _, err := b.Acquire(ctx, "node-2", rec, time.Minute); err != nil {
		t.Fatalf("node-2: %v", err)
	}

	// After the hold ends (on replica-b's clock, from when it first saw
	// the Lease) the lease is taken over...
	c.Step(41 * time.Second)
	if _, err := b.Acquire(ctx, "node-1", rec, time.Minute); !apierrors.IsConflict(err) {
		t.Fatalf("replica-b took over 41s after first seeing a 60s lock: %v", err)
	}
	c.Step(20 * time.Second)
	second, err := b.Acquire(ctx, "node-1", rec, time.Minute)
	if err != nil {
		t.Fatalf("takeover after expiry: %v", err)
	}
	// ...and the first holder's late release must not free the new lock.
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "node-1", rec, time.Minute); !apierrors.IsConflict(err) {
		t.Fatalf("a stale release freed someone else's lock: %v", err)
	}
	// The holder's own release frees it at once.
	if err := second.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "node-1", rec, time.Minute); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestLeaseLockerMisconfigured(t *testing.T) {
	for name, reactErr := range map[string]error{
		"forbidden":         apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "x", nil),
		"missing namespace": apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "ops"),
	} {
		t.Run(name, func(t *testing.T) {
			kube := fake.NewClientset()
			kube.PrependReactor("create", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, reactErr
			})
			l := &LeaseLocker{Client: kube, Namespace: "ops", Identity: "r"}
			_, err := l.Acquire(context.Background(), "node-1", LockRecord{}, time.Minute)
			// The caller did nothing wrong: never their 403 or a 404 on the node.
			if s, ok := err.(apierrors.APIStatus); !ok || s.Status().Code != http.StatusServiceUnavailable {
				t.Fatalf("want 503, got %v", err)
			}
		})
	}
}

func TestLeaseName(t *testing.T) {
	long := make([]byte, 250)
	for i := range long {
		long[i] = 'a'
	}
	for _, n := range []string{"ip-10-0-1-2.ec2.internal", string(long)} {
		name := leaseName(n)
		if len(name) > 253 {
			t.Fatalf("lease name too long: %d", len(name))
		}
		if leaseName(n) != name {
			t.Fatal("lease name is not stable")
		}
	}
	if leaseName(string(long)) == leaseName(string(long[:249])) {
		t.Fatal("hashed names collide")
	}
}

// A replica whose clock runs 10 minutes ahead must not take over a Lease
// another replica took the same instant: expiry is judged on each
// replica's own clock from when it first saw the holder and renew time.
func TestLeaseLockerClockSkew(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clockA := testingclock.NewFakeClock(start)
	clockB := testingclock.NewFakeClock(start.Add(10 * time.Minute))
	a := &LeaseLocker{Client: kube, Namespace: "ops", Identity: "replica-a", Clock: clockA}
	b := &LeaseLocker{Client: kube, Namespace: "ops", Identity: "replica-b", Clock: clockB}
	rec := LockRecord{Action: "restart", User: "alice"}
	if _, err := a.Acquire(ctx, "node-1", rec, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, "node-1", rec, 5*time.Minute); !apierrors.IsConflict(err) {
		t.Fatalf("a replica 10 minutes ahead took over a fresh 5m lock: %v", err)
	}
	if err := b.Check(ctx, "node-1", "restart"); !apierrors.IsConflict(err) {
		t.Fatalf("Check: want 409, got %v", err)
	}
	clockA.Step(4 * time.Minute)
	clockB.Step(4 * time.Minute)
	if _, err := b.Acquire(ctx, "node-1", rec, 5*time.Minute); !apierrors.IsConflict(err) {
		t.Fatalf("taken over after 4 of 5 minutes: %v", err)
	}
	// A renewal by the holder starts the hold again for everyone.
	clockA.Step(time.Minute + time.Second)
	clockB.Step(time.Minute + time.Second)
	if _, err := b.Acquire(ctx, "node-1", rec, 5*time.Minute); err != nil {
		t.Fatalf("not taken over after the whole hold on replica-b's clock: %v", err)
	}
}

func TestLeaseRenewRestartsTheHold(t *testing.T) {
	ctx := context.Background()
	kube, c, a, b := twoReplicas()
	rec := LockRecord{Action: "restart", User: "alice", NodeUID: "uid-1"}
	lock, err := a.Acquire(ctx, "node-1", rec, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx, "node-1", "restart"); !apierrors.IsConflict(err) {
		t.Fatalf("want 409, got %v", err)
	}
	c.Step(50 * time.Second)
	if err := lock.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	c.Step(50 * time.Second)
	if err := b.Check(ctx, "node-1", "restart"); !apierrors.IsConflict(err) {
		t.Fatalf("a renewed lock lapsed 100s after it was taken: %v", err)
	}
	// Labels for kubectl get leases -l, and the Node as owner, so the
	// garbage collector deletes the Lease with its Node.
	lease, err := kube.CoordinationV1().Leases("ops").Get(ctx, "node-action-node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Labels[LockLabel] != "node-action" || lease.Labels[LockNodeLabel] != "node-1" {
		t.Fatalf("labels %v", lease.Labels)
	}
	if o := lease.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].APIVersion != "v1" || o[0].Name != "node-1" || o[0].UID != "uid-1" {
		t.Fatalf("owner references %+v", o)
	}
	// Released: nothing to meet.
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(ctx, "node-1", "restart"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// A Lease released between our create (AlreadyExists) and our read
// (NotFound) is a free lock: the create is tried again.
func TestLeaseVanishesBetweenCreateAndGet(t *testing.T) {
	kube := fake.NewClientset()
	creates := 0
	kube.PrependReactor("create", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		creates++
		if creates == 1 {
			return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "node-action-node-1")
		}
		return false, nil, nil
	})
	l := &LeaseLocker{Client: kube, Namespace: "ops", Identity: "r"}
	if _, err := l.Acquire(context.Background(), "node-1", LockRecord{}, time.Minute); err != nil {
		t.Fatalf("want the lock on the second create, got %v", err)
	}
	if creates != 2 {
		t.Fatalf("want 2 creates, got %d", creates)
	}
}

// wantLocked fails unless err is the lock's 409 naming action, with a
// Retry-After of wantSecs (±1 s for rounding).
func wantLocked(t *testing.T, what string, err error, action string, wantSecs int32) {
	t.Helper()
	if !apierrors.IsConflict(err) {
		t.Fatalf("%s: want the lock's 409, got %v", what, err)
	}
	d := err.(apierrors.APIStatus).Status().Details
	if len(d.Causes) != 1 || d.Causes[0].Type != infraopsv1.CauseNodeLocked || !strings.HasPrefix(d.Causes[0].Message, action+" by ") {
		t.Fatalf("%s: want a NodeLocked cause naming %s, got %+v", what, action, d.Causes)
	}
	if s := d.RetryAfterSeconds; s < wantSecs-1 || s > wantSecs+1 {
		t.Fatalf("%s: Retry-After %ds, want %ds", what, s, wantSecs)
	}
}

// The cooldown keeps an action from being repeated, not the node from
// its next action: a start may follow a stop whose call returned, while a
// second stop waits the stop's cooldown out, also after the start took the
// Lease over, on another replica, and after the start's lock was released.
// While any call runs, every action is refused.
func TestCooldownIsPerAction(t *testing.T) {
	ctx := context.Background()
	kube, c, a, b := twoReplicas()
	stop := LockRecord{Action: "stop", User: "alice", NodeUID: "u1"}
	start := LockRecord{Action: "start", User: "bob", NodeUID: "u1"}

	stopLock, err := a.Acquire(ctx, "node-1", stop, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// The stop's call runs: nothing else may start.
	_, err = b.Acquire(ctx, "node-1", start, time.Minute)
	wantLocked(t, "start during the stop's call", err, "stop", 60)
	wantLocked(t, "dry-run start during the stop's call", b.Check(ctx, "node-1", "start"), "stop", 60)

	// The call returned: a start is free, a second stop is not.
	c.Step(10 * time.Second)
	if err := stopLock.EndCall(ctx); err != nil {
		t.Fatal(err)
	}
	c.Step(20 * time.Second)
	_, err = b.Acquire(ctx, "node-1", stop, time.Minute)
	wantLocked(t, "a second stop", err, "stop", 60) // replica-b first saw this renewal just now
	wantLocked(t, "a second stop on the replica that saw the renewal", a.Check(ctx, "node-1", "stop"), "stop", 40)
	if err := a.Check(ctx, "node-1", "start"); err != nil {
		t.Fatalf("dry-run start after the stop's call: %v", err)
	}
	startLock, err := a.Acquire(ctx, "node-1", start, time.Minute)
	if err != nil {
		t.Fatalf("start after the stop's call returned: %v", err)
	}
	lease, err := kube.CoordinationV1().Leases("ops").Get(ctx, "node-action-node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := lease.Annotations[lockRecordAnnotation]; got != `{"action":"start","user":"bob","nodeUID":"u1","cooldowns":[{"action":"stop","user":"alice","seconds":40}]}` {
		t.Fatalf("lock record %s", got)
	}
	// The start's call runs: every action is refused, the stop included.
	_, err = b.Acquire(ctx, "node-1", LockRecord{Action: "restart", User: "carol"}, time.Minute)
	wantLocked(t, "restart during the start's call", err, "start", 60)

	// The start's call returned; the stop's cooldown still runs, on
	// either replica, counted from when each first saw the renewal.
	c.Step(5 * time.Second)
	if err := startLock.EndCall(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = b.Acquire(ctx, "node-1", stop, time.Minute)
	wantLocked(t, "stop while its cooldown is carried", err, "stop", 35)
	wantLocked(t, "a second start", b.Check(ctx, "node-1", "start"), "start", 60)

	// A release (as when the cloud did nothing) keeps the stop's
	// cooldown, and nothing else.
	if err := startLock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = b.Acquire(ctx, "node-1", stop, time.Minute)
	wantLocked(t, "stop after the start's lock was released", err, "stop", 35)
	if err := b.Check(ctx, "node-1", "start"); err != nil {
		t.Fatalf("start after its lock was released: %v", err)
	}
	// Its end frees the stop.
	c.Step(36 * time.Second)
	if _, err := b.Acquire(ctx, "node-1", stop, time.Minute); err != nil {
		t.Fatalf("stop after its cooldown: %v", err)
	}
}
