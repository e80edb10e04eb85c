package policy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// fakeTracker: a node is under an action unless marked done.
type fakeTracker struct {
	mu   sync.Mutex
	done map[string]bool
}

func (f *fakeTracker) UnderAction(_ context.Context, n string, _ time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.done[n], nil
}

func (f *fakeTracker) complete(n string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done == nil {
		f.done = map[string]bool{}
	}
	f.done[n] = true
}

type fixture struct {
	p       *Policy
	clock   *clocktesting.FakeClock
	tracker *fakeTracker
	rec     *record.FakeRecorder
	client  *fake.Clientset
	nodes   map[string]*corev1.Node
}

func newFixture(t *testing.T, yaml string, nodes ...*corev1.Node) *fixture {
	t.Helper()
	p, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		clock:   clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)),
		tracker: &fakeTracker{},
		rec:     record.NewFakeRecorder(100),
		client:  fake.NewClientset(),
		nodes:   map[string]*corev1.Node{},
	}
	for _, n := range nodes {
		f.nodes[n.Name] = n
	}
	f.p = p.With(Deps{
		Client: f.client, Namespace: "ns", Identity: "replica-a", Tracker: f.tracker, Recorder: f.rec, Clock: f.clock,
		Nodes: func() []*infraopsv1.Node {
			var out []*infraopsv1.Node
			for _, n := range f.nodes {
				ready := "False"
				if nodeReady(n) {
					ready = "True"
				}
				out = append(out, &infraopsv1.Node{ObjectMeta: n.ObjectMeta, Status: infraopsv1.NodeStatus{Ready: ready}})
			}
			return out
		},
	})
	return f
}

func mkNode(name string, ready bool, labels map[string]string) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: labels, Annotations: map[string]string{}},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}},
	}
}

func (f *fixture) admit(name string, dryRun bool) error {
	return f.p.Admit(context.Background(), node.PolicyRequest{Action: "restart", Node: f.nodes[name], User: "alice", Reason: "test", DryRun: dryRun})
}

func (f *fixture) slots(t *testing.T) int {
	t.Helper()
	l, err := f.client.CoordinationV1().Leases("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func nodesNamed(n int, labels func(i int) map[string]string) []*corev1.Node {
	var out []*corev1.Node
	for i := range n {
		out = append(out, mkNode(fmt.Sprintf("n%d", i), true, labels(i)))
	}
	return out
}

func none(int) map[string]string { return map[string]string{} }

// Issue 13: a node that never completes holds its share only until the
// bound; then the budget is free again.
func TestBudgetBoundReleasesANodeThatNeverCompletes(t *testing.T) {
	f := newFixture(t, `
underActionBound: 10m
budgets:
- name: cluster
  maxUnderAction: 1
`, nodesNamed(2, none)...)
	if err := f.admit("n0", false); err != nil {
		t.Fatal(err)
	}
	err := f.admit("n1", false)
	if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), `"cluster"`) || !strings.Contains(err.Error(), "n0") {
		t.Fatalf("want 429 naming budget cluster and n0, got %v", err)
	}
	if s, _ := apierrors.SuggestsClientDelay(err); s < 1 || s > 10 {
		t.Fatalf("Retry-After %d", s)
	}
	f.clock.Step(9 * time.Minute)
	if err := f.admit("n1", false); !apierrors.IsTooManyRequests(err) {
		t.Fatalf("inside the bound: want 429, got %v", err)
	}
	f.clock.Step(time.Minute)
	if err := f.admit("n1", false); err != nil {
		t.Fatalf("past the bound, n0 (never completed) must not hold the budget: %v", err)
	}
	if n := f.slots(t); n != 1 {
		t.Fatalf("want the one slot taken over, got %d Leases", n)
	}
}

