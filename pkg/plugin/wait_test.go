package plugin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	clienttesting "k8s.io/client-go/testing"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

func coreNode(name string, uid types.UID, bootID string, ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: uid},
		Status: corev1.NodeStatus{
			NodeInfo:   corev1.NodeSystemInfo{BootID: bootID},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
		},
	}
}

// fakeNodes is the fake clientset's Nodes, marked the way the fake
// clientset itself is: it cannot serve watch-list requests.
type fakeNodes struct{ corev1client.NodeInterface }

func (fakeNodes) IsWatchListSemanticsUnSupported() bool { return true }

// controlledWatch makes the fake clientset's node watch one the test
// drives. Its events are buffered, so a wait that ends early cannot block
// the test's sends. watching is closed once the waiter watches.
func controlledWatch(cs *fake.Clientset) (w *watch.FakeWatcher, watching chan struct{}) {
	w = watch.NewFakeWithChanSize(10, false)
	watching = make(chan struct{})
	first := true
	cs.PrependWatchReactor("nodes", func(clienttesting.Action) (bool, watch.Interface, error) {
		if first {
			first = false
			close(watching)
			return true, w, nil
		}
		// A re-watch after the test's watch ended gets an idle one.
		return true, watch.NewFake(), nil
	})
	return w, watching
}

type waitResult struct {
	node *corev1.Node
	err  error
}

func startWait(ctx context.Context, rw rebootWait) <-chan waitResult {
	done := make(chan waitResult, 1)
	go func() {
		n, err := rw.wait(ctx)
		done <- waitResult{n, err}
	}()
	return done
}

// expectStates reads progress reports and compares them; a wait that
// ends (done) before reporting them all fails the test.
func expectStates(t *testing.T, progress <-chan bootState, done <-chan waitResult, want ...bootState) {
	t.Helper()
	for i, w := range want {
		select {
		case got := <-progress:
			if got != w {
				t.Fatalf("progress report %d is %v, want %v", i, got, w)
			}
		case res := <-done:
			t.Fatalf("the wait ended (%v, %v) before reporting %v", res.node, res.err, w)
		}
	}
}

var (
	upOld     = bootState{Rebooted: false, Ready: corev1.ConditionTrue}
	downOld   = bootState{Rebooted: false, Ready: corev1.ConditionUnknown}
	bootedNew = bootState{Rebooted: true, Ready: corev1.ConditionFalse}
	upNew     = bootState{Rebooted: true, Ready: corev1.ConditionTrue}
)

func TestWaitFollowsTheReboot(t *testing.T) {
	cs := fake.NewClientset(coreNode("n1", "uid-1", "boot-1", corev1.ConditionTrue))
	w, _ := controlledWatch(cs)
	progress := make(chan bootState, 10)
	done := startWait(t.Context(), rebootWait{
		Nodes: fakeNodes{cs.CoreV1().Nodes()}, Name: "n1", UID: "uid-1", BootIDBefore: "boot-1",
		Progress: func(s bootState) { progress <- s },
	})
	// The first report is the listed state; the watch is on by then.
	expectStates(t, progress, done, upOld)
	// The machine goes down, comes up with a new boot ID while the kubelet
	// is not ready yet, then reports Ready.
	w.Modify(coreNode("n1", "uid-1", "boot-1", corev1.ConditionUnknown))
	w.Modify(coreNode("n1", "uid-1", "boot-2", corev1.ConditionFalse))
	w.Modify(coreNode("n1", "uid-1", "boot-2", corev1.ConditionTrue))
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.node.Status.NodeInfo.BootID != "boot-2" {
		t.Errorf("returned node has boot ID %q", res.node.Status.NodeInfo.BootID)
	}
	// The wait is over: every report it made is in the channel.
	var rest []bootState
	for len(progress) > 0 {
		rest = append(rest, <-progress)
	}
	if want := []bootState{downOld, bootedNew, upNew}; !slices.Equal(rest, want) {
		t.Errorf("progress after the first report %v, want %v", rest, want)
	}
}

