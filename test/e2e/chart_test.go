package e2e

// The chart and the manifests rendered from it, on a real kube-apiserver:
//
//   - helm install / upgrade of the chart (tls.mode=helm keeps its CA across
//     an upgrade through lookup) and helm uninstall;
//   - config/deploy/k8s-cloud-node-manager.yaml applied with kubectl, every
//     object really created, then hack/gen-serving-cert.sh creating the
//     serving Secret and patching the APIService's caBundle;
//   - kube-apiserver's own authorizer asked what the chart's ServiceAccount
//     may and may not do;
//   - config/deploy/out-of-cluster/ applied, and the server run with nothing
//     but the ServiceAccount's token (kubectl create token): listing,
//     restarting, the lock Lease's create/get/update/delete and the Events
//     all work with exactly the chart's RBAC, and the server logs no
//     "forbidden";
//   - the chart's user roles (read, node-restarter) bound to users and
//     checked through the aggregated API.
//
// This test starts a cluster of its own beside the suite's (TestMain): the
// manifests register the same APIService name and Service the shared
// product uses, and the server here must run with other credentials. It
// reuses the suite's binaries (env.binDir, env.cluster.BinDir()).
//
// No controller-manager runs, so the Deployment never gets pods and the
// aggregation of the read role into "view" is not computed; the first is
// replaced by the out-of-cluster server, the second is checked on the
// rendered label by test/chart.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

// Names the plain manifests use (release k8s-cloud-node-manager in namespace
// k8s-cloud-node-manager), which are also the harness's registration names.
const (
	chartNS          = cluster.Namespace
	chartSA          = "k8s-cloud-node-manager"
	chartTLSSecret   = "k8s-cloud-node-manager-tls"
	chartAPIService  = "v1." + cluster.Group
	chartViewRole    = "k8s-cloud-node-manager-view"
	chartRestartRole = "k8s-cloud-node-manager-node-restarter"
)

// Machines and Nodes added to the demo ones for this test: a spare EC2
// machine for dry runs, and a Node whose instance the cloud does not know.
const (
	chartSpareInstance = "i-0fedcba9876543210"
	chartSpareNode     = "ip-10-0-9-9.ec2.internal"
	chartGhostNode     = "ip-10-0-6-6.ec2.internal"
)

func TestChartOnRealCluster(t *testing.T) {
	ctx := t.Context()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	timed(t)
	// The suite's binaries (TestMain): the same kube-apiserver, etcd and
	// kubectl, and the product built once.
	binDir := env.cluster.BinDir()
	serverBin := filepath.Join(env.binDir, "k8s-cloud-node-manager")
	fakeCloudBin := filepath.Join(env.binDir, "fake-cloud")
	helm := chartHelmBin(t, root)

	c, err := cluster.Start(ctx, cluster.Options{WorkDir: t.TempDir(), BinDir: binDir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last lines of %s ---\n%s", c.APIServer().LogPath(), c.APIServer().LogTail(40))
		}
		c.Stop()
	})
	if c.KubectlPath() == "" {
		t.Fatal("no kubectl: build it with hack/build-k8s-binaries.sh or put one on PATH")
	}
	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// Subtests run in order and depend on each other: each leaves the
	// cluster in the state the next one starts from.
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"HelmInstallUpgradeUninstall", func(t *testing.T) { chartHelmLifecycle(t, c, kube, helm, root) }},
		{"PlainManifestsCreated", func(t *testing.T) { chartApplyPlainManifests(t, c, kube, root) }},
		{"ServiceAccountPermissions", func(t *testing.T) { chartCheckServiceAccountAccess(t, kube) }},
		{"ServerWithServiceAccountToken", func(t *testing.T) {
			chartRunServerWithToken(t, c, kube, root, serverBin, fakeCloudBin)
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.Fatalf("%s failed; later steps depend on it", s.name)
		}
	}
}

