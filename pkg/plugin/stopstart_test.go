package plugin

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