func TestWaitNeedsBothNewBootIDAndReady(t *testing.T) {
	cs := fake.NewClientset(coreNode("n1", "uid-1", "boot-1", corev1.ConditionTrue))
	w, _ := controlledWatch(cs)
	ctx, cancel := context.WithCancel(t.Context())
	progress := make(chan bootState, 10)
	done := startWait(ctx, rebootWait{
		Nodes: fakeNodes{cs.CoreV1().Nodes()}, Name: "n1", UID: "uid-1", BootIDBefore: "boot-1",
		Progress: func(s bootState) { progress <- s },
	})
	expectStates(t, progress, done, upOld)
	w.Modify(coreNode("n1", "uid-1", "boot-2", corev1.ConditionFalse))
	expectStates(t, progress, done, bootedNew)
	// Ready with the old boot ID is the node before the reboot, whatever
	// order the updates came in.
	w.Modify(coreNode("n1", "uid-1", "boot-1", corev1.ConditionTrue))
	expectStates(t, progress, done, upOld)
	cancel()
	res := <-done
	if res.err == nil || res.err.Error() != "stopped waiting for node.infraops.michael.io/n1 to come back (boot ID unchanged, Ready=True): context canceled" {
		t.Fatalf("error %v, want the wait to go on until cancelled", res.err)
	}
}

func TestWaitAlreadyBack(t *testing.T) {
	cs := fake.NewClientset(coreNode("n1", "uid-1", "boot-2", corev1.ConditionTrue))
	res := <-startWait(t.Context(), rebootWait{Nodes: fakeNodes{cs.CoreV1().Nodes()}, Name: "n1", UID: "uid-1", BootIDBefore: "boot-1"})
	if res.err != nil || res.node == nil || res.node.Status.NodeInfo.BootID != "boot-2" {
		t.Fatalf("wait on a node already back = %v, %v", res.node, res.err)
	}
}

func TestWaitNodeGone(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(w *watch.FakeWatcher)
		want string
	}{
		{
			name: "recreated",
			do:   func(w *watch.FakeWatcher) { w.Modify(coreNode("n1", "uid-new", "boot-9", corev1.ConditionTrue)) },
			want: "node.infraops.michael.io/n1: node is gone (recreated: UID uid-new, was uid-1)",
		},
		{
			name: "deleted",
			do:   func(w *watch.FakeWatcher) { w.Delete(coreNode("n1", "uid-1", "boot-1", corev1.ConditionUnknown)) },
			want: "node.infraops.michael.io/n1: node is gone (deleted)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(coreNode("n1", "uid-1", "boot-1", corev1.ConditionTrue))
			w, watching := controlledWatch(cs)
			done := startWait(t.Context(), rebootWait{Nodes: fakeNodes{cs.CoreV1().Nodes()}, Name: "n1", UID: "uid-1", BootIDBefore: "boot-1"})
			<-watching
			tc.do(w)
			res := <-done
			if !errors.Is(res.err, errNodeGone) || res.err.Error() != tc.want {
				t.Fatalf("error %v, want %q", res.err, tc.want)
			}
		})
	}
}

func TestWaitMissingNode(t *testing.T) {
	cs := fake.NewClientset()
	res := <-startWait(t.Context(), rebootWait{Nodes: fakeNodes{cs.CoreV1().Nodes()}, Name: "n1", BootIDBefore: "boot-1"})
	if !errors.Is(res.err, errNodeGone) {
		t.Fatalf("error %v, want the node reported gone", res.err)
	}
}

func TestWaitTimeout(t *testing.T) {
	cs := fake.NewClientset(coreNode("n1", "uid-1", "boot-1", corev1.ConditionTrue))
	// A deadline already passed: the wait must say it timed out, whatever
	// it got to see.
	ctx, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel()
	res := <-startWait(ctx, rebootWait{Nodes: fakeNodes{cs.CoreV1().Nodes()}, Name: "n1", BootIDBefore: "boot-1"})
	if res.err == nil || !strings.HasPrefix(res.err.Error(), "timed out waiting for node.infraops.michael.io/n1 to come back") {
		t.Fatalf("error %v, want a timeout", res.err)
	}
}

