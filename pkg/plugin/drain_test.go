package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

var nodesGVR = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}

// drainCluster is the group's fake server and a fake clientset of the
// same nodes, each with a ReplicaSet pod and a DaemonSet pod. An accepted
// (not dry-run) action reboots the node in the clientset: new boot ID,
// Ready, its spec kept.
type drainCluster struct {
	f  *fakeServer
	cs *fake.Clientset

	mu sync.Mutex
	// evict answers each eviction; nil deletes the pod, as the kubelet
	// does once an evicted pod's containers stopped.
	evict func(pod string) error
	// denied are the rules SelfSubjectAccessReviews deny.
	denied []string
	// atAction is the node's unschedulable flag and its pods when the
	// action was posted.
	atAction map[string]actionSnapshot
}

type actionSnapshot struct {
	unschedulable bool
	pods          []string
}

func newDrainCluster(t *testing.T, names ...string) *drainCluster {
	t.Helper()
	c := &drainCluster{cs: fake.NewClientset(), atAction: map[string]actionSnapshot{}}
	var views []infraopsv1.Node
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "agent", UID: "ds-uid"}}
	if err := c.cs.Tracker().Add(ds); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		views = append(views, node(n, types.UID("uid-"+n), map[string]string{"pool": "a"}))
		for _, obj := range []runtime.Object{
			coreNode(n, types.UID("uid-"+n), "boot-1", corev1.ConditionTrue),
			testPod("default", "web-"+n, n, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs-uid", Controller: ptrTo(true)}),
			testPod("kube-system", "agent-"+n, n, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: "ds-uid", Controller: ptrTo(true)}),
		} {
			if err := c.cs.Tracker().Add(obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.cs.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{
		GroupVersion: "v1",
		APIResources: []metav1.APIResource{{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}},
	}}
	c.cs.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(clienttesting.CreateAction).GetObject().(*policyv1.Eviction)
		key := a.GetNamespace() + "/" + ev.Name
		c.mu.Lock()
		evict := c.evict
		c.mu.Unlock()
		if evict != nil {
			if err := evict(key); err != nil {
				return true, nil, err
			}
		}
		return true, nil, c.cs.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, a.GetNamespace(), ev.Name)
	})
	// The fake clientset ignores field selectors; drain lists by node.
	c.cs.PrependReactor("list", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		node, ok := a.(clienttesting.ListAction).GetListRestrictions().Fields.RequiresExactMatch("spec.nodeName")
		if !ok {
			return false, nil, nil
		}
		obj, err := c.cs.Tracker().List(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		list.Items = slices.DeleteFunc(list.Items, func(p corev1.Pod) bool { return p.Spec.NodeName != node })
		return true, list, nil
	})
	c.cs.PrependReactor("create", "selfsubjectaccessreviews", func(a clienttesting.Action) (bool, runtime.Object, error) {
		review := a.(clienttesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		ra := review.Spec.ResourceAttributes
		rule := accessRule{Group: ra.Group, Resource: ra.Resource, Subresource: ra.Subresource, Verb: ra.Verb}.String()
		c.mu.Lock()
		review.Status.Allowed = !slices.Contains(c.denied, rule)
		c.mu.Unlock()
		return true, review, nil
	})
	c.f = newFakeServer(t, views...)
	c.f.onPost = func(_ *http.Request, p post) {
		if dry, _ := p.Body["dryRun"].([]any); len(dry) > 0 {
			return
		}
		c.f.mu.Lock()
		_, failing := c.f.fail[p.Node]
		c.f.mu.Unlock()
		if failing {
			return
		}
		n, err := c.cs.CoreV1().Nodes().Get(context.Background(), p.Node, metav1.GetOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		pods, _ := c.cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
		var names []string
		for _, pod := range pods.Items {
			if pod.Spec.NodeName == p.Node {
				names = append(names, pod.Namespace+"/"+pod.Name)
			}
		}
		slices.Sort(names)
		c.mu.Lock()
		c.atAction[p.Node] = actionSnapshot{unschedulable: n.Spec.Unschedulable, pods: names}
		c.mu.Unlock()
		n.Status.NodeInfo.BootID = "boot-2"
		if err := c.cs.Tracker().Update(nodesGVR, n, ""); err != nil {
			t.Error(err)
		}
	}
	return c
}

func ptrTo[T any](v T) *T { return &v }

func testPod(ns, name, node string, owner metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), OwnerReferences: []metav1.OwnerReference{owner}},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

