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
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLeaseLocker(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	a := &LeaseLocker{Client: kube, Namespace: "ops", Identity: "replica-a", Now: c.now}
	b := &LeaseLocker{Client: kube, Namespace: "ops", Identity: "replica-b", Now: c.now}
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

	// Another replica, 20s later: locked, and told when to come back.
	c.t = c.t.Add(20 * time.Second)
	_, err = b.Acquire(ctx, "node-1", rec, time.Minute)
	if !apierrors.IsConflict(err) {
		t.Fatalf("want 409, got %v", err)
	}
	if s := err.(apierrors.APIStatus).Status(); s.Details.RetryAfterSeconds != 40 || !strings.Contains(s.Message, "a restart of this node requested by alice") {
		t.Fatalf("want Retry-After 40s and who holds the lock, got %q %+v", s.Message, s.Details)
	}
	// Other nodes are independent.
	if _, err := b.Acquire(ctx, "node-2", rec, time.Minute); err != nil {
		t.Fatalf("node-2: %v", err)
	}

	// After the hold ends the lease is taken over...
	c.t = c.t.Add(41 * time.Second)
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