// chartHelmLifecycle installs the chart with helm (tls.mode=helm), checks
// that an upgrade keeps the generated CA (lookup), and uninstalls it, which
// must remove the cluster-scoped APIService too.
func chartHelmLifecycle(t *testing.T, c *cluster.Cluster, kube kubernetes.Interface, helm, root string) {
	ctx := t.Context()
	const ns, rel = "helm-e2e", "e2e"
	full := rel + "-k8s-cloud-node-manager"
	chart := filepath.Join(root, "config", "chart", "k8s-cloud-node-manager")
	helmEnv := chartHelmEnv(t, c)

	out := chartRun(t, helmEnv, helm, "install", rel, chart, "--namespace", ns, "--create-namespace")
	t.Logf("helm install:\n%s", out)
	if !strings.Contains(out, chartAPIService) || !strings.Contains(out, "kubectl create --raw") {
		t.Fatalf("helm install did not print the chart's NOTES:\n%s", out)
	}
	secret := func() *corev1.Secret {
		t.Helper()
		s, err := kube.CoreV1().Secrets(ns).Get(ctx, full+"-tls", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := secret()
	caBundle := func() []byte {
		t.Helper()
		return chartAPIServiceCABundle(t, c, chartAPIService)
	}
	if !bytes.Equal(caBundle(), first.Data["ca.crt"]) {
		t.Fatal("after helm install the APIService's caBundle is not the generated CA")
	}
	chartVerifyServing(t, first.Data["tls.crt"], first.Data["ca.crt"], full+"."+ns+".svc")

	chartRun(t, helmEnv, helm, "upgrade", rel, chart, "--namespace", ns, "--set", "logging.verbosity=2")
	second := secret()
	if !bytes.Equal(first.Data["ca.crt"], second.Data["ca.crt"]) || !bytes.Equal(first.Data["tls.key"], second.Data["tls.key"]) {
		t.Fatal("helm upgrade generated a new CA or key: the lookup of the existing Secret did not work")
	}
	if !bytes.Equal(caBundle(), first.Data["ca.crt"]) {
		t.Fatal("after helm upgrade the APIService's caBundle changed")
	}
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, full, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !chartContains(d.Spec.Template.Spec.Containers[0].Args, "--v=2") {
		t.Fatalf("helm upgrade did not reach the Deployment: %v", d.Spec.Template.Spec.Containers[0].Args)
	}

	chartRun(t, helmEnv, helm, "uninstall", rel, "--namespace", ns)
	dyn := chartDynamic(t, c)
	if _, err := dyn.Resource(chartAPIServiceGVR).Get(ctx, chartAPIService, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the APIService survived helm uninstall: %v", err)
	}
	if _, err := kube.RbacV1().RoleBindings("kube-system").Get(ctx, full+":extension-apiserver-authentication-reader", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the kube-system RoleBinding survived helm uninstall: %v", err)
	}
}

// chartApplyPlainManifests applies config/deploy/k8s-cloud-node-manager.yaml
// as a user without Helm would, checks every object exists, and runs
// hack/gen-serving-cert.sh to provide the Secret and the caBundle.
func chartApplyPlainManifests(t *testing.T, c *cluster.Cluster, kube kubernetes.Interface, root string) {
	ctx := t.Context()
	file := filepath.Join(root, "config", "deploy", "k8s-cloud-node-manager.yaml")
	if out, err := c.Kubectl(ctx, "apply", "-f", file); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("kubectl apply:\n%s", out)
	}
	objs := chartReadObjects(t, file)
	dyn := chartDynamic(t, c)
	mapper := chartMapper(t, c)
	for _, o := range objs {
		got := chartGet(t, dyn, mapper, o)
		if got == nil {
			t.Fatalf("%s %s/%s was not created", o.GetKind(), o.GetNamespace(), o.GetName())
		}
	}
	t.Logf("%d objects of config/deploy/k8s-cloud-node-manager.yaml exist", len(objs))
	if _, ok, _ := unstructured.NestedFieldNoCopy(chartGet(t, dyn, mapper, chartFind(t, objs, "APIService", chartAPIService)).Object, "spec", "caBundle"); ok {
		t.Fatal("the APIService has a caBundle before gen-serving-cert.sh ran")
	}

	// The documented next step: the serving certificate Secret and the CA.
	script := filepath.Join(root, "hack", "gen-serving-cert.sh")
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, script, "--out-dir", dir)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig(), "KUBECTL="+c.KubectlPath())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen-serving-cert.sh: %v\n%s", err, out)
	}
	s, err := kube.CoreV1().Secrets(chartNS).Get(ctx, chartTLSSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("gen-serving-cert.sh did not create the Secret the Deployment mounts: %v", err)
	}
	if s.Type != corev1.SecretTypeTLS {
		t.Fatalf("Secret type %s", s.Type)
	}
	chartVerifyServing(t, s.Data["tls.crt"], s.Data["ca.crt"], cluster.ServiceName+"."+chartNS+".svc")
	if !bytes.Equal(chartAPIServiceCABundle(t, c, chartAPIService), s.Data["ca.crt"]) {
		t.Fatal("gen-serving-cert.sh did not put the CA in the APIService's caBundle")
	}
}

