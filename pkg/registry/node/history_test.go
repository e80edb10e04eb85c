package node

import (
	"context"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// A lastAction change is a MODIFIED event of the view, at a
// resourceVersion after every change before it (the record's own when it
// is newer, else the next one), and a watch resumed from it starts after
// it; a Node change that follows keeps the lastAction.
func TestLastActionIsAWatchEvent(t *testing.T) {
	r, c := newTestREST(t, 0, 2, 100)
	w := startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "100"})
	la := &infraopsv1.LastAction{Action: "restart", Phase: infraopsv1.ActionRequested, User: "alice"}

	c.SetLastAction("node-0001", la, "150")
	e := next(t, w)
	if e.Type != watch.Modified || nameOf(e) != "node-0001" || rvOf(t, e) != "150" || e.Object.(*infraopsv1.Node).Status.LastAction.Action != "restart" {
		t.Fatalf("event %s %s rv %s %+v", e.Type, nameOf(e), rvOf(t, e), e.Object)
	}
	// A record older than the state (its watch lags the Nodes'): the next
	// resourceVersion, never one the state already passed.
	if err := c.Update(coreNode("node-0000", 160, nil)); err != nil {
		t.Fatal(err)
	}
	if e := next(t, w); rvOf(t, e) != "160" {
		t.Fatalf("node event at %s", rvOf(t, e))
	}
	done := la.DeepCopy()
	done.Phase = infraopsv1.ActionCompleted
	c.SetLastAction("node-0001", done, "155")
	e = next(t, w)
	if e.Type != watch.Modified || rvOf(t, e) != "161" || e.Object.(*infraopsv1.Node).Status.LastAction.Phase != infraopsv1.ActionCompleted {
		t.Fatalf("event %s rv %s", e.Type, rvOf(t, e))
	}
	// The same record again (an informer resync) is no event.
	c.SetLastAction("node-0001", done.DeepCopy(), "170")
	if err := c.Update(coreNode("node-0001", 180, nil)); err != nil {
		t.Fatal(err)
	}
	e = next(t, w)
	if rvOf(t, e) != "180" || e.Object.(*infraopsv1.Node).Status.LastAction.Phase != infraopsv1.ActionCompleted {
		t.Fatalf("a Node change lost the lastAction, or a resync was an event: rv %s %+v", rvOf(t, e), e.Object)
	}
	// Resumed from the lastAction change: exactly what came after it.
	w2 := startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "161"})
	if e := next(t, w2); rvOf(t, e) != "180" {
		t.Fatalf("resumed watch starts at %s", rvOf(t, e))
	}
	// A record that arrives before its Node is shown once the Node comes.
	c.SetLastAction("node-new", la, "190")
	if err := c.Add(coreNode("node-new", 200, nil)); err != nil {
		t.Fatal(err)
	}
	if e := next(t, w); e.Type != watch.Added || e.Object.(*infraopsv1.Node).Status.LastAction == nil {
		t.Fatalf("event %s %+v", e.Type, e.Object)
	}
}

func TestJudges(t *testing.T) {
	up := NodeState{BootID: "b1", Ready: "True"}
	for _, tt := range []struct {
		name     string
		judge    func(at, now NodeState) bool
		at, now  NodeState
		complete bool
	}{
		{"restart, nothing yet", Rebooted, up, up, false},
		{"restart, down", Rebooted, up, NodeState{"b1", "Unknown"}, false},
		{"restart, new boot not ready", Rebooted, up, NodeState{"b2", "False"}, false},
		{"restart, back", Rebooted, up, NodeState{"b2", "True"}, true},
		{"stop, still up", WentDown, up, up, false},
		{"stop, unknown", WentDown, up, NodeState{"b1", "Unknown"}, true},
		{"stop, false", WentDown, up, NodeState{"b1", "False"}, true},
		{"start, still down", CameUp, NodeState{"b1", "Unknown"}, NodeState{"b1", "Unknown"}, false},
		{"start, up", CameUp, NodeState{"b1", "Unknown"}, NodeState{"b2", "True"}, true},
		{"start, stale Ready at request", CameUp, up, up, false},
		{"start, stale Ready then new boot", CameUp, up, NodeState{"b2", "True"}, true},
	} {
		if got := tt.judge(tt.at, tt.now); got != tt.complete {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.complete)
		}
	}
}

// The follower writes TimedOut once the completion timeout has passed on
// a record the Node never completes, and leaves a Failed one alone.
func TestFollowerTimesOut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kube := fake.NewClientset()
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	cache := NewCache(0, nil)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1", ResourceVersion: "5"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}, NodeInfo: corev1.NodeSystemInfo{BootID: "b1"}}}
	if err := cache.Replace([]interface{}{n}, "10"); err != nil {
		t.Fatal(err)
	}
	h := &History{Client: kube, Namespace: "ops"}
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace("ops"))
	f, err := NewFollower(&Follower{History: h, Cache: cache, Actions: Actions, Timeout: time.Minute, Clock: clk},
		factory.Coordination().V1().Leases().Informer())
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	go f.Run(ctx)
	if err := h.Write(ctx, n, &infraopsv1.LastAction{Action: "restart", Phase: infraopsv1.ActionRequested,
		RequestedAt: metav1.NewTime(clk.Now()), BootIDAtRequest: "b1", ReadyAtRequest: "True"}); err != nil {
		t.Fatal(err)
	}
	phase := func() infraopsv1.ActionPhase {
		v, ok := cache.get("n1")
		if !ok || v.Status.LastAction == nil {
			return ""
		}
		return v.Status.LastAction.Phase
	}
	waitFor(t, "the record in the view", func() bool { return phase() == infraopsv1.ActionRequested })
	// The follower waits for the deadline on the fake clock.
	waitFor(t, "the follower to wait for the deadline", clk.HasWaiters)
	clk.Step(time.Minute)
	waitFor(t, "TimedOut", func() bool { return phase() == infraopsv1.ActionTimedOut })
	v, _ := cache.get("n1")
	if la := v.Status.LastAction; la.CompletedAt == nil || la.Message == "" || la.BootID != "b1" {
		t.Fatalf("timed out record %+v", la)
	}
	if _, err := strconv.ParseUint(v.ResourceVersion, 10, 64); err != nil {
		t.Fatalf("view resourceVersion %q", v.ResourceVersion)
	}
}
