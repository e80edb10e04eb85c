// Package e2e runs the product behind a real kube-apiserver's aggregator,
// with real etcd, real RBAC and the real kubectl, against the fake clouds.
// One cluster and one product serve the whole package (see TestMain); each
// test makes its own nodes, so tests do not meet each other's locks.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/alibabacloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/gce"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

// env is the shared test environment.
var env struct {
	cluster *cluster.Cluster
	product *cluster.Product
	kube    kubernetes.Interface
	// binDir holds the product's binaries (server, fake-cloud, plugin).
	binDir string
	// fakeHTTP trusts the fake clouds' CA, for their /_fake/ endpoints.
	fakeHTTP *http.Client
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	logf := func(format string, args ...any) { fmt.Printf("e2e: "+format+"\n", args...) }
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "e2e: setting up: %v\n", err)
		return 1
	}
	begin := time.Now()

	repo, err := cluster.RepoRoot()
	if err != nil {
		return fail(err)
	}
	k8sBin, err := cluster.BinDir(ctx, repo, logf)
	if err != nil {
		return fail(err)
	}
	work, err := os.MkdirTemp("", "k8s-cloud-node-manager-e2e-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(work)

	env.binDir = os.Getenv("PRODUCT_BIN_DIR")
	if env.binDir == "" {
		env.binDir = filepath.Join(work, "bin")
		build := exec.CommandContext(ctx, "go", "build", "-o", env.binDir+"/", "./cmd/...")
		build.Dir, build.Stdout, build.Stderr = repo, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fail(fmt.Errorf("building the product: %w", err))
		}
	}

	c, err := cluster.Start(ctx, cluster.Options{WorkDir: filepath.Join(work, "cluster"), BinDir: k8sBin, Logf: logf})
	if err != nil {
		return fail(err)
	}
	defer c.Stop()
	t := c.Timings()
	logf("figures: kube-apiserver ready in %s (etcd healthy %s)", t.APIServerReady.Round(time.Millisecond), t.EtcdHealthy.Round(time.Millisecond))

	// The suite's safety policy (policy_test.go): its rules select only
	// nodes labelled for them, so other tests meet none.
	policyFile := filepath.Join(work, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(e2ePolicy(time.Now())), 0o600); err != nil {
		return fail(err)
	}
	p, err := c.StartProduct(ctx, cluster.ProductOptions{
		ServerBinary:    filepath.Join(env.binDir, "k8s-cloud-node-manager"),
		FakeCloudBinary: filepath.Join(env.binDir, "fake-cloud"),
		// Short enough that a test can wait a cooldown out; the node name
		// is the "machine this replica runs on" of TestRestartTheReplicasOwnNode.
		ExtraServerArgs: []string{"--action-cooldown=20s", "--node-name=" + replicaHostNode, "--policy-config=" + policyFile},
		Azure:           true,
	})
	if err != nil {
		return fail(err)
	}
	logf("figures: APIService Available and serving %s after the server started; whole setup %s",
		p.Available.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))

	// kube-apiserver downloads the server's OpenAPI v3 on its own schedule
	// (its first try may meet a server still starting); kubectl explain
	// needs it.
	openAPIBegin := time.Now()
	for {
		out, _ := c.Kubectl(ctx, "get", "--raw", "/openapi/v3")
		if strings.Contains(string(out), `"apis/infraops.michael.io/v1"`) {
			break
		}
		if time.Since(openAPIBegin) > 2*time.Minute {
			return fail(fmt.Errorf("kube-apiserver never aggregated the OpenAPI v3 of infraops.michael.io/v1"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	logf("figures: OpenAPI v3 aggregated %s after Available", time.Since(openAPIBegin).Round(time.Millisecond))

	cfg, err := providers.LoadConfig(p.CloudConfig)
	if err != nil {
		return fail(err)
	}
	caPEM, err := os.ReadFile(cfg.Providers[cloud.ProviderAWS].CAFile)
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	env.fakeHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	env.cluster, env.product = c, p
	if env.kube, err = kubernetes.NewForConfig(c.RESTConfig()); err != nil {
		return fail(err)
	}
	code := m.Run()
	if code != 0 {
		logf("server log: %s\n%s", p.Server.LogPath(), p.Server.LogTail(40))
	}
	return code
}

var nodeSeq atomic.Int64

// machine is a Node with a machine behind it at the fake cloud.
type machine struct {
	node, instanceID, provider, region string
}

// newMachine creates a Node whose machine the fake cloud knows (running),
// with a name and instance ID of its own.
func newMachine(t *testing.T, provider string, labels map[string]string) machine {
	t.Helper()
	return newNamedMachine(t, provider, "", labels)
}

// newNamedMachine is newMachine with the Node's name given (when not "").
func newNamedMachine(t *testing.T, provider, name string, labels map[string]string) machine {
	t.Helper()
	n := nodeSeq.Add(1)
	m := machine{provider: provider}
	var providerID string
	l := map[string]string{}
	switch provider {
	case cloud.ProviderAWS:
		m.instanceID, m.region = fmt.Sprintf("i-0e2e%013x", n), "us-east-1"
		providerID = "aws:///us-east-1a/" + m.instanceID
		l["topology.kubernetes.io/region"] = "us-east-1"
	case cloud.ProviderTencentCloud:
		m.instanceID, m.region = fmt.Sprintf("ins-e2e%05d", n), "ap-guangzhou"
		providerID = "qcloud:///100003/" + m.instanceID
		l["topology.kubernetes.io/region"] = "gz"
	case alibabacloud.Name:
		// ACK's form, with no scheme.
		m.instanceID, m.region = fmt.Sprintf("i-bp1e2e%015d", n), "cn-hangzhou"
		providerID = m.region + "." + m.instanceID
		l["topology.kubernetes.io/region"] = m.region
	case gce.Name:
		m.instanceID, m.region = fmt.Sprintf("e2e-vm-%d", n), "europe-west4"
		providerID = "gce://" + gceE2EProject + "/" + gceE2EZone + "/" + m.instanceID
		l["topology.kubernetes.io/region"] = "europe-west4"
	default:
		t.Fatalf("unknown provider %q", provider)
	}
	for k, v := range labels {
		l[k] = v
	}
	m.node = fmt.Sprintf("e2e-%s-%d", strings.ToLower(t.Name()[:min(len(t.Name()), 30)]), n)
	m.node = strings.NewReplacer("/", "-", "_", "-").Replace(m.node)
	if name != "" {
		m.node = name
	}
	instance := map[string]string{"id": m.instanceID, "region": m.region}
	if provider == gce.Name {
		instance["project"], instance["zone"] = gceE2EProject, gceE2EZone
	}
	fakePost(t, provider, "/_fake/instances", instance)
	ctx := context.Background()
	if _, err := env.cluster.CreateNode(ctx, m.node, providerID, l); err != nil {
		t.Fatal(err)
	}
	if err := env.cluster.SetNodeStatus(ctx, m.node, true, "boot-"+m.node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.kube.CoreV1().Nodes().Delete(context.Background(), m.node, metav1.DeleteOptions{}) })
	return m
}

// Where the e2e GCE machines are.
const (
	gceE2EProject = "e2e-project-1"
	gceE2EZone    = "europe-west4-b"
)

var deleteNow = metav1.DeleteOptions{}

func fakeURL(provider string) string {
	switch provider {
	case cloud.ProviderAWS:
		return env.product.EC2URL
	case alibabacloud.Name:
		return env.product.ECSURL
	case gce.Name:
		return env.product.GCEURL
	}
	return env.product.CVMURL
}

func fakePost(t *testing.T, provider, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := env.fakeHTTP.Post(fakeURL(provider)+path, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("fake cloud %s: %s", path, resp.Status)
	}
}

// cloudCalls are the calls the fake cloud recorded for a machine.
func cloudCalls(t *testing.T, m machine) []fakecloud.Call {
	t.Helper()
	resp, err := env.fakeHTTP.Get(fakeURL(m.provider) + "/_fake/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []fakecloud.Call
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	var out []fakecloud.Call
	for _, c := range all {
		for _, id := range c.InstanceIDs {
			if id == m.instanceID {
				out = append(out, c)
			}
		}
	}
	return out
}

// reboots counts the reboots the cloud accepted for a machine.
func reboots(t *testing.T, m machine) int {
	t.Helper()
	n := 0
	for _, c := range cloudCalls(t, m) {
		if (c.Action == "RebootInstances" || c.Action == "RebootInstance" || c.Action == fakecloud.GCEMethodReset) && !c.DryRun && !c.Replay && c.Error == "" {
			n++
		}
	}
	return n
}

// kubectl runs the cluster's kubectl with a kubeconfig (admin when "").
func kubectl(t *testing.T, kubeconfig string, stdin string, args ...string) (string, error) {
	t.Helper()
	if kubeconfig == "" {
		kubeconfig = env.cluster.Kubeconfig()
	}
	cmd := exec.Command(env.cluster.KubectlPath(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), "PATH="+env.binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// serviceAccountKubeconfig creates a ServiceAccount with the given rules
// (none when nil) bound cluster-wide, and returns a kubeconfig with its token.
func serviceAccountKubeconfig(t *testing.T, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	ctx := context.Background()
	ns := "e2e-users"
	if err := env.cluster.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := env.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := "e2e-" + name
	// Gone after the test, so a rerun in the same cluster (-count) starts clean.
	t.Cleanup(func() {
		ctx := context.Background()
		_ = env.kube.CoreV1().ServiceAccounts(ns).Delete(ctx, name, metav1.DeleteOptions{})
		_ = env.kube.RbacV1().ClusterRoleBindings().Delete(ctx, role, metav1.DeleteOptions{})
		_ = env.kube.RbacV1().ClusterRoles().Delete(ctx, role, metav1.DeleteOptions{})
	})
	if rules != nil {
		if _, err := env.kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role}, Rules: rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	token, err := kubectl(t, "", "", "create", "token", "-n", ns, name)
	if err != nil {
		t.Fatalf("kubectl create token: %v: %s", err, token)
	}
	admin, err := clientcmd.LoadFromFile(env.cluster.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	var clusterName string
	for n := range admin.Clusters {
		clusterName = n
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = admin.Clusters[clusterName]
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: strings.TrimSpace(token)}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// timed logs how long a test took, for the figures in the test output.
func timed(t *testing.T) {
	begin := time.Now()
	t.Cleanup(func() { t.Logf("figure: %s took %s", t.Name(), time.Since(begin).Round(time.Millisecond)) })
}