// chartCheckServiceAccountAccess asks kube-apiserver's authorizer, with the
// RBAC objects as created, what the chart's ServiceAccount may do: all that
// the server needs, none of the near misses.
func chartCheckServiceAccountAccess(t *testing.T, kube kubernetes.Interface) {
	type access struct {
		group, resource, sub, verb, ns, name string
	}
	allowed := []access{
		{"", "nodes", "", "get", "", ""},
		{"", "nodes", "", "list", "", ""},
		{"", "nodes", "", "watch", "", ""},
		{"", "events", "", "create", "default", ""},
		{"", "events", "", "patch", "default", ""},
		{"coordination.k8s.io", "leases", "", "create", chartNS, ""},
		{"coordination.k8s.io", "leases", "", "get", chartNS, "node-action-x"},
		{"coordination.k8s.io", "leases", "", "update", chartNS, "node-action-x"},
		{"coordination.k8s.io", "leases", "", "delete", chartNS, "node-action-x"},
		// Every replica follows the nodes' lastAction records (Leases of
		// its namespace) with an informer; the policy counts a budget's
		// slot Leases by label.
		{"coordination.k8s.io", "leases", "", "list", chartNS, ""},
		{"coordination.k8s.io", "leases", "", "watch", chartNS, ""},
		{"authentication.k8s.io", "tokenreviews", "", "create", "", ""},
		{"authorization.k8s.io", "subjectaccessreviews", "", "create", "", ""},
		{"", "configmaps", "", "get", "kube-system", "extension-apiserver-authentication"},
		// The informer lists and watches that one ConfigMap by name (a
		// metadata.name field selector), which is what resourceNames allows.
		{"", "configmaps", "", "list", "kube-system", "extension-apiserver-authentication"},
		{"", "configmaps", "", "watch", "kube-system", "extension-apiserver-authentication"},
	}
	denied := []access{
		{"", "nodes", "", "update", "", ""},
		{"", "nodes", "", "patch", "", ""},
		{"", "nodes", "", "delete", "", ""},
		{"", "nodes", "status", "patch", "", ""},
		{"", "events", "", "update", "default", ""},
		{"", "events", "", "delete", "default", ""},
		{"coordination.k8s.io", "leases", "", "list", "kube-system", ""},
		{"coordination.k8s.io", "leases", "", "patch", chartNS, "node-action-x"},
		{"coordination.k8s.io", "leases", "", "create", "kube-system", ""},
		{"coordination.k8s.io", "leases", "", "update", "default", "node-action-x"},
		{"", "configmaps", "", "get", "kube-system", "coredns"},
		{"", "configmaps", "", "get", chartNS, "k8s-cloud-node-manager-config"},
		{"", "secrets", "", "get", chartNS, chartTLSSecret},
		{"", "secrets", "", "list", "kube-system", ""},
		{"", "pods", "", "list", "", ""},
		{cluster.Group, "nodes", "restart", "create", "", "any-node"},
		{cluster.Group, "nodes", "", "list", "", ""},
	}
	user := "system:serviceaccount:" + chartNS + ":" + chartSA
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + chartNS, "system:authenticated"}
	check := func(a access, want bool) {
		t.Helper()
		sar, err := kube.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   user,
				Groups: groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Group: a.group, Resource: a.resource, Subresource: a.sub, Verb: a.verb, Namespace: a.ns, Name: a.name,
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != want {
			t.Errorf("%s %s %s/%s in %q (name %q): allowed=%v, want %v (%s)",
				a.verb, a.group, a.resource, a.sub, a.ns, a.name, sar.Status.Allowed, want, sar.Status.Reason)
		}
	}
	for _, a := range allowed {
		check(a, true)
	}
	for _, a := range denied {
		check(a, false)
	}
}