func TestBudgetFreedWhenTheHolderCompletes(t *testing.T) {
	f := newFixture(t, `
budgets:
- name: cluster
  maxUnderAction: 2
`, nodesNamed(4, none)...)
	for _, n := range []string{"n0", "n1"} {
		if err := f.admit(n, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.admit("n2", false); !apierrors.IsTooManyRequests(err) {
		t.Fatalf("want 429, got %v", err)
	}
	f.tracker.complete("n0")
	if err := f.admit("n2", false); err != nil {
		t.Fatal(err)
	}
	if err := f.admit("n3", false); !apierrors.IsTooManyRequests(err) {
		t.Fatalf("want 429, got %v", err)
	}
	ev := strings.Join(f.events(), "\n")
	if !strings.Contains(ev, "PolicyBudgetTaken restart requested by alice took budget cluster: 2 of 2") ||
		!strings.Contains(ev, "Warning PolicyRefused restart requested by alice") {
		t.Fatalf("events:\n%s", ev)
	}
}

func TestBudgetPerGroup(t *testing.T) {
	zones := func(i int) map[string]string {
		return map[string]string{"topology.kubernetes.io/zone": fmt.Sprintf("z%d", i%3)}
	}
	f := newFixture(t, `
budgets:
- name: per-zone
  groupBy: topology.kubernetes.io/zone
  maxUnderAction: 1
`, nodesNamed(6, zones)...)
	for _, n := range []string{"n0", "n1", "n2"} {
		if err := f.admit(n, false); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"n3", "n4", "n5"} {
		err := f.admit(n, false)
		if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "topology.kubernetes.io/zone=z") {
			t.Fatalf("%s: want 429 naming the zone, got %v", n, err)
		}
	}
	v, err := NewREST(f.p).Get(context.Background(), "per-zone", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := v.(*infraopsv1.Budget)
	if len(b.Status.Groups) != 3 || b.Status.Groups[0].InUse != 1 || b.Status.Groups[0].Limit != 1 || b.Status.Groups[0].Nodes != 2 || b.Status.Groups[0].Holders[0].Node != "n0" {
		t.Fatalf("budget view: %+v", b.Status)
	}
}

func TestMinReady(t *testing.T) {
	pool := func(int) map[string]string { return map[string]string{"pool": "workers"} }
	nodes := nodesNamed(4, pool)
	nodes = append(nodes, mkNode("sick", false, map[string]string{"pool": "workers"}))
	f := newFixture(t, `
budgets:
- name: workers-ready
  selector: pool=workers
  minReady: 60%
`, nodes...)
	// 5 nodes, 60% → 3 must stay Ready; 4 are Ready.
	if err := f.admit("n0", false); err != nil {
		t.Fatal(err)
	}
	err := f.admit("n1", false)
	if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "minReady 60%") {
		t.Fatalf("want 429 naming minReady, got %v", err)
	}
	// A node that is not Ready may be acted on: it leaves as many Ready.
	if err := f.admit("sick", false); err != nil {
		t.Fatalf("a NotReady node: %v", err)
	}
	// n0 is back (its action completed): one may go again.
	f.tracker.complete("n0")
	if err := f.admit("n1", false); err != nil {
		t.Fatal(err)
	}
}

func TestDryRunTakesNoBudget(t *testing.T) {
	f := newFixture(t, `
budgets:
- name: cluster
  maxUnderAction: 1
`, nodesNamed(2, none)...)
	for range 3 {
		if err := f.admit("n0", true); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.slots(t); n != 0 {
		t.Fatalf("a dry run took %d slots", n)
	}
	if err := f.admit("n0", false); err != nil {
		t.Fatal(err)
	}
	err := f.admit("n1", true)
	if !apierrors.IsTooManyRequests(err) || !strings.HasPrefix(err.Error(), "dry run: would be refused because") {
		t.Fatalf("want a 429 saying the dry run would be refused, got %v", err)
	}
	if ev := f.events(); len(ev) != 1 {
		t.Fatalf("want only the real request's Event, got %v", ev)
	}
}

// A refusal by a later budget gives back the slot an earlier one gave.
func TestRefusalGivesBackSlots(t *testing.T) {
	f := newFixture(t, `
budgets:
- name: wide
  maxUnderAction: 5
- name: narrow
  selector: pool=a
  maxUnderAction: 1
`, mkNode("a1", true, map[string]string{"pool": "a"}), mkNode("a2", true, map[string]string{"pool": "a"}))
	if err := f.admit("a1", false); err != nil {
		t.Fatal(err)
	}
	if err := f.admit("a2", false); !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), `"narrow"`) {
		t.Fatalf("want 429 by narrow, got %v", err)
	}
	if n := f.slots(t); n != 2 {
		t.Fatalf("want a1's two slots only, got %d Leases", n)
	}
}

func TestWindows(t *testing.T) {
	f := newFixture(t, `
windows:
- name: nights
  selector: pool=workers
  actions: [restart]
  schedule: ["Mon-Fri 02:00-05:00 Europe/Berlin"]
- name: dev
  selector: pool=dev
  schedule: [always]
`, mkNode("w", true, map[string]string{"pool": "workers"}), mkNode("d", true, map[string]string{"pool": "dev"}), mkNode("other", true, nil))
	// Tuesday 2026-12-01 10:00 UTC = 11:00 in Berlin: closed.
	err := f.admit("w", false)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `MaintenanceWindow "nights"`) || !strings.Contains(err.Error(), "2026-12-02T01:00:00Z") {
		t.Fatalf("want 403 naming the window and its next opening, got %v", err)
	}
	if s, ok := apierrors.SuggestsClientDelay(err); !ok || s != int((15*time.Hour)/time.Second) {
		t.Fatalf("Retry-After %d, want 15h", s)
	}
	for _, n := range []string{"d", "other"} {
		if err := f.admit(n, false); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	// Wednesday 03:00 in Berlin: open.
	f.clock.SetTime(time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC))
	if err := f.admit("w", false); err != nil {
		t.Fatal(err)
	}
}