func (c *drainCluster) deps() deps {
	d := testDeps(fakeNodes{c.cs.CoreV1().Nodes()})
	d.kube = func(*rest.Config) (kubernetes.Interface, error) { return c.cs, nil }
	d.evictRetryDelay = 10 * time.Millisecond
	return d
}

func (c *drainCluster) unschedulable(t *testing.T, name string) bool {
	t.Helper()
	n, err := c.cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Spec.Unschedulable
}

// realPosts are the posts that were not dry runs.
func (c *drainCluster) realPosts() []post {
	var out []post
	for _, p := range c.f.Posts() {
		if dry, _ := p.Body["dryRun"].([]any); len(dry) == 0 {
			out = append(out, p)
		}
	}
	return out
}

// runCtx is fakeServer.run with a context of the test's.
func (f *fakeServer) runCtx(ctx context.Context, t *testing.T, d deps, stdin string, binary string, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := f.kubeconfig(dir)
	t.Setenv(clientcmd.RecommendedConfigPathEnvVar, "")
	streams := testStreams()
	streams.In = strings.NewReader(stdin)
	all := append([]string{binary, "--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)
	code := run(ctx, all, streams, d)
	return result{code: code, out: streams.Out.(*lockedBuilder).String(), errOut: streams.ErrOut.(*lockedBuilder).String()}
}

func TestDrainEvictsActsWaitsAndUncordons(t *testing.T) {
	c := newDrainCluster(t, "n1")
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
	// When the action was asked for, the node was cordoned and only the
	// DaemonSet's pod was left on it.
	if got, want := c.atAction["n1"], (actionSnapshot{unschedulable: true, pods: []string{"kube-system/agent-n1"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("at the restart: %+v, want %+v", got, want)
	}
	if posts := c.f.Posts(); len(posts) != 2 || len(posts[0].Body["dryRun"].([]any)) != 1 || posts[1].Body["dryRun"] != nil {
		t.Errorf("posts %+v, want a server dry run before the drain, then the restart", posts)
	}
	if c.unschedulable(t, "n1") {
		t.Error("the node is still cordoned after it came back")
	}
	want := []string{
		"node.infraops.michael.io/n1 cordoned",
		"evicting pod default/web-n1",
		"pod default/web-n1 evicted",
		"node.infraops.michael.io/n1 drained",
		"node.infraops.michael.io/n1 restart requested (aws i-n1 in us-east-1, cloud request req-n1)",
		"node.infraops.michael.io/n1 is back: new boot ID boot-2, Ready",
		"node.infraops.michael.io/n1 uncordoned",
	}
	if got := strings.Split(strings.TrimSpace(r.out), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("stdout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(r.errOut, "Warning: ignoring DaemonSet-managed Pods: kube-system/agent-n1") {
		t.Errorf("stderr does not say the DaemonSet pod is left alone:\n%s", r.errOut)
	}
}

func pdbRefusal(pdb string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type: policyv1.DisruptionBudgetCause, Message: fmt.Sprintf("The disruption budget %s needs 1 healthy pods and has 1 currently", pdb),
	})
	return err
}

func TestDrainTimeoutNamesThePDBUncordonsAndDoesNotAct(t *testing.T) {
	c := newDrainCluster(t, "n1")
	c.evict = func(string) error { return pdbRefusal("web-pdb") }
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain", "--drain-timeout", "300ms")
	if r.code != 1 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
	want := `error: drain of node.infraops.michael.io/n1 did not finish within 300ms (--drain-timeout): pod default/web-n1: PodDisruptionBudget "web-pdb" allows no disruption now (The disruption budget web-pdb needs 1 healthy pods and has 1 currently)`
	if !strings.Contains(r.errOut, want) {
		t.Errorf("stderr:\n%s\nwant it to contain:\n%s", r.errOut, want)
	}
	if posts := c.realPosts(); len(posts) != 0 {
		t.Errorf("an undrained node was acted on: %+v", posts)
	}
	if c.unschedulable(t, "n1") {
		t.Error("the node was left cordoned after the drain timed out")
	}
	if !strings.Contains(r.out, "node.infraops.michael.io/n1 uncordoned: nothing was asked to restart\n") {
		t.Errorf("stdout does not say the node was uncordoned:\n%s", r.out)
	}
}

func TestDrainTimeoutKeepCordonedAndForceUndrained(t *testing.T) {
	c := newDrainCluster(t, "n1")
	c.evict = func(string) error { return pdbRefusal("web-pdb") }
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain", "--drain-timeout", "100ms", "--keep-cordoned")
	if r.code != 1 || !c.unschedulable(t, "n1") || len(c.realPosts()) != 0 {
		t.Fatalf("--keep-cordoned: exit %d, cordoned %v, posts %+v\n%s", r.code, c.unschedulable(t, "n1"), c.realPosts(), r.errOut)
	}
	if !strings.Contains(r.errOut, "node.infraops.michael.io/n1 left cordoned: --keep-cordoned") {
		t.Errorf("stderr:\n%s", r.errOut)
	}

	c = newDrainCluster(t, "n1")
	c.evict = func(string) error { return pdbRefusal("web-pdb") }
	r = c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain", "--drain-timeout", "100ms", "--force-undrained")
	if r.code != 0 || len(c.realPosts()) != 1 || c.unschedulable(t, "n1") {
		t.Fatalf("--force-undrained: exit %d, posts %+v, cordoned %v\n%s", r.code, c.realPosts(), c.unschedulable(t, "n1"), r.errOut)
	}
	if !strings.Contains(r.errOut, "acting on it anyway (--force-undrained)") {
		t.Errorf("stderr:\n%s", r.errOut)
	}
}

// Ctrl-C during a drain: the node this run cordoned is uncordoned, and
// nothing is asked of the server.
func TestInterruptDuringDrainUncordons(t *testing.T) {
	c := newDrainCluster(t, "n1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	c.evict = func(string) error {
		once.Do(cancel)
		return pdbRefusal("web-pdb")
	}
	r := c.f.runCtx(ctx, t, c.deps(), "", "kubectl-restart", "n1", "--drain")
	if r.code != 1 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
	if c.unschedulable(t, "n1") {
		t.Error("the node stayed cordoned after Ctrl-C")
	}
	if posts := c.realPosts(); len(posts) != 0 {
		t.Errorf("interrupted drain, yet the action was posted: %+v", posts)
	}
	if !strings.Contains(r.errOut, "drain of node.infraops.michael.io/n1 interrupted") || !strings.Contains(r.out, "n1 uncordoned: nothing was asked to restart") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.out, r.errOut)
	}
}

// A node someone else cordoned stays cordoned: this run did not cordon it.
func TestDrainLeavesAnotherCordonAlone(t *testing.T) {
	c := newDrainCluster(t, "n1")
	n, _ := c.cs.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	n.Spec.Unschedulable = true
	if err := c.cs.Tracker().Update(nodesGVR, n, ""); err != nil {
		t.Fatal(err)
	}
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain")
	if r.code != 0 || !c.unschedulable(t, "n1") {
		t.Fatalf("exit %d, cordoned %v\n%s", r.code, c.unschedulable(t, "n1"), r.errOut)
	}
}

func TestDrainMissingPermissionNamesIt(t *testing.T) {
	c := newDrainCluster(t, "n1")
	c.denied = []string{"create pods/eviction", "patch nodes"}
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain")
	if r.code != 1 {
		t.Fatalf("exit %d\n%s", r.code, r.errOut)
	}
	for _, want := range []string{"--drain runs with your own credentials, and they lack (cluster-wide):", "patch nodes", "create pods/eviction", "Nothing was cordoned."} {
		if !strings.Contains(r.errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.errOut)
		}
	}
	if strings.Contains(r.errOut, "list pods") {
		t.Errorf("stderr names a rule the user has:\n%s", r.errOut)
	}
	if len(c.f.Posts()) != 0 || c.unschedulable(t, "n1") {
		t.Errorf("posts %+v, cordoned %v: nothing may happen", c.f.Posts(), c.unschedulable(t, "n1"))
	}
}

