package cluster

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// testBinDir gives the binaries from K8S_BIN_DIR or builds them: a missing
// toolchain must fail the suite, not skip it into a false green.
func testBinDir(t *testing.T) string {
	t.Helper()
	begin := time.Now()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := BinDir(t.Context(), root, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: binaries in %s after %s", dir, time.Since(begin).Round(time.Millisecond))
	return dir
}

// startTestCluster starts a cluster in a fresh directory and dumps the
// control plane's logs when the test fails.
func startTestCluster(t *testing.T) *Cluster {
	t.Helper()
	binDir := testBinDir(t)
	begin := time.Now()
	c, err := Start(t.Context(), Options{WorkDir: t.TempDir(), BinDir: binDir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []*Process{c.Etcd(), c.APIServer()} {
				t.Logf("--- last lines of %s ---\n%s", p.LogPath(), p.LogTail(40))
			}
		}
		c.Stop()
	})
	tm := c.Timings()
	t.Logf("timing: cluster started in %s (certificates %s, etcd healthy %s, kube-apiserver ready %s)",
		time.Since(begin).Round(time.Millisecond), tm.PKI.Round(time.Millisecond),
		tm.EtcdHealthy.Round(time.Millisecond), tm.APIServerReady.Round(time.Millisecond))
	return c
}

func TestCluster(t *testing.T) {
	c := startTestCluster(t)
	ctx := t.Context()
	client, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	if err := c.Readyz(ctx); err != nil {
		t.Fatal(err)
	}

	const (
		nodeName   = "e2e-node-1"
		providerID = "aws:///us-east-1a/i-0123456789abcdef0"
	)
	labels := map[string]string{"topology.kubernetes.io/region": "us-east-1"}
	phase := time.Now()
	if _, err := c.CreateNode(ctx, nodeName, providerID, labels); err != nil {
		t.Fatal(err)
	}
	if err := c.SetNodeStatus(ctx, nodeName, true, "boot-1"); err != nil {
		t.Fatal(err)
	}
	checkNode(t, client, nodeName, providerID, corev1.ConditionTrue, "boot-1")
	if err := c.SetNodeStatus(ctx, nodeName, false, "boot-2"); err != nil {
		t.Fatal(err)
	}
	checkNode(t, client, nodeName, providerID, corev1.ConditionFalse, "boot-2")
	t.Logf("timing: node created, status set twice and read back in %s", time.Since(phase).Round(time.Millisecond))

	phase = time.Now()
	out, err := c.Kubectl(ctx, "version", "--output=json")
	if err != nil {
		t.Fatal(err)
	}
	var versions struct {
		ClientVersion struct{ GitVersion string } `json:"clientVersion"`
		ServerVersion struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal(out, &versions); err != nil {
		t.Fatalf("kubectl version output %q: %v", out, err)
	}
	if v := versions.ServerVersion.GitVersion; !strings.HasPrefix(v, "v1.") {
		t.Errorf("kube-apiserver reports version %q; the build script's -ldflags stamping is missing", v)
	}
	if versions.ClientVersion.GitVersion != versions.ServerVersion.GitVersion {
		t.Logf("kubectl %s against kube-apiserver %s (not the kubectl built with the cluster)",
			versions.ClientVersion.GitVersion, versions.ServerVersion.GitVersion)
	}
	out, err = c.Kubectl(ctx, "get", "nodes", "--output=wide")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), nodeName) {
		t.Errorf("kubectl get nodes does not list %s:\n%s", nodeName, out)
	}
	t.Logf("timing: kubectl version and get nodes in %s (%s)", time.Since(phase).Round(time.Millisecond), versions.ServerVersion.GitVersion)

	t.Run("product wiring", func(t *testing.T) { testProductWiring(t, c) })

	phase = time.Now()
	if err := c.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: kube-apiserver restarted and ready in %s", time.Since(phase).Round(time.Millisecond))
	if err := c.Readyz(ctx); err != nil {
		t.Fatal(err)
	}
	checkNode(t, client, nodeName, providerID, corev1.ConditionFalse, "boot-2")
	if _, err := c.Kubectl(ctx, "get", "node", nodeName); err != nil {
		t.Fatal(err)
	}
	// The extension registered before the restart must be served again.
	api := ProductAPIService(0, nil)
	took, err := c.WaitAPIServiceAvailable(ctx, api.Name(), api.GroupVersionPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: APIService available again %s after kube-apiserver was ready", took.Round(time.Millisecond))
}

