package plugin

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// stop and start are known actions: their own flags become their own
// options kinds.
func TestStopStartBodies(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil))
	f.actions = append(f.actions, servedAction{Name: "stop", Kind: "StopOptions"}, servedAction{Name: "start", Kind: "StartOptions"})
	if r := f.run(t, testDeps(nil), "", "kubectl-cloudnode", "stop", "n1", "--mode", "hard", "--stop-charging=true", "--reason", "night"); r.code != 0 {
		t.Fatalf("stop: exit %d, stderr:\n%s", r.code, r.errOut)
	}
	if r := f.run(t, testDeps(nil), "", "kubectl-cloudnode", "start", "n1"); r.code != 0 {
		t.Fatalf("start: exit %d, stderr:\n%s", r.code, r.errOut)
	}
	if r := f.run(t, testDeps(nil), "", "kubectl-cloudnode", "start", "n1", "--mode", "hard"); r.code == 0 {
		t.Fatalf("start took --mode, which it does not have")
	}
	want := []post{
		{Node: "n1", Action: "stop", Body: map[string]any{"apiVersion": "infraops.michael.io/v1", "kind": "StopOptions", "mode": "hard", "stopCharging": true, "reason": "night"}},
		{Node: "n1", Action: "start", Body: map[string]any{"apiVersion": "infraops.michael.io/v1", "kind": "StartOptions"}},
	}
	if got := f.Posts(); !reflect.DeepEqual(got, want) {
		t.Errorf("posts\n%+v\nwant\n%+v", got, want)
	}
}

func TestWaitGoals(t *testing.T) {
	T, F, U := corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown
	for _, tt := range []struct {
		goal   Goal
		s      bootState
		before corev1.ConditionStatus
		done   bool
	}{
		{GoalRebooted, bootState{false, T}, T, false},
		{GoalRebooted, bootState{true, F}, T, false},
		{GoalRebooted, bootState{true, T}, T, true},
		{GoalNotReady, bootState{false, T}, T, false},
		{GoalNotReady, bootState{false, U}, T, true},
		{GoalNotReady, bootState{false, F}, T, true},
		{GoalReady, bootState{false, U}, U, false},
		{GoalReady, bootState{true, T}, U, true},
		{GoalReady, bootState{false, T}, F, true},
		// Ready at the request (a stale condition): only a new boot tells.
		{GoalReady, bootState{false, T}, T, false},
		{GoalReady, bootState{true, T}, T, true},
	} {
		if got := tt.goal.done(tt.s, tt.before); got != tt.done {
			t.Errorf("goal %d, state %+v, before %s: %v, want %v", tt.goal, tt.s, tt.before, got, tt.done)
		}
	}
}

type fakeView struct {
	list *infraopsv1.NodeList
	w    *watch.FakeWatcher
}

func (f fakeView) List(context.Context, metav1.ListOptions) (*infraopsv1.NodeList, error) {
	return f.list.DeepCopy(), nil
}
func (f fakeView) Watch(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return f.w, nil
}

func viewNode(boot, ready string, la *infraopsv1.LastAction) *infraopsv1.Node {
	return &infraopsv1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "uid-1", ResourceVersion: "10"},
		Status:     infraopsv1.NodeStatus{BootID: boot, Ready: ready, LastAction: la},
	}
}

// --wait on the view ends when the server says the answer's action is
// Completed (not on the node's state alone), and fails when it says
// Failed or TimedOut.
func TestWaitFollowsLastAction(t *testing.T) {
	answer := &infraopsv1.NodeAction{Action: "stop", CloudRequestID: "req-1"}
	requested := &infraopsv1.LastAction{Action: "stop", CloudRequestID: "req-1", Phase: infraopsv1.ActionRequested}
	for _, tt := range []struct {
		end     infraopsv1.ActionPhase
		wantErr bool
	}{{infraopsv1.ActionCompleted, false}, {infraopsv1.ActionFailed, true}, {infraopsv1.ActionTimedOut, true}} {
		t.Run(string(tt.end), func(t *testing.T) {
			// A watch-list, as the server serves it: the node, then the
			// bookmark that ends the initial events.
			fw := watch.NewFakeWithChanSize(10, false)
			fw.Add(viewNode("b1", "True", requested))
			fw.Action(watch.Bookmark, &infraopsv1.Node{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "10",
				Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
			view := fakeView{list: &infraopsv1.NodeList{ListMeta: metav1.ListMeta{ResourceVersion: "10"},
				Items: []infraopsv1.Node{*viewNode("b1", "True", requested)}}, w: fw}
			// Bounds a broken wait, so the test fails rather than hangs.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := rebootWait{Name: "n1", UID: "uid-1", BootIDBefore: "b1", ReadyBefore: corev1.ConditionTrue,
					Goal: GoalNotReady, View: view, Answer: answer}.wait(ctx)
				done <- err
			}()
			// NotReady would end a wait on the node's state; with the
			// record, the server's phase decides.
			fw.Modify(viewNode("b1", "Unknown", requested))
			end := requested.DeepCopy()
			end.Phase, end.Message = tt.end, "why"
			fw.Modify(viewNode("b1", "Unknown", end))
			err := <-done
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, errActionEnded)) {
				t.Fatalf("phase %s: err %v", tt.end, err)
			}
		})
	}
}