// A server that refuses the dry run (no machine behind the node) gets
// the node neither cordoned nor drained.
func TestDrainNotStartedWhenTheServerRefuses(t *testing.T) {
	c := newDrainCluster(t, "n1")
	c.f.fail["n1"] = apierrors.NewForbidden(infraopsv1.Resource("nodes"), "n1", errorString("no RBAC"))
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain")
	if r.code != 1 || c.unschedulable(t, "n1") || strings.Contains(r.out, "evicting") {
		t.Fatalf("exit %d, cordoned %v\nstdout:\n%s\nstderr:\n%s", r.code, c.unschedulable(t, "n1"), r.out, r.errOut)
	}
	if !strings.Contains(r.errOut, "n1 was not drained: the server refuses the restart: ") {
		t.Errorf("stderr:\n%s", r.errOut)
	}
}

// A rolling drain over a pool stops at the first failure; with
// --continue-on-error it goes on. Each node is uncordoned before the next
// is cordoned (--max-in-flight 1).
func TestRollingDrainStopsAtFirstFailure(t *testing.T) {
	c := newDrainCluster(t, "n1", "n2", "n3")
	c.evict = func(pod string) error {
		if pod == "default/web-n2" {
			return pdbRefusal("web-pdb")
		}
		return nil
	}
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "-l", "pool=a", "--drain", "--drain-timeout", "100ms", "--yes")
	if r.code != 1 {
		t.Fatalf("exit %d\n%s", r.code, r.errOut)
	}
	var acted []string
	for _, p := range c.realPosts() {
		acted = append(acted, p.Node)
	}
	if !reflect.DeepEqual(acted, []string{"n1"}) {
		t.Errorf("restarted %q, want n1 only: n2's drain failed and n3 must not start", acted)
	}
	if !strings.HasSuffix(r.errOut, "node.infraops.michael.io/n3 skipped: the rollout stopped\n1 done, 1 failed, 1 skipped\n") {
		t.Errorf("stderr:\n%s", r.errOut)
	}

	c = newDrainCluster(t, "n1", "n2", "n3")
	c.evict = func(pod string) error {
		if pod == "default/web-n2" {
			return pdbRefusal("web-pdb")
		}
		return nil
	}
	r = c.f.run(t, c.deps(), "", "kubectl-restart", "-l", "pool=a", "--drain", "--drain-timeout", "100ms", "--yes", "--continue-on-error")
	acted = nil
	for _, p := range c.realPosts() {
		acted = append(acted, p.Node)
	}
	if r.code != 1 || !reflect.DeepEqual(acted, []string{"n1", "n3"}) || !strings.HasSuffix(r.errOut, "2 done, 1 failed, 0 skipped\n") {
		t.Errorf("--continue-on-error: exit %d, restarted %q\n%s", r.code, acted, r.errOut)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if c.unschedulable(t, n) {
			t.Errorf("%s left cordoned", n)
		}
	}
}

