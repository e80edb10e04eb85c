package policy

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// LockTracker counts a node as under an action while its lock Lease is
// held: through the cloud call and the cooldown that follows
// (--action-cooldown), as the lock judges it on this replica's clock.
type LockTracker struct {
	Locker node.Locker
}

func (t LockTracker) UnderAction(ctx context.Context, name string, _ time.Time) (bool, error) {
	err := t.Locker.Check(ctx, name)
	if err == nil {
		return false, nil
	}
	if apierrors.IsConflict(err) {
		return true, nil
	}
	return true, err
}