func TestOptOuts(t *testing.T) {
	p := mkNode("p", true, nil)
	p.Annotations[ProtectAnnotation] = "true"
	k := mkNode("k", true, nil)
	k.Annotations[KarpenterDoNotDisrupt] = "true"
	c := mkNode("c", true, nil)
	c.Annotations[ClusterAPIPaused] = ""
	f := newFixture(t, `budgets: [{name: cluster, maxUnderAction: 10}]`, p, k, c)
	if err := f.admit("p", false); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), ProtectAnnotation) {
		t.Fatalf("want 403 naming the annotation, got %v", err)
	}
	for _, n := range []string{"k", "c"} {
		if err := f.admit(n, false); err != nil {
			t.Fatalf("%s without the opt-out in the policy: %v", n, err)
		}
	}
	f2 := newFixture(t, `optOuts: {karpenterDoNotDisrupt: true, clusterAPIPaused: true}`, p, k, c)
	for _, n := range []string{"k", "c"} {
		if err := f2.admit(n, false); !apierrors.IsForbidden(err) {
			t.Fatalf("%s: want 403, got %v", n, err)
		}
	}
	if ev := strings.Join(f2.events(), "\n"); !strings.Contains(ev, "Warning PolicyRefused restart requested by alice") {
		t.Fatalf("events: %s", ev)
	}
}

func TestParseIsStrict(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"budgets: [{name: a, maxUnderAction: 1, maxUnavailable: 2}]", "unknown field"},
		{"budgets: [{name: a, maxUnderAction: 1}]\nbudgets: []", "already set"},
		{"budgets: [{name: a}]", "exactly one of maxUnderAction and minReady"},
		{"budgets: [{name: a, maxUnderAction: 1, minReady: 1}]", "exactly one"},
		{"budgets: [{name: a, maxUnderAction: 0}]", "at least 1"},
		{"budgets: [{name: a, minReady: ten}]", "a number or a percentage"},
		{"budgets: [{name: A_b, maxUnderAction: 1}]", "DNS label"},
		{"budgets: [{name: a, maxUnderAction: 1}]\nwindows: [{name: a, schedule: [always]}]", "also used"},
		{"budgets: [{name: a, selector: 'x in (', maxUnderAction: 1}]", "selector"},
		{"budgets: [{name: a, groupBy: 'bad key!', maxUnderAction: 1}]", "not a label key"},
		{"windows: [{name: w, schedule: []}]", "at least one window"},
		{"windows: [{name: w, schedule: ['Mon 02:00-03:00 Nowhere/City']}]", "unknown time zone"},
		{"underActionBound: 10s", "at least 1m"},
		{"kind: Policy", "kind must be PolicyConfig"},
		{"", "empty"},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

type constTracker bool

func (c constTracker) UnderAction(context.Context, string, time.Time) (bool, error) {
	return bool(c), nil
}

// A slot's holder counts until the lastAction of the action that took it
// leaves Requested; before that record exists, its lock tells.
func TestLastActionTracker(t *testing.T) {
	since := time.Date(2026, 12, 1, 10, 0, 0, 500_000_000, time.UTC)
	var la *infraopsv1.LastAction
	tr := LastActionTracker{LastAction: func(string) *infraopsv1.LastAction { return la }, Lock: constTracker(true)}
	check := func(want bool, what string) {
		t.Helper()
		if got, _ := tr.UnderAction(context.Background(), "n", since); got != want {
			t.Fatalf("%s: under action %v, want %v", what, got, want)
		}
	}
	check(true, "no record yet, lock held")
	la = &infraopsv1.LastAction{Phase: infraopsv1.ActionCompleted, RequestedAt: metav1.NewTime(since.Add(-time.Hour))}
	check(true, "an older action's record, lock held")
	// RequestedAt has whole seconds: the same second as the slot is this action's.
	la = &infraopsv1.LastAction{Phase: infraopsv1.ActionRequested, RequestedAt: metav1.NewTime(since.Truncate(time.Second))}
	tr.Lock = constTracker(false)
	check(true, "this action, Requested")
	for _, ph := range []infraopsv1.ActionPhase{infraopsv1.ActionCompleted, infraopsv1.ActionFailed, infraopsv1.ActionTimedOut} {
		la.Phase = ph
		check(false, string(ph))
	}
	la = nil
	check(false, "no record, no lock (refused before the call)")
}
