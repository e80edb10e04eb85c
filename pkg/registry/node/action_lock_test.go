package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-base/metrics/testutil"
	testingclock "k8s.io/utils/clock/testing"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// rebootDriver is a fake driver whose Reboot is the test's to script.
type rebootDriver struct {
	name   string
	reboot func(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error)
}

func (d *rebootDriver) Name() string { return d.name }
func (d *rebootDriver) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	return d.reboot(ctx, inst, opts)
}

type restartFixture struct {
	t        *testing.T
	kube     *fake.Clientset
	clock    *testingclock.FakeClock
	recorder *record.FakeRecorder
	rest     *ActionREST
	machines *Cache
}

func awsTestNode(name, id string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"topology.kubernetes.io/region": "us-east-1"}},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///us-east-1a/" + id},
	}
}

func newRestartFixture(t *testing.T, d cloud.Driver, cooldown time.Duration, self string, nodes ...*corev1.Node) *restartFixture {
	t.Helper()
	f := &restartFixture{t: t, kube: fake.NewClientset(), clock: testingclock.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)), recorder: record.NewFakeRecorder(100)}
	f.machines = NewCache(0, nil)
	for _, n := range nodes {
		if _, err := f.kube.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := f.machines.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	f.rest = NewActionREST(Restart, ActionConfig{
		Client:        f.kube,
		Drivers:       drivers{d.Name(): d},
		Locker:        &LeaseLocker{Client: f.kube, Namespace: "ops", Identity: "replica-a", Clock: f.clock},
		History:       &History{Client: f.kube, Namespace: "ops"},
		Recorder:      f.recorder,
		Machines:      f.machines,
		DefaultRegion: func(string) string { return "" },
		SelfNodeName:  self,
		Cooldown:      cooldown,
		Clock:         f.clock,
	})
	return f
}

func (f *restartFixture) post(node string, body io.Reader) *recordedAnswer {
	f.t.Helper()
	ctx := genericapirequest.WithUser(context.Background(), &user.DefaultInfo{Name: "alice"})
	a := &recordedAnswer{}
	h, err := f.rest.Connect(ctx, node, nil, a)
	if err != nil {
		f.t.Fatal(err)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", body))
	return a
}

func (f *restartFixture) restart(node, body string) *recordedAnswer {
	f.t.Helper()
	return f.post(node, strings.NewReader(body))
}

func (f *restartFixture) lease(node string) (*metav1.MicroTime, error) {
	l, err := f.kube.CoordinationV1().Leases("ops").Get(context.Background(), leaseName(node), metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return l.Spec.RenewTime, nil
}

// lastAction is the node's record as History wrote it; nil when none.
func (f *restartFixture) lastAction(node string) *infraopsv1.LastAction {
	l, err := f.kube.CoordinationV1().Leases("ops").Get(context.Background(), historyLeaseName(node), metav1.GetOptions{})
	if err != nil {
		return nil
	}
	var la infraopsv1.LastAction
	if json.Unmarshal([]byte(l.Annotations[lastActionAnnotation]), &la) != nil {
		return nil
	}
	return &la
}

func statusCode(err error) int32 {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		return s.Status().Code
	}
	return 0
}

// waitFor polls a condition another goroutine makes true; the deadline
// only stops a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting for %s", what)
}