// rebootingCluster is a fake server and core Nodes where an accepted
// restart reboots the machine at once: the node's boot ID changes and it
// is Ready, as the kubelet would report.
func rebootingCluster(t *testing.T, names ...string) (*fakeServer, *fake.Clientset) {
	t.Helper()
	var views []infraopsv1.Node
	cs := fake.NewClientset()
	for _, n := range names {
		views = append(views, node(n, types.UID("uid-"+n), map[string]string{"pool": "a"}))
		if err := cs.Tracker().Add(coreNode(n, types.UID("uid-"+n), "boot-1", corev1.ConditionTrue)); err != nil {
			t.Fatal(err)
		}
	}
	f := newFakeServer(t, views...)
	f.onPost = func(_ *http.Request, p post) {
		if _, failing := f.fail[p.Node]; failing {
			return
		}
		if err := cs.Tracker().Update(schema.GroupVersionResource{Version: "v1", Resource: "nodes"},
			coreNode(p.Node, types.UID("uid-"+p.Node), "boot-2", corev1.ConditionTrue), ""); err != nil {
			t.Error(err)
		}
	}
	return f, cs
}

func TestRunWithWait(t *testing.T) {
	f, cs := rebootingCluster(t, "n1")
	r := f.run(t, testDeps(fakeNodes{cs.CoreV1().Nodes()}), "", "kubectl-restart", "n1", "--wait")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.errOut)
	}
	posts := f.Posts()
	if len(posts) != 1 || posts[0].Body["nodeUID"] != "uid-n1" {
		t.Fatalf("posts %+v, want one with the node's UID as precondition", posts)
	}
	wantOut := "node.infraops.michael.io/n1 restart requested (aws i-n1 in us-east-1, cloud request req-n1)\nnode.infraops.michael.io/n1 is back: new boot ID boot-2, Ready\n"
	if r.out != wantOut {
		t.Errorf("stdout %q, want %q", r.out, wantOut)
	}
	if want := "Waiting for node.infraops.michael.io/n1 to come back: new boot ID, Ready=True (0s elapsed)\n"; r.errOut != want {
		t.Errorf("stderr %q, want %q", r.errOut, want)
	}
}

func TestWaitFailureStopsTheRollout(t *testing.T) {
	f, cs := rebootingCluster(t, "n1", "n2", "n3")
	f.fail["n1"] = apierrors.NewConflict(infraopsv1.Resource("nodes"), "n1", errorString("locked"))
	r := f.run(t, testDeps(fakeNodes{cs.CoreV1().Nodes()}), "", "kubectl-restart", "-l", "pool=a", "--wait", "--yes")
	if r.code == 0 {
		t.Fatalf("exit 0; stderr:\n%s", r.errOut)
	}
	if posts := f.Posts(); len(posts) != 1 || posts[0].Node != "n1" {
		t.Fatalf("posts %+v: after a failure with --wait no other node may be restarted", posts)
	}
	if !strings.HasSuffix(r.errOut, "0 done, 1 failed, 2 skipped\n") {
		t.Errorf("stderr does not end in the summary:\n%s", r.errOut)
	}
}

// The informer behind the wait replays the events it received before its
// cache synced, after the first report has already shown their result;
// the progress must not go back to an older state (in the demo, where the
// machine is down before the wait begins: Unknown, True, Unknown).
func TestWaitProgressNeverGoesBackToAnOlderState(t *testing.T) {
	for i := range 5 {
		cs := fake.NewClientset(coreNode("n1", "uid-1", "boot-1", corev1.ConditionTrue))
		w, _ := controlledWatch(cs)
		// Already down when the waiter starts watching: the event is
		// waiting in the watch, so it lands before the cache reports synced.
		w.Modify(coreNode("n1", "uid-1", "boot-1", corev1.ConditionUnknown))
		progress := make(chan bootState, 10)
		done := startWait(t.Context(), rebootWait{
			Nodes: fakeNodes{cs.CoreV1().Nodes()}, Name: "n1", UID: "uid-1", BootIDBefore: "boot-1",
			Progress: func(s bootState) { progress <- s },
		})
		got := []bootState{<-progress}
		w.Modify(coreNode("n1", "uid-1", "boot-2", corev1.ConditionTrue))
		if res := <-done; res.err != nil {
			t.Fatal(res.err)
		}
		for len(progress) > 0 {
			got = append(got, <-progress)
		}
		if down := slices.Index(got, downOld); down >= 0 && slices.Contains(got[down:], upOld) {
			t.Fatalf("run %d: progress went back from %v to %v: %v", i, downOld, upOld, got)
		}
	}
}
