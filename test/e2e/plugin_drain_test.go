package e2e

// The plugin's --drain, rolling restarts and --random chaos rounds, run by
// the real kubectl against the real kube-apiserver, whose eviction API
// judges the PodDisruptionBudgets. No kubelet and no controller-manager
// run, so the test plays them:
//
//   - the kubelets of its machines: the fake cloud's kubelet simulator
//     (pkg/cloud/fakecloud/kubelet), fed the fake cloud's recorded calls,
//     takes a rebooted machine's Node down and back with a new boot ID;
//   - the kubelet's part in an eviction: the eviction API only marks a
//     bound pod deleted (deletionTimestamp), and kubectl's drain waits
//     until the pod is gone, which the kubelet does once its containers
//     stopped; the test deletes such pods;
//   - the disruption controller: it writes the PodDisruptionBudget's
//     status, which the eviction API decides on.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud/kubelet"
	"github.com/michael/k8s-cloud-node-manager/pkg/plugin"
)

// drainBootTime is how long a machine of these tests takes to come back.
const drainBootTime = 2 * time.Second

func TestPluginDrain(t *testing.T) {
	timed(t)
	k := newPluginKubectl(t)
	t.Run("EvictsRestartsWaitsUncordons", k.testDrainEvicts)
	t.Run("PDBThatAllowsNoneTimesOut", k.testDrainTimeout)
	t.Run("StopStaysCordoned", k.testDrainStop)
	t.Run("InterruptUncordons", k.testDrainInterrupt)
	t.Run("MissingPermission", k.testDrainMissingPermission)
	t.Run("RandomWithSeed", k.testRandomWithSeed)
	t.Run("RollingRestart", k.testRollingRestart)
	t.Run("ThrottledIsRetried", k.testThrottledIsRetried)
}

// A 429 (here the cloud's rate limit through the server; a budget of the
// server's policy reads the same) is waited out and sent again, not
// reported as a failure.
func (k *pluginKubectl) testThrottledIsRetried(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	fakePost(t, m.provider, "/_fake/faults", map[string]string{"instanceId": m.instanceID, "kind": fakecloud.FaultThrottle})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := k.command(ctx, nil, "restart", "--kubeconfig", env.cluster.Kubeconfig(), m.node, "--timeout", "4m")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var tail []string
	retrying := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		tail = append(tail, sc.Text())
		if strings.Contains(sc.Text(), "to ask again to restart node.infraops.michael.io/"+m.node+" (try 1): Error from server (TooManyRequests): ") {
			retrying = true
			break
		}
	}
	if !retrying {
		_ = cmd.Wait()
		t.Fatalf("the plugin ended without retrying:\n%s", strings.Join(tail, "\n"))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, fakeURL(m.provider)+"/_fake/faults?instanceId="+m.instanceID, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := env.fakeHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for sc.Scan() {
		tail = append(tail, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after the throttle ended: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), strings.Join(tail, "\n"))
	}
	if n := reboots(t, m); n != 1 || !strings.Contains(stdout.String(), "node.infraops.michael.io/"+m.node+" restart requested") {
		t.Errorf("%d reboots, stdout:\n%s", n, stdout.String())
	}
}