// chartRunServerWithToken switches the registration to the out-of-cluster
// manifests, starts the server with the ServiceAccount's token as its only
// credential, and drives every code path that talks to kube-apiserver.
func chartRunServerWithToken(t *testing.T, c *cluster.Cluster, kube kubernetes.Interface, root, serverBin, fakeCloudBin string) {
	ctx := t.Context()

	// The in-cluster ClusterIP Service cannot be reached from here (no
	// kube-proxy, no pods): replace it with the out-of-cluster variant.
	if err := kube.CoreV1().Services(chartNS).Delete(ctx, cluster.ServiceName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The harness signs the server's certificate with its extension CA:
	// that CA replaces the documented ${CA_BUNDLE} placeholder.
	_, _, caPEM, err := c.NewServingCert([]string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	oocDir := filepath.Join(root, "config", "deploy", "out-of-cluster")
	entries, err := os.ReadDir(oocDir)
	if err != nil {
		t.Fatal(err)
	}
	staged := t.TempDir()
	sawPlaceholder := false
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(oocDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("caBundle: ${CA_BUNDLE}")) {
			sawPlaceholder = true
			data = bytes.ReplaceAll(data, []byte("caBundle: ${CA_BUNDLE}"),
				[]byte("caBundle: "+chartB64(caPEM)))
		}
		if err := os.WriteFile(filepath.Join(staged, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !sawPlaceholder {
		t.Fatal("no caBundle placeholder in config/deploy/out-of-cluster")
	}
	if out, err := c.Kubectl(ctx, "apply", "-f", staged); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("kubectl apply out-of-cluster:\n%s", out)
	}
	svc, err := kube.CoreV1().Services(chartNS).Get(ctx, cluster.ServiceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeExternalName || svc.Spec.ExternalName != "localhost" {
		t.Fatalf("out-of-cluster Service %+v", svc.Spec)
	}

	// The server's only credential: a token of the chart's ServiceAccount.
	tokenOut, err := c.Kubectl(ctx, "-n", chartNS, "create", "token", chartSA, "--duration=1h")
	if err != nil {
		t.Fatal(err)
	}
	saKubeconfig := chartTokenKubeconfig(t, c, strings.TrimSpace(string(tokenOut)))

	nodes := append(cluster.DemoNodes(),
		cluster.NodeSpec{
			Name: chartSpareNode, ProviderID: "aws:///us-east-1c/" + chartSpareInstance,
			Labels: map[string]string{"topology.kubernetes.io/region": "us-east-1"}, Ready: true, BootID: "boot-spare",
		},
		cluster.NodeSpec{
			Name: chartGhostNode, ProviderID: "aws:///us-east-1c/i-0000000000000dead",
			Labels: map[string]string{"topology.kubernetes.io/region": "us-east-1"}, Ready: true, BootID: "boot-ghost",
		},
	)
	instances := append(cluster.DemoInstances(),
		cluster.FakeInstance{Provider: "aws", Region: "us-east-1", ID: chartSpareInstance, State: "running"})
	// The harness's own flags come first; pflag keeps the last value of a
	// repeated flag, so these replace its admin kubeconfig everywhere.
	p, err := c.StartProduct(ctx, cluster.ProductOptions{
		ServerBinary:    serverBin,
		FakeCloudBinary: fakeCloudBin,
		Nodes:           nodes,
		Instances:       instances,
		ExtraServerArgs: []string{
			"--kubeconfig=" + saKubeconfig,
			"--authentication-kubeconfig=" + saKubeconfig,
			"--authorization-kubeconfig=" + saKubeconfig,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last lines of %s ---\n%s", p.Server.LogPath(), p.Server.LogTail(60))
		}
	})
	for _, want := range []string{"--kubeconfig=" + saKubeconfig, "--authorization-kubeconfig=" + saKubeconfig} {
		if !chartContains(p.Server.Args(), want) {
			t.Fatalf("server args %v lack %s", p.Server.Args(), want)
		}
	}

	admin := kube.CoreV1().RESTClient()
	// The nodes view: the informer's list and watch of Nodes.
	var list struct {
		Items []struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		} `json:"items"`
	}
	body, err := admin.Get().AbsPath("/apis", cluster.Group, cluster.Version, "nodes").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(nodes) {
		t.Fatalf("listed %d nodes, want %d", len(list.Items), len(nodes))
	}

	eks := cluster.DemoNodeEKS
	// Take the lock (Lease create) and reboot.
	chartExpectRestart(t, admin, eks, `{"reason":"chart e2e"}`, http.StatusAccepted)
	// Locked: Lease get finds it held.
	chartExpectRestart(t, admin, eks, `{"reason":"chart e2e again"}`, http.StatusConflict)

	// An expired lock of someone else: the server reads it and takes it
	// over with an update.
	tke := cluster.DemoNodeTKE
	leaseName := "node-action-" + tke
	past := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	if _, err := kube.CoordinationV1().Leases(chartNS).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: leaseName, Namespace: chartNS},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To("someone-else"), LeaseDurationSeconds: ptr.To[int32](1),
			AcquireTime: &past, RenewTime: &past,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The server cannot tell how old someone else's renewTime is on its
	// own clock (clocks may be skewed): it first holds the Lease for a
	// whole duration (1s) from when it first saw it, then takes it over.
	chartExpectRestart(t, admin, tke, `{"reason":"a lock first seen"}`, http.StatusConflict)
	time.Sleep(1500 * time.Millisecond)
	chartExpectRestart(t, admin, tke, `{"reason":"take over an expired lock"}`, http.StatusAccepted)
	lease, err := kube.CoordinationV1().Leases(chartNS).Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(lease.Spec.HolderIdentity, "") == "someone-else" {
		t.Fatal("the expired lock was not taken over (Lease update)")
	}

	// A machine the cloud does not know: the cloud did nothing, so the
	// lock is released (Lease delete) and a retry meets the same answer,
	// not a locked node.
	chartExpectRestart(t, admin, chartGhostNode, `{"reason":"ghost"}`, http.StatusUnprocessableEntity)
	if _, err := kube.CoordinationV1().Leases(chartNS).Get(ctx, "node-action-"+chartGhostNode, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the lock of the failed restart was not released: %v", err)
	}
	chartExpectRestart(t, admin, chartGhostNode, `{"reason":"ghost again"}`, http.StatusUnprocessableEntity)

	// Events on the Nodes (created asynchronously by the recorder).
	chartWaitEvent(t, kube, eks, "RestartRequested")
	chartWaitEvent(t, kube, chartGhostNode, "RestartFailed")

	// The chart's user roles, bound as rbac.restarters / rbac.viewers
	// would, checked through the aggregated API with impersonation.
	chartBind(t, kube, "e2e-viewer", chartViewRole)
	chartBind(t, kube, "e2e-restarter", chartRestartRole)
	as := func(user string) rest.Interface {
		cfg := rest.CopyConfig(c.RESTConfig())
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		k, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return k.CoreV1().RESTClient()
	}
	dry := `{"dryRun":["All"],"reason":"rbac check"}`
	if _, err := as("e2e-viewer").Get().AbsPath("/apis", cluster.Group, cluster.Version, "nodes").DoRaw(ctx); err != nil {
		t.Fatalf("the read role cannot list: %v", err)
	}
	chartExpectRestart(t, as("e2e-viewer"), chartSpareNode, dry, http.StatusForbidden)
	chartExpectRestart(t, as("e2e-restarter"), chartSpareNode, dry, http.StatusAccepted)
	chartExpectRestart(t, as("e2e-nobody"), chartSpareNode, dry, http.StatusForbidden)
	if _, err := as("e2e-restarter").Get().AbsPath("/apis", cluster.Group, cluster.Version, "nodes").DoRaw(ctx); !apierrors.IsForbidden(err) {
		t.Fatalf("node-restarter also grants reading: %v", err)
	}

	// Whatever else the server tried on kube-apiserver was allowed: a
	// missing rule shows up as "forbidden" in its log (reflector, event
	// sink, lock), even where the request itself succeeded.
	chartNoForbidden(t, p.Server.LogPath())
}

// chartExpectRestart POSTs nodes/{name}/restart and checks the status code.
func chartExpectRestart(t *testing.T, client rest.Interface, node, body string, want int) {
	t.Helper()
	var code int
	res := client.Post().AbsPath("/apis", cluster.Group, cluster.Version, "nodes", node, "restart").
		SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(t.Context())
	res.StatusCode(&code)
	if code != want {
		raw, _ := res.Raw()
		t.Fatalf("restart %s: HTTP %d, want %d: %v %s", node, code, want, res.Error(), raw)
	}
}

func chartWaitEvent(t *testing.T, kube kubernetes.Interface, node, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		evs, err := kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + node + ",reason=" + reason,
		})
		if err == nil && len(evs.Items) > 0 {
			if src := evs.Items[0].Source.Component; src != "k8s-cloud-node-manager" {
				t.Fatalf("event %s on %s from %q", reason, node, src)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s event on Node %s (last error %v): the server could not create it", reason, node, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func chartBind(t *testing.T, kube kubernetes.Interface, user, role string) {
	t.Helper()
	_, err := kube.RbacV1().ClusterRoleBindings().Create(t.Context(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func chartNoForbidden(t *testing.T, logPath string) {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		if l := sc.Text(); strings.Contains(strings.ToLower(l), "forbidden") {
			t.Errorf("the server met a permission error with the chart's RBAC: %s", l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines == 0 {
		t.Fatalf("empty server log %s: nothing to check", logPath)
	}
}

// chartTokenKubeconfig writes a kubeconfig for the test cluster whose only
// credential is the token.
func chartTokenKubeconfig(t *testing.T, c *cluster.Cluster, token string) string {
	t.Helper()
	if token == "" || strings.ContainsAny(token, " \n") {
		t.Fatalf("kubectl create token printed %q", token)
	}
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	ctxName := admin.CurrentContext
	clusterName := admin.Contexts[ctxName].Cluster
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = admin.Clusters[clusterName]
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

var chartAPIServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

func chartAPIServiceCABundle(t *testing.T, c *cluster.Cluster, name string) []byte {
	t.Helper()
	obj, err := chartDynamic(t, c).Resource(chartAPIServiceGVR).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "insecureSkipTLSVerify"); ok && v == true {
		t.Fatal("APIService with insecureSkipTLSVerify")
	}
	s, _, _ := unstructured.NestedString(obj.Object, "spec", "caBundle")
	b, err := chartUnB64(s)
	if err != nil {
		t.Fatalf("caBundle: %v", err)
	}
	return b
}

// chartVerifyServing checks the serving certificate as kube-apiserver's
// proxy will: signed by the CA, valid for the Service's DNS name.
func chartVerifyServing(t *testing.T, certPEM, caPEM []byte, dnsName string) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no CA certificate in %q", caPEM)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("tls.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("serving certificate for %s: %v", dnsName, err)
	}
}

func chartDynamic(t *testing.T, c *cluster.Cluster) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func chartMapper(t *testing.T, c *cluster.Cluster) meta.RESTMapper {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
}

// chartGet reads an object back from the cluster; nil when it is absent.
func chartGet(t *testing.T, dyn dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("%s: %v", gvk, err)
	}
	var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		r = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	got, err := r.Get(t.Context(), o.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func chartFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in the manifests", kind, name)
	return nil
}

func chartReadObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if len(obj) > 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// chartHelmBin is $HELM_BIN, else the helm hack/build-helm.sh builds or
// finds in its cache. Missing helm fails the test; it is never skipped.
func chartHelmBin(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("HELM_BIN"); p != "" {
		return p
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "hack", "build-helm.sh"))
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/build-helm.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// chartHelmEnv points helm at the test cluster, with private state folders.
func chartHelmEnv(t *testing.T, c *cluster.Cluster) []string {
	tmp := t.TempDir()
	return append(os.Environ(),
		"KUBECONFIG="+c.Kubeconfig(),
		"HELM_CACHE_HOME="+filepath.Join(tmp, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(tmp, "config"),
		"HELM_DATA_HOME="+filepath.Join(tmp, "data"),
	)
}

func chartRun(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func chartContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func chartB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func chartUnB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