// Item 1 of issue 9: a cloud call longer than the cooldown must not let a
// second request in (the lock is renewed while the call runs), and the
// cooldown counts from when the call returned.
func TestLockCoversASlowCloudCall(t *testing.T) {
	called, answer := make(chan struct{}), make(chan struct{})
	reboots := 0
	d := &rebootDriver{name: cloud.ProviderAWS, reboot: func(ctx context.Context, _ cloud.Instance, _ cloud.RebootOptions) (cloud.Result, error) {
		reboots++
		if reboots == 1 {
			close(called)
			<-answer
		}
		return cloud.Result{RequestID: "req"}, nil
	}}
	const cooldown = 10 * time.Second
	f := newRestartFixture(t, d, cooldown, "", awsTestNode("slow", "i-0123456789abcdef0"))
	// Another replica, sharing kube-apiserver and (here) the clock.
	other := &LeaseLocker{Client: f.kube, Namespace: "ops", Identity: "replica-b", Clock: f.clock}
	otherTries := func() error {
		_, err := other.Acquire(context.Background(), "slow", LockRecord{Action: "restart", User: "bob"}, cooldown)
		return err
	}

	first := make(chan *recordedAnswer)
	go func() { first <- f.restart("slow", "") }()
	<-called
	if err := otherTries(); !apierrors.IsConflict(err) {
		t.Fatalf("want 409 while the call runs, got %v", err)
	}
	// The call takes 25s, well past the 10s cooldown it started with.
	for range 5 {
		before, _ := f.lease("slow")
		waitFor(t, "the renewal ticker", f.clock.HasWaiters)
		f.clock.Step(5 * time.Second)
		waitFor(t, "a renewal", func() bool { rt, _ := f.lease("slow"); return rt != nil && !rt.Equal(before) })
		if err := otherTries(); !apierrors.IsConflict(err) {
			t.Fatalf("the lock lapsed while the cloud call ran: %v", err)
		}
	}
	close(answer)
	if a := <-first; a.err != nil || a.code != http.StatusAccepted {
		t.Fatalf("want 202, got %d %v", a.code, a.err)
	}
	// The cooldown counts from the end of the call.
	f.clock.Step(cooldown - time.Second)
	if err := otherTries(); !apierrors.IsConflict(err) {
		t.Fatalf("the cooldown did not count from the end of the call: %v", err)
	}
	if a := f.restart("slow", ""); !apierrors.IsConflict(a.err) || reboots != 1 {
		t.Fatalf("want 409 from the holder in the cooldown, got %v (%d reboots)", a.err, reboots)
	}
	// At its end the holder drops the Lease; the node is free again.
	f.clock.Step(2 * time.Second)
	waitFor(t, "the Lease to go", func() bool { _, err := f.lease("slow"); return apierrors.IsNotFound(err) })
	if a := f.restart("slow", ""); a.err != nil || reboots != 2 {
		t.Fatalf("want a second restart after the cooldown, got %v (%d reboots)", a.err, reboots)
	}
}

// Item 7 of issue 9: a driver that panics gives a 502 Status, an Event,
// and the lock kept (the cloud may have acted).
func TestDriverPanicIs502AndKeepsTheLock(t *testing.T) {
	d := &rebootDriver{name: cloud.ProviderAWS, reboot: func(context.Context, cloud.Instance, cloud.RebootOptions) (cloud.Result, error) {
		var resp *struct{ RequestID string }
		return cloud.Result{RequestID: resp.RequestID}, nil // a nil envelope
	}}
	f := newRestartFixture(t, d, time.Minute, "", awsTestNode("n", "i-0123456789abcdef0"))
	a := f.restart("n", "")
	if statusCode(a.err) != http.StatusBadGateway || !strings.Contains(a.err.Error(), "outcome is unknown") {
		t.Fatalf("want 502 with the outcome unknown, got %v", a.err)
	}
	if e := <-f.recorder.Events; !strings.HasPrefix(e, "Warning RestartFailed") {
		t.Fatalf("want a RestartFailed event, got %q", e)
	}
	if _, err := f.lease("n"); err != nil {
		t.Fatalf("the lock was not kept: %v", err)
	}
	// A dry run panicking is a 502 too.
	f2 := newRestartFixture(t, d, time.Minute, "", awsTestNode("n", "i-0123456789abcdef0"))
	if a := f2.restart("n", `{"dryRun":["All"]}`); statusCode(a.err) != http.StatusBadGateway {
		t.Fatalf("dry run: want 502, got %v", a.err)
	}
}