func checkNode(t *testing.T, client kubernetes.Interface, name, providerID string, ready corev1.ConditionStatus, bootID string) {
	t.Helper()
	node, err := client.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Spec.ProviderID != providerID {
		t.Errorf("providerID = %q, want %q", node.Spec.ProviderID, providerID)
	}
	if got := node.Labels["topology.kubernetes.io/region"]; got != "us-east-1" {
		t.Errorf("region label = %q", got)
	}
	if node.Status.NodeInfo.BootID != bootID {
		t.Errorf("bootID = %q, want %q", node.Status.NodeInfo.BootID, bootID)
	}
	var got corev1.ConditionStatus
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			got = cond.Status
		}
	}
	if got != ready {
		t.Errorf("Ready = %q, want %q", got, ready)
	}
}

// testProductWiring runs StartProduct with this test binary standing in
// for the fake cloud and the server (see stub_test.go).
func testProductWiring(t *testing.T, c *Cluster) {
	ctx := t.Context()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A real identity in the caller's environment must not reach the server.
	t.Setenv("AWS_PROFILE", "production")
	t.Setenv("AWS_SESSION_TOKEN", "real-token")
	t.Setenv("AZURE_CLIENT_SECRET", "real-secret")
	phase := time.Now()
	p, err := c.StartProduct(ctx, ProductOptions{
		ServerBinary:    self,
		FakeCloudBinary: self,
		ServerEnv:       []string{envStub + "=1"},
		FakeCloudEnv:    []string{envStub + "=1"},
		Azure:           true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: product wiring up in %s (APIService usable %s after the server started)",
		time.Since(phase).Round(time.Millisecond), p.Available.Round(time.Millisecond))

	out, err := c.Kubectl(ctx, "get", "--raw", "/apis/"+Group+"/"+Version)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"groupVersion":"`+Group+"/"+Version+`"`) {
		t.Errorf("discovery through kube-apiserver: %s", out)
	}
	client, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range DemoNodes() {
		node, err := client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Spec.ProviderID != n.ProviderID || node.Status.NodeInfo.BootID != n.BootID {
			t.Errorf("node %s: providerID %q bootID %q", n.Name, node.Spec.ProviderID, node.Status.NodeInfo.BootID)
		}
	}

	took, err := p.RestartServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: server restarted, APIService usable again after %s", took.Round(time.Millisecond))

	// The server keeps running: the caller restarts kube-apiserver next and
	// checks that the APIService is served again.
}

// A control plane that fails to start must say why (its log tail) and
// leave nothing running.
func TestStartFailureReportsLogAndCleansUp(t *testing.T) {
	binDir := testBinDir(t)
	bin := t.TempDir()
	if err := os.Symlink(filepath.Join(binDir, "etcd"), filepath.Join(bin, "etcd")); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho 'Error: simulated bad flag' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "kube-apiserver"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	workDir := t.TempDir()
	_, err := Start(t.Context(), Options{WorkDir: workDir, BinDir: bin, Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "simulated bad flag") {
		t.Fatalf("error %v, want the kube-apiserver log tail in it", err)
	}
	t.Logf("as reported: %v", err)
	// The work dir is free again: etcd was stopped and the lock released.
	lock, err := lockDir(filepath.Join(workDir, fileWorkDirLock))
	if err != nil {
		t.Fatal(err)
	}
	lock.Close()
	out, _ := exec.Command("pgrep", "-f", "--", "--data-dir="+filepath.Join(workDir, dirEtcdData)).Output()
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("etcd still runs after a failed Start: pids %s", out)
	}
}
