package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

type stubPolicy struct {
	refuse bool
	seen   []PolicyRequest
}

func (p *stubPolicy) Admit(_ context.Context, req PolicyRequest) error {
	p.seen = append(p.seen, req)
	if p.refuse {
		return apierrors.NewTooManyRequests("budget \"cluster\" is full", 5)
	}
	return nil
}

// The policy's refusal reaches the caller as it is, before any cloud call,
// and the node's lock is given back (so a retry is judged by the policy,
// not by a cooldown nothing earned).
func TestPolicyRefusalComesBeforeTheCloudCall(t *testing.T) {
	var calls atomic.Int32
	d := &rebootDriver{name: cloud.ProviderAWS, reboot: func(_ context.Context, _ cloud.Instance, o cloud.RebootOptions) (cloud.Result, error) {
		if !o.DryRun {
			calls.Add(1)
		}
		return cloud.Result{RequestID: "r-1"}, nil
	}}
	f := newRestartFixture(t, d, time.Minute, "", awsTestNode("n1", "i-0123456789abcdef0"))
	pol := &stubPolicy{refuse: true}
	f.rest.cfg.Policy = pol
	a := f.restart("n1", `{"reason":"r"}`)
	if !apierrors.IsTooManyRequests(a.err) || calls.Load() != 0 {
		t.Fatalf("want the policy's 429 and no cloud call, got %v, %d calls", a.err, calls.Load())
	}
	if _, err := f.lease("n1"); !apierrors.IsNotFound(err) {
		t.Fatalf("the lock was kept after a refusal: %v", err)
	}
	if len(pol.seen) != 1 || pol.seen[0].Node == nil || pol.seen[0].User != "alice" || pol.seen[0].Action != "restart" || pol.seen[0].DryRun {
		t.Fatalf("the policy saw %+v", pol.seen)
	}
	pol.refuse = false
	if a := f.restart("n1", `{"dryRun":["All"]}`); a.err != nil || !pol.seen[1].DryRun {
		t.Fatalf("dry run: %v, %+v", a.err, pol.seen[1])
	}
	if a := f.restart("n1", `{}`); a.err != nil || calls.Load() != 1 {
		t.Fatalf("accepted: %v, %d calls", a.err, calls.Load())
	}
}
