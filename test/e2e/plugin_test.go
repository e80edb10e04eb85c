package e2e

// The kubectl plugin (cmd/kubectl-restart) run by the real kubectl against
// the suite's cluster and product, as a user runs it: kubectl finds
// kubectl-restart on PATH and execs it, with stdin, the environment and the
// arguments after the plugin name.
//
//   - restart, then again within the cooldown (409), server and client
//     dry runs, all checked at the fake cloud;
//   - -l with the confirmation prompt answered no, then yes;
//   - a ServiceAccount token without RBAC, through KUBECONFIG: Forbidden;
//   - an unknown node: NotFound;
//   - --wait, with the test posting the new boot ID and Ready through the
//     Node's status subresource as a kubelet would after the reboot;
//   - the same binary as kubectl-cloudnode, and kubectl's completion of
//     plugin arguments through kubectl_complete-restart.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

func TestPlugin(t *testing.T) {
	timed(t)
	k := newPluginKubectl(t)
	t.Run("Restart", k.testRestart)
	t.Run("DryRun", k.testDryRun)
	t.Run("SelectorWithPrompt", k.testSelector)
	t.Run("Forbidden", k.testForbidden)
	t.Run("UnknownNode", k.testUnknownNode)
	t.Run("Wait", k.testWait)
	t.Run("Cloudnode", k.testCloudnode)
	t.Run("Completion", k.testCompletion)
}

func (k *pluginKubectl) testRestart(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	r := k.run(t, "", "restart", m.node, "--reason", "e2e restart")
	r.ok(t)
	calls := cloudCalls(t, m)
	if len(calls) != 1 || calls[0].Action != "RebootInstances" || calls[0].DryRun || calls[0].Error != "" || calls[0].Region != "us-east-1" {
		t.Fatalf("fake EC2 calls for %s: %+v, want one accepted reboot in us-east-1", m.instanceID, calls)
	}
	want := fmt.Sprintf("node.infraops.michael.io/%s restart requested (aws %s in us-east-1, cloud request %s)\n", m.node, m.instanceID, calls[0].RequestID)
	if r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}

	// Within the cooldown the node is locked; the 409 reads as kubectl's.
	r = k.run(t, "", "restart", m.node)
	if r.code != 1 || !strings.HasPrefix(r.stderr, `Error from server (Conflict): Operation cannot be fulfilled on nodes.infraops.michael.io "`+m.node+`": `) {
		t.Errorf("second restart: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if n := reboots(t, m); n != 1 {
		t.Errorf("the locked node's machine was rebooted %d times, want once", n)
	}
}

func (k *pluginKubectl) testDryRun(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)

	// EC2 has one kind of reboot: hard is refused, naming it, and nothing
	// is sent.
	r := k.run(t, "", "restart", m.node, "--dry-run=server", "--mode", "hard", "-o", "json")
	if r.code != 1 || !strings.Contains(r.stderr, "Invalid") || !strings.Contains(r.stderr, "soft") {
		t.Errorf("--mode hard on EC2: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if calls := cloudCalls(t, m); len(calls) != 0 {
		t.Fatalf("fake EC2 calls %+v for a mode EC2 does not have", calls)
	}

	r = k.run(t, "", "restart", m.node, "--dry-run=server", "-o", "json")
	r.ok(t)
	var a infraopsv1.NodeAction
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
		t.Fatalf("-o json: %v\n%s", err, r.stdout)
	}
	if a.Kind != "NodeAction" || !a.DryRun || a.Mode != "soft" || a.NodeName != m.node || a.Cloud.InstanceID != m.instanceID || a.User == "" {
		t.Errorf("NodeAction %+v", a)
	}
	if calls := cloudCalls(t, m); len(calls) != 1 || !calls[0].DryRun {
		t.Fatalf("fake EC2 calls %+v, want one dry run", calls)
	}

	r = k.run(t, "", "restart", m.node, "--dry-run=client")
	r.ok(t)
	if !strings.HasPrefix(r.stdout, "node.infraops.michael.io/"+m.node+" restart requested (dry run): POST /apis/infraops.michael.io/v1/nodes/"+m.node+"/restart ") {
		t.Errorf("client dry run printed %q", r.stdout)
	}
	if n := len(cloudCalls(t, m)); n != 1 {
		t.Errorf("a client dry run reached the cloud: %d calls", n)
	}

	// Nothing was locked: a real restart goes through.
	k.run(t, "", "restart", m.node).ok(t)
	if n := reboots(t, m); n != 1 {
		t.Errorf("%d reboots, want 1", n)
	}
}