// Item 4 of issue 9: two Nodes naming one machine (in any spelling of
// its providerID): refused, naming the other Node, and the cloud is not
// called.
func TestTwoNodesClaimingOneMachine(t *testing.T) {
	reboots := 0
	d := &rebootDriver{name: cloud.ProviderAWS, reboot: func(context.Context, cloud.Instance, cloud.RebootOptions) (cloud.Result, error) {
		reboots++
		return cloud.Result{}, nil
	}}
	victim := awsTestNode("victim", "i-0123456789abcdef0")
	rogue := awsTestNode("rogue", "i-0123456789abcdef0")
	rogue.Spec.ProviderID = "aws:////i-0123456789abcdef0"
	f := newRestartFixture(t, d, time.Minute, "", victim, rogue, awsTestNode("alone", "i-0aaaaaaaaaaaaaaa1"))
	for node, other := range map[string]string{"victim": "rogue", "rogue": "victim"} {
		a := f.restart(node, "")
		if !apierrors.IsConflict(a.err) || !strings.Contains(a.err.Error(), "Node "+other) {
			t.Fatalf("%s: want 409 naming %s, got %v", node, other, a.err)
		}
		if a := f.restart(node, `{"dryRun":["All"]}`); !apierrors.IsConflict(a.err) {
			t.Fatalf("%s dry run: want 409, got %v", node, a.err)
		}
	}
	if reboots != 0 {
		t.Fatalf("the cloud was called %d times", reboots)
	}
	if a := f.restart("alone", ""); a.err != nil {
		t.Fatalf("a node alone on its machine: %v", a.err)
	}
}

// A GCE instance name is unique in its project and zone only: one name
// in two projects (or zones) is two machines, and neither Node is refused;
// the same project, zone and name in two Nodes is one machine, refused.
func TestGCEClaimsAreScopedByProjectAndZone(t *testing.T) {
	var called []string
	d := &rebootDriver{name: "gce", reboot: func(_ context.Context, inst cloud.Instance, _ cloud.RebootOptions) (cloud.Result, error) {
		called = append(called, inst.Project+"/"+inst.Zone+"/"+inst.ID)
		return cloud.Result{}, nil
	}}
	gceNode := func(name, providerID string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	}
	f := newRestartFixture(t, d, time.Minute, "",
		gceNode("prod", "gce://prod-project/us-central1-a/pool-1-abcd"),
		gceNode("staging", "gce://staging-project/us-central1-a/pool-1-abcd"),
		gceNode("other-zone", "gce://prod-project/us-central1-b/pool-1-abcd"),
		gceNode("twin-a", "gce://prod-project/europe-west1-b/twin"),
		gceNode("twin-b", "gce://prod-project/europe-west1-b/twin"))
	for _, n := range []string{"prod", "staging", "other-zone"} {
		if a := f.restart(n, ""); a.err != nil {
			t.Fatalf("%s: one instance name in another project or zone is another machine, got %v", n, a.err)
		}
	}
	if a := f.restart("twin-a", ""); !apierrors.IsConflict(a.err) || !strings.Contains(a.err.Error(), "Node twin-b") {
		t.Fatalf("twin-a: want 409 naming twin-b, got %v", a.err)
	}
	want := []string{"prod-project/us-central1-a/pool-1-abcd", "staging-project/us-central1-a/pool-1-abcd", "prod-project/us-central1-b/pool-1-abcd"}
	if !reflect.DeepEqual(called, want) {
		t.Fatalf("cloud calls %q, want %q", called, want)
	}
}

// Item 9 of issue 9: the node this replica runs on is restarted by the
// replica itself, with the lock and a "requested" Event in kube-apiserver
// before the cloud is called.
func TestSelfNodeRecordsBeforeTheCall(t *testing.T) {
	var f *restartFixture
	d := &rebootDriver{name: cloud.ProviderAWS, reboot: func(ctx context.Context, _ cloud.Instance, _ cloud.RebootOptions) (cloud.Result, error) {
		events, err := f.kube.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
		if err != nil || len(events.Items) != 1 {
			return cloud.Result{}, errors.New("no Event before the cloud call")
		}
		e := events.Items[0]
		if e.Reason != "RestartRequested" || e.InvolvedObject.Name != "self" || e.InvolvedObject.UID != "uid-self" || !strings.Contains(e.Message, "alice") {
			return cloud.Result{}, errors.New("unexpected Event " + e.Message)
		}
		if _, err := f.lease("self"); err != nil {
			return cloud.Result{}, errors.New("no lock before the cloud call")
		}
		if la := f.lastAction("self"); la == nil || la.Phase != infraopsv1.ActionRequested || la.User != "alice" || la.Reason != "kernel" || la.CloudRequestID != "" {
			return cloud.Result{}, fmt.Errorf("no Requested lastAction before the cloud call: %+v", la)
		}
		return cloud.Result{RequestID: "req"}, nil
	}}
	f = newRestartFixture(t, d, time.Minute, "self", awsTestNode("self", "i-0123456789abcdef0"))
	if a := f.restart("self", `{"reason":"kernel"}`); a.err != nil || a.code != http.StatusAccepted {
		t.Fatalf("want 202 for the replica's own node, got %d %v", a.code, a.err)
	}
	if a := f.restart("self", ""); !apierrors.IsConflict(a.err) {
		t.Fatalf("want 409 in the cooldown, got %v", a.err)
	}
}