func TestJSONEvents(t *testing.T) {
	c := newDrainCluster(t, "n1")
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.errOut)
	}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if e.Time.IsZero() {
			t.Errorf("event without a time: %s", line)
		}
		if e.Type == EventRequested && (e.NodeAction == nil || e.NodeAction.CloudRequestID != "req-n1") {
			t.Errorf("Requested event without the NodeAction: %s", line)
		}
		if len(types) == 0 || types[len(types)-1] != e.Type {
			types = append(types, e.Type)
		}
	}
	want := []string{EventCordoned, EventEvicting, EventEvicted, EventDrained, EventRequested, EventWaiting, EventBack, EventUncordoned, EventSummary}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("event types %q, want %q", types, want)
	}
}

// On a terminal the wait's states rewrite one line; nothing else is lost.
func TestStatusLineOnATerminal(t *testing.T) {
	c := newDrainCluster(t, "n1")
	d := c.deps()
	d.terminal = func(io.Writer) (int, bool) { return 60, true }
	r := c.f.run(t, d, "", "kubectl-restart", "n1", "--wait")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.errOut)
	}
	if !strings.HasPrefix(r.errOut, "Waiting for node.infraops.michael.io/n1 to come") || !strings.HasSuffix(r.errOut, "\r\x1b[K") || strings.Contains(r.errOut, "\n") {
		t.Errorf("stderr %q: want the state on one line rewritten in place, cut to the width, and cleared at the end", r.errOut)
	}
	for _, line := range strings.Split(r.errOut, "\r\x1b[K") {
		if len([]rune(line)) > 59 {
			t.Errorf("status line %q is wider than the terminal", line)
		}
	}
}