func (k *pluginKubectl) testSelector(t *testing.T) {
	pool := fmt.Sprintf("bulk-%d", nodeSeq.Add(1))
	var machines []machine
	for range 3 {
		machines = append(machines, newMachine(t, cloud.ProviderAWS, map[string]string{"e2e-plugin-pool": pool}))
	}
	other := newMachine(t, cloud.ProviderAWS, map[string]string{"e2e-plugin-pool": pool + "-other"})
	selector := "e2e-plugin-pool=" + pool
	var names []string
	for _, m := range machines {
		names = append(names, m.node)
	}
	slices.Sort(names) // the server lists in name order
	pluginWaitListed(t, selector, names)

	prompt := "About to restart 3 nodes:\n  " + strings.Join(names, "\n  ") + "\nContinue? [y/N]: "
	r := k.run(t, "n\n", "restart", "-l", selector, "--reason", "e2e bulk")
	if r.code != 1 || !strings.HasPrefix(r.stderr, prompt) || !strings.Contains(r.stderr, "error: aborted: no node was asked to restart") {
		t.Fatalf("answered no: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	for _, m := range machines {
		if calls := cloudCalls(t, m); len(calls) != 0 {
			t.Fatalf("answered no, yet the cloud got %+v", calls)
		}
	}

	r = k.run(t, "y\n", "restart", "-l", selector, "--reason", "e2e bulk", "--max-in-flight", "2")
	r.ok(t)
	if !strings.HasPrefix(r.stderr, prompt) || !strings.HasSuffix(r.stderr, "3 requested, 0 failed\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	for _, m := range machines {
		if !strings.Contains(r.stdout, "node.infraops.michael.io/"+m.node+" restart requested (aws "+m.instanceID+" in us-east-1, cloud request ") {
			t.Errorf("stdout lacks the line of %s:\n%s", m.node, r.stdout)
		}
		if n := reboots(t, m); n != 1 {
			t.Errorf("%s rebooted %d times, want once", m.node, n)
		}
	}
	if calls := cloudCalls(t, other); len(calls) != 0 {
		t.Errorf("a node outside the selector got %+v", calls)
	}
}

func (k *pluginKubectl) testForbidden(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	sa := fmt.Sprintf("plugin-nobody-%d", nodeSeq.Add(1))
	// Given through KUBECONFIG rather than --kubeconfig: the plugin must
	// read it as kubectl does.
	kubeconfig := serviceAccountKubeconfig(t, sa, nil)
	r := k.runEnv(t, []string{"KUBECONFIG=" + kubeconfig}, "", "restart", m.node)
	want := fmt.Sprintf(`Error from server (Forbidden): nodes.infraops.michael.io %q is forbidden: User "system:serviceaccount:e2e-users:%s" cannot create resource "nodes/restart" in API group "infraops.michael.io" at the cluster scope`, m.node, sa)
	if r.code != 1 || !strings.HasPrefix(r.stderr, want) || r.stdout != "" {
		t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant stderr starting %q", r.code, r.stdout, r.stderr, want)
	}
	if calls := cloudCalls(t, m); len(calls) != 0 {
		t.Errorf("forbidden, yet the cloud got %+v", calls)
	}
}

func (k *pluginKubectl) testUnknownNode(t *testing.T) {
	name := fmt.Sprintf("e2e-plugin-no-such-node-%d", nodeSeq.Add(1))
	r := k.run(t, "", "restart", name)
	want := `Error from server (NotFound): nodes.infraops.michael.io "` + name + `" not found` + "\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
}

func (k *pluginKubectl) testWait(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	bootBefore, bootAfter := "boot-"+m.node, "boot-after-"+m.node
	// A bound on the whole run, so a plugin stuck before a report fails
	// the test instead of hanging it: its reports then stop.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := k.command(ctx, nil, "restart", "--kubeconfig", env.cluster.Kubeconfig(), m.node, "--wait", "--timeout", "10m", "--reason", "e2e wait")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		tailMu sync.Mutex
		tail   []string
	)
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			tailMu.Lock()
			tail = append(tail, sc.Text())
			tailMu.Unlock()
			lines <- sc.Text()
		}
	}()
	// expect reads progress lines until one reports the state; the plugin
	// reports changes only, so each update below is reported once.
	expect := func(state string) {
		t.Helper()
		prefix := "Waiting for node.infraops.michael.io/" + m.node + " to come back: " + state + " ("
		for line := range lines {
			if strings.HasPrefix(line, prefix) {
				return
			}
		}
		tailMu.Lock()
		defer tailMu.Unlock()
		t.Fatalf("the plugin ended before reporting %q; stderr:\n%s", state, strings.Join(tail, "\n"))
	}

	// The first report comes once the request was accepted and the watch
	// has the node.
	expect("boot ID unchanged, Ready=True")
	if n := reboots(t, m); n != 1 {
		t.Fatalf("%d reboots before the wait, want 1", n)
	}
	// The kubelet stops posting, then comes back after the reboot with a
	// new boot ID, not ready at first.
	pluginSetStatus(t, m.node, false, bootBefore)
	expect("boot ID unchanged, Ready=False")
	pluginSetStatus(t, m.node, false, bootAfter)
	expect("new boot ID, Ready=False")
	pluginSetStatus(t, m.node, true, bootAfter)
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kubectl restart --wait: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), strings.Join(tail, "\n"))
	}
	want := fmt.Sprintf("node.infraops.michael.io/%s restart requested (aws %s in us-east-1, cloud request %s)\nnode.infraops.michael.io/%s is back: new boot ID %s, Ready\n",
		m.node, m.instanceID, cloudCalls(t, m)[0].RequestID, m.node, bootAfter)
	if stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
}