// Issue 10 item 2: a dry run answers what the real request would: 409
// while the node is locked; and it takes no lock itself.
func TestDryRunMeetsTheLock(t *testing.T) {
	var dry, real int
	d := &rebootDriver{name: cloud.ProviderAWS, reboot: func(_ context.Context, _ cloud.Instance, o cloud.RebootOptions) (cloud.Result, error) {
		if o.DryRun {
			dry++
		} else {
			real++
		}
		return cloud.Result{}, nil
	}}
	f := newRestartFixture(t, d, time.Minute, "", awsTestNode("n", "i-0123456789abcdef0"))
	if a := f.restart("n", `{"dryRun":["All"]}`); a.err != nil {
		t.Fatalf("dry run on a free node: %v", a.err)
	}
	if _, err := f.lease("n"); !apierrors.IsNotFound(err) {
		t.Fatalf("a dry run took the lock: %v", err)
	}
	if a := f.restart("n", ""); a.err != nil {
		t.Fatal(a.err)
	}
	RegisterMetrics()
	before, _ := testutil.GetCounterMetricValue(actionRequests.WithLabelValues("restart", "409", "true"))
	a := f.restart("n", `{"dryRun":["All"]}`)
	if !apierrors.IsConflict(a.err) || a.err.(apierrors.APIStatus).Status().Details.RetryAfterSeconds == 0 {
		t.Fatalf("dry run on a locked node: want 409 with Retry-After, got %v", a.err)
	}
	if dry != 1 || real != 1 {
		t.Fatalf("want 1 dry and 1 real cloud call, got %d and %d", dry, real)
	}
	// The failure is counted as a dry run.
	if after, _ := testutil.GetCounterMetricValue(actionRequests.WithLabelValues("restart", "409", "true")); after != before+1 {
		t.Fatalf("dry_run=true 409s: %v then %v", before, after)
	}
	// And the nodeUID precondition holds for dry runs too.
	if a := f.restart("n", `{"dryRun":["All"],"nodeUID":"other"}`); !apierrors.IsConflict(a.err) || !strings.Contains(a.err.Error(), "precondition") {
		t.Fatalf("want the precondition's 409, got %v", a.err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// Issue 10 item 8 and issue 9 hygiene: bodies a person sends by mistake
// get messages a person reads, and a read error is not "too large".
func TestBodyMessages(t *testing.T) {
	d := &rebootDriver{name: cloud.ProviderAWS, reboot: func(context.Context, cloud.Instance, cloud.RebootOptions) (cloud.Result, error) {
		return cloud.Result{}, errors.New("must not be called")
	}}
	f := newRestartFixture(t, d, time.Minute, "", awsTestNode("n", "i-0123456789abcdef0"))
	for body, want := range map[string]string{
		`"hello"`:                          "must be a RestartOptions object",
		`hello`:                            "must be a RestartOptions object",
		`[1, 2]`:                           "not a list",
		`{"mode": 1}`:                      `field "mode" must be a string, not number`,
		`{"dryRun": "All"}`:                `field "dryRun" must be a list, not string`,
		`{"kind":"Pod","apiVersion":"v1"}`: "must be a RestartOptions (apiVersion infraops.michael.io/v1, both optional), not kind Pod of apiVersion v1",
	} {
		a := f.restart("n", body)
		if !apierrors.IsBadRequest(a.err) || !strings.Contains(a.err.Error(), want) {
			t.Errorf("%s: want 400 containing %q, got %v", body, want, a.err)
		}
		for _, jargon := range []string{"Go value", "Go struct", "v1.RestartOptions", "/v1, Kind="} {
			if a.err != nil && strings.Contains(a.err.Error(), jargon) {
				t.Errorf("%s: the message shows %q: %v", body, jargon, a.err)
			}
		}
	}
	if a := f.post("n", failingReader{}); !apierrors.IsBadRequest(a.err) {
		t.Fatalf("a body read error: want 400, got %v", a.err)
	}
}