// stop is drained too, found through discovery before this plugin has an
// entry for it, and its node stays cordoned: the machine is down.
func TestDrainStopFoundThroughDiscoveryStaysCordoned(t *testing.T) {
	c := newDrainCluster(t, "n1")
	c.f.actions = append(c.f.actions, servedAction{Name: "stop", Kind: "StopOptions"})
	r := c.f.run(t, c.deps(), "", "kubectl-cloudnode", "stop", "n1", "--drain")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
	posts := c.realPosts()
	if len(posts) != 1 || posts[0].Action != "stop" || posts[0].Body["kind"] != "StopOptions" {
		t.Fatalf("posts %+v, want one stop", posts)
	}
	if got := c.atAction["n1"]; !got.unschedulable || !slices.Equal(got.pods, []string{"kube-system/agent-n1"}) {
		t.Errorf("at the stop: %+v", got)
	}
	if !c.unschedulable(t, "n1") || !strings.Contains(r.errOut, "node.infraops.michael.io/n1 left cordoned: the machine is down after the stop; uncordon it once it is started again (kubectl uncordon n1)") {
		t.Errorf("cordoned %v, stderr:\n%s", c.unschedulable(t, "n1"), r.errOut)
	}
}

// A server dry run of a drain changes nothing: the cordon and the
// evictions are sent with dryRun=All, and so is the action.
func TestDrainServerDryRun(t *testing.T) {
	c := newDrainCluster(t, "n1")
	var dryCordon, dryEvict bool
	c.cs.PrependReactor("patch", "nodes", func(a clienttesting.Action) (bool, runtime.Object, error) {
		dryCordon = slices.Equal(a.(clienttesting.PatchActionImpl).GetPatchOptions().DryRun, []string{metav1.DryRunAll})
		n, err := c.cs.Tracker().Get(nodesGVR, "", a.(clienttesting.PatchAction).GetName())
		return true, n, err
	})
	c.evict = func(string) error { return apierrors.NewBadRequest("a real eviction in a dry run") }
	c.cs.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if ev, ok := a.(clienttesting.CreateAction).GetObject().(*policyv1.Eviction); ok && a.GetSubresource() == "eviction" {
			dryEvict = ev.DeleteOptions != nil && slices.Equal(ev.DeleteOptions.DryRun, []string{metav1.DryRunAll})
			return true, nil, nil
		}
		return false, nil, nil
	})
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "n1", "--drain", "--dry-run=server")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
	if !dryCordon || !dryEvict || len(c.realPosts()) != 0 {
		t.Errorf("dry cordon %v, dry eviction %v, real posts %+v", dryCordon, dryEvict, c.realPosts())
	}
	for _, want := range []string{"n1 cordoned (server dry run)", "evicting pod default/web-n1 (server dry run)", "n1 drained (server dry run)", "restart requested (aws i-n1 in us-east-1, cloud request req-n1) (server dry run)"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.out)
		}
	}
}
