package policy

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// LockTracker counts a node as under an action while its lock Lease is
// held: through the cloud call and the cooldown that follows
// (--action-cooldown), as the lock judges it on this replica's clock.
type LockTracker struct {
	Locker node.Locker
}

func (t LockTracker) UnderAction(ctx context.Context, name string, _ time.Time) (bool, error) {
	err := t.Locker.Check(ctx, name, "")
	if err == nil {
		return false, nil
	}
	if apierrors.IsConflict(err) {
		return true, nil
	}
	return true, err
}

// LastActionTracker counts a node as under an action until its
// status.lastAction, for the action that took the slot, has left Requested
// (Completed, Failed or TimedOut). Until that record exists (the cloud
// call is under way; another replica's informer has not brought it yet)
// the node's lock tells: held from before the slot was taken.
type LastActionTracker struct {
	LastAction func(node string) *infraopsv1.LastAction
	Lock       Tracker
}

func (t LastActionTracker) UnderAction(ctx context.Context, name string, since time.Time) (bool, error) {
	// requestedAt is written after the slot was taken, by the same replica
	// (so the same clock), in whole seconds.
	if la := t.LastAction(name); la != nil && !la.RequestedAt.Time.Before(since.Truncate(time.Second)) {
		return la.Phase == infraopsv1.ActionRequested, nil
	}
	return t.Lock.UnderAction(ctx, name, since)
}