func (k *pluginKubectl) testCloudnode(t *testing.T) {
	m := newMachine(t, cloud.ProviderAWS, nil)
	r := k.run(t, "", "cloudnode", "restart", m.node, "--dry-run=server")
	r.ok(t)
	if !strings.HasSuffix(r.stdout, "(server dry run)\n") {
		t.Errorf("stdout %q", r.stdout)
	}
	if calls := cloudCalls(t, m); len(calls) != 1 || !calls[0].DryRun {
		t.Errorf("fake EC2 calls %+v, want one dry run", calls)
	}
	r = k.run(t, "", "cloudnode", "reboot", m.node)
	if want := `error: the server has no node action "reboot"; it serves: restart, start, stop` + "\n"; r.code != 1 || r.stderr != want {
		t.Errorf("unserved action: exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
}

func (k *pluginKubectl) testCompletion(t *testing.T) {
	one := newMachine(t, cloud.ProviderAWS, nil)
	two := newMachine(t, cloud.ProviderAWS, nil)
	pluginWaitListed(t, "", []string{one.node, two.node})
	// The two names differ only after their common prefix.
	prefix := one.node[:strings.LastIndex(one.node, "-")+1]
	// kubectl's own __complete finds kubectl_complete-restart on PATH and
	// passes it the words after the plugin name; the plugin reads the
	// cluster from KUBECONFIG.
	r := k.exec(t, []string{"KUBECONFIG=" + env.cluster.Kubeconfig()}, "", "__complete", "restart", one.node, prefix)
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	// The node already on the command line is not offered again.
	if !slices.Contains(got, two.node) || slices.Contains(got, one.node) || got[len(got)-1] != ":4" {
		t.Fatalf("kubectl __complete restart %s %s = %q, want %s and no file completion (:4)\nstderr:\n%s", one.node, prefix, got, two.node, r.stderr)
	}
	for _, g := range got[:len(got)-1] {
		if !strings.HasPrefix(g, prefix) {
			t.Errorf("suggestion %q does not start with %q", g, prefix)
		}
	}
}

func pluginSetStatus(t *testing.T, node string, ready bool, bootID string) {
	t.Helper()
	if err := env.cluster.SetNodeStatus(t.Context(), node, ready, bootID); err != nil {
		t.Fatal(err)
	}
}

// pluginWaitListed waits until the product's node view, served from its
// informer, lists exactly these nodes for the selector, or at least these
// for none: nodes just created may not be in its cache yet.
func pluginWaitListed(t *testing.T, selector string, names []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var last string
	for {
		list := &infraopsv1.NodeList{}
		err := env.kube.CoreV1().RESTClient().Get().AbsPath("/apis/infraops.michael.io/v1/nodes").
			Param("labelSelector", selector).Do(ctx).Into(list)
		if err == nil {
			var listed []string
			for _, n := range list.Items {
				listed = append(listed, n.Name)
			}
			all := !slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(listed, n) })
			if all && (selector == "" || len(listed) == len(names)) {
				return
			}
			last = fmt.Sprintf("listed %q", listed)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the node view never listed %q for %q: %s", names, selector, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pluginKubectl runs the cluster's kubectl with the plugin first on PATH.
type pluginKubectl struct {
	binDir string
	home   string
}

func newPluginKubectl(t *testing.T) *pluginKubectl {
	t.Helper()
	if env.cluster.KubectlPath() == "" {
		t.Fatal("no kubectl: build it with hack/build-k8s-binaries.sh")
	}
	return &pluginKubectl{binDir: pluginBinDir(t), home: t.TempDir()}
}

type pluginResult struct {
	code           int
	stdout, stderr string
}

func (r pluginResult) ok(t *testing.T) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// run is `kubectl <plugin> --kubeconfig <admin> args…` with stdin. The
// flag goes after the plugin name: kubectl refuses flags before it, and
// hands everything after it to the plugin.
func (k *pluginKubectl) run(t *testing.T, stdin, plugin string, args ...string) pluginResult {
	t.Helper()
	return k.exec(t, nil, stdin, append([]string{plugin, "--kubeconfig", env.cluster.Kubeconfig()}, args...)...)
}

// runEnv is `kubectl <plugin> args…` with extra environment.
func (k *pluginKubectl) runEnv(t *testing.T, extraEnv []string, stdin, plugin string, args ...string) pluginResult {
	t.Helper()
	return k.exec(t, extraEnv, stdin, append([]string{plugin}, args...)...)
}

func (k *pluginKubectl) exec(t *testing.T, extraEnv []string, stdin string, args ...string) pluginResult {
	t.Helper()
	cmd := k.command(t.Context(), extraEnv, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return pluginResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// command is kubectl with the plugin first on PATH, a HOME of its own (the
// plugin's discovery cache goes there) and no KUBECONFIG unless extraEnv
// sets one.
func (k *pluginKubectl) command(ctx context.Context, extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, env.cluster.KubectlPath(), args...)
	vars := []string{
		"PATH=" + k.binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + k.home,
	}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "PATH" && name != "HOME" && name != "KUBECONFIG" {
			vars = append(vars, kv)
		}
	}
	cmd.Env = append(vars, extraEnv...)
	return cmd
}

// pluginBinDir is a folder for PATH holding kubectl-restart, the same
// binary as kubectl-cloudnode, and their completion scripts, as they are
// installed. The binary is the suite's (env.binDir) when it has it, else
// built from ./cmd now.
func pluginBinDir(t *testing.T) string {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(env.binDir, "kubectl-restart")
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
		bin = filepath.Join(dir, "build", "kubectl-restart")
		cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/kubectl-restart")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/kubectl-restart: %v\n%s", err, out)
		}
	}
	pathDir := filepath.Join(dir, "path")
	if err := os.MkdirAll(pathDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"kubectl-restart":            bin,
		"kubectl-cloudnode":          bin,
		"kubectl_complete-restart":   filepath.Join(root, "cmd", "kubectl-restart", "kubectl_complete-restart"),
		"kubectl_complete-cloudnode": filepath.Join(root, "cmd", "kubectl-restart", "kubectl_complete-cloudnode"),
	} {
		if err := os.Symlink(target, filepath.Join(pathDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return pathDir
}