func (k *pluginKubectl) testDrainEvicts(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	ns := drainNamespace(t)
	w := newWorkload(t, ns, m.node)
	// One disruption allowed: the web pod, the only one it covers, may go.
	w.pdb(t, "web", 1)
	kubelets := playKubelets(t, m)

	r := k.run(t, "", "restart", m.node, "--drain", "--reason", "e2e drain")
	r.ok(t)
	if n := reboots(t, m); n != 1 {
		t.Fatalf("%d reboots, want 1", n)
	}
	// When the cloud was asked, the node was cordoned and only the
	// DaemonSet's pod was left on it.
	at := kubelets.atReboot(m.instanceID)
	if !at.unschedulable || !slices.Equal(at.pods, []string{ns + "/agent"}) {
		t.Errorf("at the reboot: cordoned %v, pods on the node %q; want cordoned with only %s/agent", at.unschedulable, at.pods, ns)
	}
	if pods := podsOn(t, m.node); !slices.Equal(pods, []string{ns + "/agent"}) {
		t.Errorf("pods on the node after the run: %q", pods)
	}
	n, err := env.kube.CoreV1().Nodes().Get(t.Context(), m.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable {
		t.Error("the node is still cordoned after it came back")
	}
	if n.Status.NodeInfo.BootID == "boot-"+m.node {
		t.Error("the node never came back with a new boot ID")
	}
	name := "node.infraops.michael.io/" + m.node
	wantOrder := []string{
		name + " cordoned\n",
		"evicting pod " + ns + "/web\n",
		"pod " + ns + "/web evicted\n",
		name + " drained\n",
		name + " restart requested (aws " + m.instanceID + " in us-east-1",
		name + " is back: new boot ID " + n.Status.NodeInfo.BootID + ", Ready\n",
		name + " uncordoned\n",
	}
	last := -1
	for _, want := range wantOrder {
		i := strings.Index(r.stdout, want)
		if i < 0 || i < last {
			t.Fatalf("stdout lacks %q after the lines before it:\n%s", want, r.stdout)
		}
		last = i
	}
	if !strings.Contains(r.stdout, "evicting pod "+ns+"/batch\n") || strings.Contains(r.stdout, "pod "+ns+"/agent") {
		t.Errorf("stdout: the batch pod is evicted too, the DaemonSet's pod is not:\n%s", r.stdout)
	}
	// The budget was taken through the eviction API.
	pdb, err := env.kube.PolicyV1().PodDisruptionBudgets(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pdb.Status.DisruptionsAllowed != 0 || len(pdb.Status.DisruptedPods) != 1 {
		t.Errorf("PDB status %+v: the eviction did not take the disruption", pdb.Status)
	}
}

func (k *pluginKubectl) testDrainTimeout(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	ns := drainNamespace(t)
	w := newWorkload(t, ns, m.node)
	w.pdb(t, "web-none", 0)
	playKubelets(t, m)

	r := k.run(t, "", "restart", m.node, "--drain", "--drain-timeout", "6s")
	if r.code != 1 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	name := "node.infraops.michael.io/" + m.node
	want := fmt.Sprintf(`error: drain of %s did not finish within 6s (--drain-timeout): pod %s/web: PodDisruptionBudget "web-none" allows no disruption now (The disruption budget web-none needs 1 healthy pods and has 1 currently)`, name, ns)
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr:\n%s\nwant it to contain:\n%s", r.stderr, want)
	}
	if !strings.Contains(r.stdout, name+" uncordoned: nothing was asked to restart\n") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if n := reboots(t, m); n != 0 {
		t.Errorf("an undrained node was rebooted %d times", n)
	}
	n, err := env.kube.CoreV1().Nodes().Get(t.Context(), m.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable {
		t.Error("the node was left cordoned after the drain timed out")
	}
	// The pod the budget protects is still there, untouched.
	p, err := env.kube.CoreV1().Pods(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil {
		t.Errorf("the protected pod: %v, deletionTimestamp %v", err, p.DeletionTimestamp)
	}
}

// A drained stop: the pods are evicted, the machine stopped, and the node
// stays cordoned, since the machine is down.
func (k *pluginKubectl) testDrainStop(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	ns := drainNamespace(t)
	newWorkload(t, ns, m.node).pdb(t, "web", 1)
	playKubelets(t, m)

	r := k.run(t, "", "cloudnode", "stop", m.node, "--drain", "--wait")
	r.ok(t)
	stops := 0
	for _, c := range cloudCalls(t, m) {
		if c.Action == "StopInstances" && !c.DryRun && c.Error == "" {
			stops++
		}
	}
	if stops != 1 || reboots(t, m) != 0 {
		t.Fatalf("%d stops and %d reboots, want one stop", stops, reboots(t, m))
	}
	name := "node.infraops.michael.io/" + m.node
	last := -1
	for _, want := range []string{name + " cordoned\n", "pod " + ns + "/web evicted\n", name + " drained\n", name + " stop requested", name + " is down: Ready="} {
		i := strings.Index(r.stdout, want)
		if i < 0 || i < last {
			t.Fatalf("stdout lacks %q after the lines before it:\n%s", want, r.stdout)
		}
		last = i
	}
	if !strings.Contains(r.stderr, name+" left cordoned: the machine is down after the stop") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	n, err := env.kube.CoreV1().Nodes().Get(t.Context(), m.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Spec.Unschedulable {
		t.Error("the stopped node was uncordoned")
	}
	if pods := podsOn(t, m.node); !slices.Equal(pods, []string{ns + "/agent"}) {
		t.Errorf("pods on the stopped node: %q", pods)
	}
}

// Ctrl-C during a drain held by a PodDisruptionBudget: the plugin (which
// kubectl execs in its own place, so the signal reaches it) uncordons the
// node and reboots nothing.
func (k *pluginKubectl) testDrainInterrupt(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	ns := drainNamespace(t)
	newWorkload(t, ns, m.node).pdb(t, "web-none", 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := k.command(ctx, nil, "restart", "--kubeconfig", env.cluster.Kubeconfig(), m.node, "--drain", "--drain-timeout", "10m")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var tail []string
	blocked := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		tail = append(tail, sc.Text())
		if strings.Contains(sc.Text(), "waiting to evict pod "+ns+"/web: PodDisruptionBudget \"web-none\"") {
			blocked = true
			break
		}
	}
	if !blocked {
		_ = cmd.Wait()
		t.Fatalf("the plugin ended before the drain was held:\n%s", strings.Join(tail, "\n"))
	}
	n, err := env.kube.CoreV1().Nodes().Get(t.Context(), m.node, metav1.GetOptions{})
	if err != nil || !n.Spec.Unschedulable {
		t.Fatalf("the node is not cordoned during the drain (%v)", err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		tail = append(tail, sc.Text())
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("after Ctrl-C: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), strings.Join(tail, "\n"))
	}
	if !strings.Contains(strings.Join(tail, "\n"), "drain of node.infraops.michael.io/"+m.node+" interrupted") ||
		!strings.Contains(stdout.String(), "node.infraops.michael.io/"+m.node+" uncordoned: nothing was asked to restart") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), strings.Join(tail, "\n"))
	}
	if n, err = env.kube.CoreV1().Nodes().Get(t.Context(), m.node, metav1.GetOptions{}); err != nil || n.Spec.Unschedulable {
		t.Errorf("after Ctrl-C the node is still cordoned (%v)", err)
	}
	if r := reboots(t, m); r != 0 {
		t.Errorf("%d reboots after an interrupted drain", r)
	}
}

// A user allowed to restart nodes but not to evict pods learns it before
// anything is cordoned.
func (k *pluginKubectl) testDrainMissingPermission(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	sa := fmt.Sprintf("plugin-no-evict-%d", nodeSeq.Add(1))
	kubeconfig := serviceAccountKubeconfig(t, sa, []rbacv1.PolicyRule{
		{APIGroups: []string{"infraops.michael.io"}, Resources: []string{"nodes/restart"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{"apps"}, Resources: []string{"daemonsets"}, Verbs: []string{"get"}},
	})
	r := k.runEnv(t, []string{"KUBECONFIG=" + kubeconfig}, "", "restart", m.node, "--drain")
	if r.code != 1 || !strings.Contains(r.stderr, "--drain runs with your own credentials, and they lack (cluster-wide):\n  create pods/eviction ") ||
		!strings.Contains(r.stderr, "Nothing was cordoned.") {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "patch nodes") {
		t.Errorf("stderr names a rule the user has:\n%s", r.stderr)
	}
	n, err := env.kube.CoreV1().Nodes().Get(t.Context(), m.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable || len(cloudCalls(t, m)) != 0 {
		t.Errorf("cordoned %v, cloud calls %+v: nothing may happen", n.Spec.Unschedulable, cloudCalls(t, m))
	}
}

var pickLine = regexp.MustCompile(`(?m)^Round 1 of 1: picked 2 of 5 nodes matching "[^"]+" at random \(--seed 20261201\): (\S+), (\S+)$`)

func (k *pluginKubectl) testRandomWithSeed(t *testing.T) {
	pool := fmt.Sprintf("chaos-%d", nodeSeq.Add(1))
	var machines []machine
	var names []string
	for range 5 {
		m := newMachine(t, cloud.ProviderAWS, map[string]string{"e2e-plugin-pool": pool})
		machines = append(machines, m)
		names = append(names, m.node)
	}
	selector := "e2e-plugin-pool=" + pool
	pluginWaitListed(t, selector, names)

	// The pick, shown by a dry run, then again by the real run.
	dry := k.run(t, "", "restart", "-l", selector, "--random", "2", "--seed", "20261201", "--dry-run=server")
	dry.ok(t)
	first := pickLine.FindStringSubmatch(dry.stderr)
	if first == nil {
		t.Fatalf("the dry run printed no pick:\n%s", dry.stderr)
	}
	r := k.run(t, "", "restart", "-l", selector, "--random", "2", "--seed", "20261201", "--yes")
	r.ok(t)
	second := pickLine.FindStringSubmatch(r.stderr)
	if second == nil || !slices.Equal(first[1:], second[1:]) {
		t.Fatalf("picks with the same seed: %q, then %q\n%s", first, second, r.stderr)
	}
	for _, m := range machines {
		want := 0
		if slices.Contains(first[1:], m.node) {
			want = 1
		}
		if n := reboots(t, m); n != want {
			t.Errorf("%s rebooted %d times, want %d (picked %q)", m.node, n, want, first[1:])
		}
	}

	// More than match, and a selector matching nothing: refused.
	r = k.run(t, "", "restart", "-l", selector, "--random", "6", "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "matches only 5 nodes") {
		t.Errorf("--random 6 of 5: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = k.run(t, "", "restart", "-l", selector+"-none", "--random", "1", "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "matches no nodes") {
		t.Errorf("--random of nothing: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func (k *pluginKubectl) testRollingRestart(t *testing.T) {
	pool := fmt.Sprintf("rolling-%d", nodeSeq.Add(1))
	var machines []machine
	var names []string
	for range 4 {
		m := newMachine(t, cloud.ProviderAWS, map[string]string{"e2e-plugin-pool": pool})
		machines = append(machines, m)
		names = append(names, m.node)
	}
	selector := "e2e-plugin-pool=" + pool
	pluginWaitListed(t, selector, names)
	// The machines come back two by two, so two nodes are drained at
	// once whenever --max-in-flight 2 lets them, and a third would show.
	playKubeletsInBatches(t, 2, machines...)

	r := k.run(t, "", "restart", "-l", selector, "--drain", "--max-in-flight", "2", "--yes", "-o", "json")
	r.ok(t)
	// The events, in the order they happened: never more than two nodes
	// between their cordon and their uncordon.
	inFlight, most := map[string]bool{}, 0
	var summary *plugin.Event
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e plugin.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("-o json line %q: %v", line, err)
		}
		switch e.Type {
		case plugin.EventCordoned:
			inFlight[e.Node] = true
			most = max(most, len(inFlight))
		case plugin.EventUncordoned:
			delete(inFlight, e.Node)
		case plugin.EventSummary:
			summary = &e
		}
	}
	if most != 2 {
		t.Errorf("at most %d nodes drained at once, want 2 (--max-in-flight 2)", most)
	}
	if summary == nil || *summary.Done != 4 || *summary.Failed != 0 || *summary.Skipped != 0 {
		t.Errorf("summary %+v", summary)
	}
	if !strings.HasSuffix(r.stderr, "4 done, 0 failed, 0 skipped\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	for _, m := range machines {
		if n := reboots(t, m); n != 1 {
			t.Errorf("%s rebooted %d times, want once", m.node, n)
		}
		n, err := env.kube.CoreV1().Nodes().Get(t.Context(), m.node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Unschedulable || n.Status.NodeInfo.BootID == "boot-"+m.node {
			t.Errorf("%s: cordoned %v, boot ID %s: not back and uncordoned", m.node, n.Spec.Unschedulable, n.Status.NodeInfo.BootID)
		}
	}
}

// kubelets plays the kubelets of a test's machines.
type kubelets struct {
	mu sync.Mutex
	// reboots is what the node looked like when the machine's reboot
	// was first seen, by instance ID.
	reboots map[string]nodeAtReboot
}

type nodeAtReboot struct {
	unschedulable bool
	pods          []string
}

func (k *kubelets) atReboot(id string) nodeAtReboot {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reboots[id]
}

// playKubelets runs the fake cloud's kubelet simulator for these machines,
// fed from the fake cloud's record of calls, and deletes their Nodes'
// pods once evicted, as each machine's kubelet would.
func playKubelets(t *testing.T, ms ...machine) *kubelets {
	t.Helper()
	return playKubeletsInBatches(t, 1, ms...)
}

// playKubeletsInBatches is playKubelets with reboots held until batch of
// them are pending, then played out together: machines rebooted two at a
// time come back two at a time, however slowly the second was asked.
func playKubeletsInBatches(t *testing.T, batch int, ms ...machine) *kubelets {
	t.Helper()
	sim := kubelet.New(env.kube.CoreV1().Nodes(), drainBootTime, t.Logf)
	nodes := map[string]string{}
	for _, m := range ms {
		nodes[m.instanceID] = m.node
	}
	k := &kubelets{reboots: map[string]nodeAtReboot{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[string]bool{}
		var held []fakecloud.MachineEvent
		for ctx.Err() == nil {
			for _, c := range fakeCallsOf(ctx, ms[0].provider) {
				key := c.RequestID + "/" + c.Action
				if seen[key] {
					continue
				}
				seen[key] = true
				for _, e := range c.MachineEvents() {
					node, ours := nodes[e.InstanceID]
					if !ours {
						continue
					}
					if e.Kind == fakecloud.MachineRebooted {
						k.record(ctx, e.InstanceID, node)
					}
					held = append(held, e)
				}
			}
			if len(held) >= batch {
				for _, e := range held {
					sim.Observe(e)
				}
				held = nil
			}
			for _, node := range nodes {
				deleteTerminating(ctx, node)
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		sim.Close()
	})
	return k
}

func (k *kubelets) record(ctx context.Context, id, node string) {
	at := nodeAtReboot{}
	if n, err := env.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
		at.unschedulable = n.Spec.Unschedulable
	}
	at.pods, _ = listPodsOn(ctx, node)
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.reboots[id]; !ok {
		k.reboots[id] = at
	}
}

// fakeCallsOf is the fake cloud's record, or nothing while it does not
// answer (the test's own checks report that).
func fakeCallsOf(ctx context.Context, provider string) []fakecloud.Call {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fakeURL(provider)+"/_fake/calls", nil)
	if err != nil {
		return nil
	}
	resp, err := env.fakeHTTP.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var calls []fakecloud.Call
	_ = json.NewDecoder(resp.Body).Decode(&calls)
	return calls
}

// deleteTerminating removes the node's pods that were deleted gracefully
// (an eviction), as the kubelet does once their containers stopped.
func deleteTerminating(ctx context.Context, node string) {
	list, err := env.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return
	}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			_ = env.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &p.UID}})
		}
	}
}

func listPodsOn(ctx context.Context, node string) ([]string, error) {
	list, err := env.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Namespace+"/"+p.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func podsOn(t *testing.T, node string) []string {
	t.Helper()
	pods, err := listPodsOn(t.Context(), node)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// drainNamespace is a namespace of the test's own, with the default
// ServiceAccount pods need (no controller-manager creates it).
func drainNamespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("e2e-drain-%d", nodeSeq.Add(1))
	if err := env.cluster.EnsureNamespace(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	if _, err := env.kube.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return ns
}

// workload is what runs on a node: a web pod of a ReplicaSet (which a
// PodDisruptionBudget may cover), a batch pod of another, and a
// DaemonSet's pod; all bound to the node, Running and Ready.
type workload struct {
	ns, node string
}

func newWorkload(t *testing.T, ns, node string) workload {
	t.Helper()
	ctx := t.Context()
	labels := map[string]string{"app": "agent"}
	ds, err := env.kube.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec("")},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := func(kind, name string, uid types.UID) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: new(true)}
	}
	for _, p := range []struct {
		name  string
		app   string
		owner metav1.OwnerReference
	}{
		{"web", "web", owner("ReplicaSet", "web-5d8f", "6a1c0f52-0000-4000-8000-000000000001")},
		{"batch", "batch", owner("ReplicaSet", "batch-7c2e", "6a1c0f52-0000-4000-8000-000000000002")},
		{"agent", "agent", owner("DaemonSet", ds.Name, ds.UID)},
	} {
		pod, err := env.kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: map[string]string{"app": p.app}, OwnerReferences: []metav1.OwnerReference{p.owner}},
			Spec:       podSpec(node),
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := metav1.Now()
		pod.Status.Phase = corev1.PodRunning
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
		if _, err := env.kube.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return workload{ns: ns, node: node}
}

func podSpec(node string) corev1.PodSpec {
	return corev1.PodSpec{
		NodeName:                     node,
		AutomountServiceAccountToken: new(false),
		Containers:                   []corev1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10"}},
	}
}

// pdb creates a PodDisruptionBudget over the web pod and writes the
// status the disruption controller would: allowed disruptions, one
// expected and healthy pod.
func (w workload) pdb(t *testing.T, name string, allowed int32) {
	t.Helper()
	ctx := t.Context()
	minAvailable := intstr.FromInt32(1 - allowed)
	pdb, err := env.kube.PolicyV1().PodDisruptionBudgets(w.ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &minAvailable,
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     1,
		DesiredHealthy:     1 - allowed,
		ExpectedPods:       1,
	}
	if _, err := env.kube.PolicyV1().PodDisruptionBudgets(w.ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
