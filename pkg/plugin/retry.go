package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// defaultRetryAfter is the wait after a 429 that names none.
const defaultRetryAfter = 5 * time.Second

// errRetryStopped ends the retries of a refused request before the next
// try was sent: nothing was done to the node.
var errRetryStopped = errors.New("stopped retrying")

// retryAfter says whether a refusal asks to come back later, and when:
// a 429 (a rate limit, a disruption budget: nothing was done), or a 409
// with Retry-After (a policy window). Never the node's own lock: that
// 409 means an action on this very node is in flight or just happened,
// and trying again once it ends would do the node twice.
func retryAfter(err error) (time.Duration, bool) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return 0, false
	}
	s := status.Status()
	secs := 0
	if s.Details != nil {
		secs = int(s.Details.RetryAfterSeconds)
	}
	switch s.Code {
	case http.StatusTooManyRequests:
		if secs <= 0 {
			return defaultRetryAfter, true
		}
	case http.StatusConflict:
		if secs <= 0 || nodeLockConflict(s) {
			return 0, false
		}
	default:
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

// nodeLockConflict recognises the server's lock refusal by its
// NodeLocked cause, or by its message from a server older than the cause.
func nodeLockConflict(s metav1.Status) bool {
	if s.Details != nil {
		for _, c := range s.Details.Causes {
			if c.Type == infraopsv1.CauseNodeLocked {
				return true
			}
		}
	}
	return strings.Contains(s.Message, "in progress or in its cooldown")
}

// act sends the action, and sends it again while the server refuses with
// a time to come back, until --timeout has passed since the first try.
func (r *runner) act(ctx context.Context, t target, body runtime.Object, round int) (*infraopsv1.NodeAction, error) {
	deadline := time.Now().Add(r.Timeout)
	for try := 1; ; try++ {
		answer, err := r.group.act(ctx, r.Action.Name, t.Name, body)
		if err == nil {
			r.rep.clearStatus(t.Name)
			return answer, nil
		}
		delay, retry := retryAfter(err)
		if !retry || ctx.Err() != nil {
			r.rep.clearStatus(t.Name)
			return nil, err
		}
		if left := time.Until(deadline); delay > left {
			r.rep.clearStatus(t.Name)
			return nil, fmt.Errorf("%s; gave up after %d tries in %s (--timeout): %w", resourceName(t.Name), try, r.Timeout, err)
		}
		msg := FormatError(err)
		r.rep.setStatus(t.Name, fmt.Sprintf("Waiting %s to ask again to %s %s (try %d): %s", delay.Round(time.Second), r.Action.Name, resourceName(t.Name), try, msg))
		r.rep.event(Event{Type: EventRetrying, Node: t.Name, Round: round, Message: msg, RetryAfterSeconds: int(delay / time.Second)})
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			r.rep.clearStatus(t.Name)
			return nil, fmt.Errorf("%w after %s refused: %w", errRetryStopped, resourceName(t.Name), ctx.Err())
		}
	}
}
