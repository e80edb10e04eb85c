package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

func restartPath(node string) string {
	return "/apis/infraops.michael.io/v1/nodes/" + node + "/restart"
}

// restart POSTs the subresource through kube-apiserver with client-go as
// admin. A failure is the server's Status as an *apierrors.StatusError.
func restart(t *testing.T, node, body string) (*infraopsv1.NodeAction, error) {
	t.Helper()
	return act(t, node, "restart", body)
}

// act POSTs any action as restart does.
func act(t *testing.T, node, action, body string) (*infraopsv1.NodeAction, error) {
	t.Helper()
	raw, err := env.kube.Discovery().RESTClient().Post().AbsPath(actionPath(node, action)).
		SetHeader("Content-Type", "application/json").Body([]byte(body)).DoRaw(context.Background())
	if err != nil {
		// DoRaw keeps the body but not the Status in it.
		var s metav1.Status
		if json.Unmarshal(raw, &s) == nil && s.Kind == "Status" {
			return nil, &apierrors.StatusError{ErrStatus: s}
		}
		return nil, err
	}
	var a infraopsv1.NodeAction
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", raw, err)
	}
	return &a, nil
}

func writeBody(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDiscoveryAndOpenAPI(t *testing.T) {
	timed(t)
	out, err := kubectl(t, "", "", "api-resources", "--api-group=infraops.michael.io", "-o", "wide")
	if err != nil || !strings.Contains(out, "nodes") || !strings.Contains(out, "infraops.michael.io/v1") || !strings.Contains(out, "get,list,watch") {
		t.Fatalf("kubectl api-resources: %v\n%s", err, out)
	}
	// kubectl api-resources hides subresources; discovery itself lists the
	// action with the verb RBAC uses.
	out, err = kubectl(t, "", "", "get", "--raw", "/apis/infraops.michael.io/v1")
	if err != nil {
		t.Fatalf("discovery: %v %s", err, out)
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	verbs := map[string]string{}
	for _, r := range list.APIResources {
		verbs[r.Name] = strings.Join(r.Verbs, ",")
	}
	if verbs["nodes"] != "get,list,watch" || verbs["nodes/restart"] != "create" {
		t.Fatalf("discovery: %v", verbs)
	}

	// kubectl explain reads the OpenAPI v3 that kube-apiserver aggregates
	// from this server. "nodes" alone means the core Nodes, so the group
	// is named with --api-version.
	out, err = kubectl(t, "", "", "explain", "nodes", "--api-version=infraops.michael.io/v1")
	if err != nil || !strings.Contains(out, "infraops.michael.io") || !strings.Contains(out, "status") {
		t.Fatalf("kubectl explain: %v\n%s", err, out)
	}
	out, err = kubectl(t, "", "", "explain", "nodes.status.cloud", "--api-version=infraops.michael.io/v1")
	if err != nil || !strings.Contains(out, "instanceID") || !strings.Contains(out, "region") {
		t.Fatalf("kubectl explain nodes.status.cloud: %v\n%s", err, out)
	}
}

func TestGetNodesTable(t *testing.T) {
	timed(t)
	m := newMachine(t, cloud.ProviderTencentCloud, map[string]string{"e2e": "table"})
	out, err := kubectl(t, "", "", "get", "nodes.infraops.michael.io", "-l", "e2e=table")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME PROVIDER REGION ZONE INSTANCE READY LAST-ACTION PHASE AGE" {
		t.Fatalf("unexpected table:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 9 || f[0] != m.node || f[1] != "tencentcloud" || f[2] != "ap-guangzhou" || f[3] != "100003" || f[4] != m.instanceID || f[5] != "True" || f[6] != "<none>" || f[7] != "<none>" {
		t.Fatalf("unexpected row: %q", lines[1])
	}
	// The demo's Fargate node shows why it cannot be restarted.
	out, err = kubectl(t, "", "", "get", "nodes.infraops.michael.io", cluster.DemoNodeFargate, "-o", "wide")
	if err != nil || !strings.Contains(out, "Fargate") {
		t.Fatalf("wide view of the Fargate node: %v\n%s", err, out)
	}
}

func TestWatchThroughTheAggregator(t *testing.T) {
	timed(t)
	m := newMachine(t, cloud.ProviderAWS, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.cluster.KubectlPath(), "--kubeconfig", env.cluster.Kubeconfig(),
		"get", "nodes.infraops.michael.io", m.node, "--watch", "-o", "custom-columns=NAME:.metadata.name,BOOT:.status.bootID")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	var seen []string
	next := func() string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("kubectl get --watch ended (%v) after %q", lines.Err(), seen)
		}
		line := strings.Join(strings.Fields(lines.Text()), " ")
		seen = append(seen, line)
		return line
	}
	// The header, then the node as it is.
	if header, first := next(), next(); header != "NAME BOOT" || first != m.node+" boot-"+m.node {
		t.Fatalf("unexpected start of the watch: %q", seen)
	}
	// A kubelet reports a new boot: the watcher sees it through kube-apiserver.
	if err := env.cluster.SetNodeStatus(ctx, m.node, true, "boot-after-reboot"); err != nil {
		t.Fatal(err)
	}
	if line := next(); line != m.node+" boot-after-reboot" {
		t.Fatalf("want the new boot ID in the watch, got %q", line)
	}
}

func TestRestartWithKubectl(t *testing.T) {
	timed(t)
	aws := newMachine(t, cloud.ProviderAWS, nil)
	tc := newMachine(t, cloud.ProviderTencentCloud, nil)

	// Dry runs first: they ask the cloud and reboot nothing.
	for _, m := range []machine{aws, tc} {
		out, err := kubectl(t, "", "", "create", "--raw", restartPath(m.node), "-f", writeBody(t, `{"dryRun":["All"]}`))
		if err != nil {
			t.Fatalf("dry run of %s: %v %s", m.node, err, out)
		}
		var a infraopsv1.NodeAction
		if err := json.Unmarshal([]byte(out), &a); err != nil || !a.DryRun {
			t.Fatalf("dry run answer: %s (%v)", out, err)
		}
		if n := reboots(t, m); n != 0 {
			t.Fatalf("a dry run rebooted %s %d times", m.node, n)
		}
	}
	if calls := cloudCalls(t, aws); len(calls) != 1 || !calls[0].DryRun || calls[0].Action != "RebootInstances" {
		t.Fatalf("want EC2's own DryRun check, got %+v", calls)
	}

	out, err := kubectl(t, "", "", "create", "--raw", restartPath(aws.node), "-f", writeBody(t, `{"reason":"e2e: kernel update"}`))
	if err != nil {
		t.Fatalf("restart: %v %s", err, out)
	}
	var a infraopsv1.NodeAction
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatal(err)
	}
	calls := cloudCalls(t, aws)
	last := calls[len(calls)-1]
	if reboots(t, aws) != 1 || last.Region != "us-east-1" || last.RequestID != a.CloudRequestID || a.User == "" || a.User == "system:anonymous" {
		t.Fatalf("want one reboot of %s in us-east-1 matching the answer %+v; calls %+v", aws.instanceID, a, calls)
	}

	out, err = kubectl(t, "", "", "create", "--raw", restartPath(tc.node), "-f", writeBody(t, `{"mode":"hard"}`))
	if err != nil {
		t.Fatalf("restart: %v %s", err, out)
	}
	calls = cloudCalls(t, tc)
	last = calls[len(calls)-1]
	if reboots(t, tc) != 1 || last.Region != "ap-guangzhou" || last.StopType != "HARD" {
		t.Fatalf("want one HARD reboot of %s in ap-guangzhou, got %+v", tc.instanceID, calls)
	}
}

func TestRBAC(t *testing.T) {
	timed(t)
	a := newMachine(t, cloud.ProviderAWS, nil)
	b := newMachine(t, cloud.ProviderAWS, nil)
	allowed := serviceAccountKubeconfig(t, "restarter", []rbacv1.PolicyRule{{
		APIGroups: []string{"infraops.michael.io"}, Resources: []string{"nodes/restart"}, Verbs: []string{"create"}, ResourceNames: []string{a.node},
	}})
	nobody := serviceAccountKubeconfig(t, "nobody", []rbacv1.PolicyRule{})

	body := writeBody(t, `{"reason":"chaos experiment"}`)
	if out, err := kubectl(t, allowed, "", "create", "--raw", restartPath(a.node), "-f", body); err != nil {
		t.Fatalf("allowed SA on %s: %v %s", a.node, err, out)
	}
	if out, err := kubectl(t, allowed, "", "create", "--raw", restartPath(b.node), "-f", body); err == nil || !strings.Contains(out, "Forbidden") && !strings.Contains(out, "forbidden") {
		t.Fatalf("allowed SA on %s (not in resourceNames): want Forbidden, got %v %s", b.node, err, out)
	}
	if out, err := kubectl(t, nobody, "", "create", "--raw", restartPath(b.node), "-f", body); err == nil || !strings.Contains(strings.ToLower(out), "forbidden") {
		t.Fatalf("SA without rules: want Forbidden, got %v %s", err, out)
	}
	if reboots(t, a) != 1 || reboots(t, b) != 0 {
		t.Fatalf("want a rebooted once and b never: %d, %d", reboots(t, a), reboots(t, b))
	}

	// The Event on the Node names the ServiceAccount, mode and reason.
	var found *corev1.Event
	for deadline := time.Now().Add(15 * time.Second); found == nil && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		events, err := env.kube.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + a.node})
		if err != nil {
			t.Fatal(err)
		}
		for i := range events.Items {
			if events.Items[i].Reason == "RestartRequested" {
				found = &events.Items[i]
			}
		}
	}
	if found == nil {
		t.Fatalf("no RestartRequested event on %s", a.node)
	}
	for _, s := range []string{"system:serviceaccount:e2e-users:restarter", "soft", "chaos experiment", a.instanceID} {
		if !strings.Contains(found.Message, s) {
			t.Errorf("event %q does not name %q", found.Message, s)
		}
	}
}

func TestErrorsThroughTheAggregator(t *testing.T) {
	timed(t)
	cases := []struct {
		name, node string
		code       int32
		reason     metav1.StatusReason
	}{
		{"unknown node", "no-such-node", 404, metav1.StatusReasonNotFound},
		{"no providerID", cluster.DemoNodeNoProvider, 422, metav1.StatusReasonInvalid},
		{"fargate", cluster.DemoNodeFargate, 422, metav1.StatusReasonInvalid},
	}
	for _, tc := range cases {
		_, err := restart(t, tc.node, "")
		status, ok := err.(apierrors.APIStatus)
		if !ok || status.Status().Code != tc.code || status.Status().Reason != tc.reason || status.Status().Kind != "Status" {
			t.Errorf("%s: want a %d %s Status, got %v", tc.name, tc.code, tc.reason, err)
		}
	}
	// 20 concurrent restarts of one node: exactly one reboot, the rest 409.
	m := newMachine(t, cloud.ProviderAWS, nil)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = restart(t, m.node, "")
		}()
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case apierrors.IsConflict(err):
			conflicts++
		default:
			t.Errorf("unexpected answer: %v", err)
		}
	}
	if ok != 1 || conflicts != n-1 || reboots(t, m) != 1 {
		t.Fatalf("want 1 accepted, %d conflicts, 1 reboot; got %d, %d, %d", n-1, ok, conflicts, reboots(t, m))
	}
}

// TestDirectAccessRefused goes around kube-apiserver, straight to the
// extension server, as anyone who can reach its port could.
func TestDirectAccessRefused(t *testing.T) {
	timed(t)
	m := newMachine(t, cloud.ProviderAWS, nil)
	url := fmt.Sprintf("https://127.0.0.1:%d%s", env.product.ServerPort, restartPath(m.node))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.product.APIService.CABundle)

	rogue := selfSignedClientCert(t, "front-proxy-client")
	cases := []struct {
		name   string
		certs  []tls.Certificate
		header map[string]string
	}{
		{"anonymous", nil, nil},
		{"impersonation headers without a client certificate", nil, map[string]string{"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}},
		{"impersonation headers with a certificate not from the front-proxy CA", []tls.Certificate{rogue}, map[string]string{"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}},
	}
	for _, tc := range cases {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, ServerName: "localhost", Certificates: tc.certs,
		}}}
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			// Only the rogue certificate may be refused at TLS; the others
			// must reach the server and be refused by it.
			if tc.certs == nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			t.Logf("%s: refused at TLS: %v", tc.name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: want 401 or 403, got %d %s", tc.name, resp.StatusCode, b)
		}
	}
	if n := len(cloudCalls(t, m)); n != 0 {
		t.Fatalf("a request that bypassed kube-apiserver reached the cloud %d times", n)
	}
}

func selfSignedClientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestRecoversFromKubeAPIServerRestart runs last among the server tests
// (Go runs tests in file order) because it takes the control plane away.
func TestRecoversFromKubeAPIServerRestart(t *testing.T) {
	timed(t)
	m := newMachine(t, cloud.ProviderAWS, nil)
	ctx := context.Background()
	begin := time.Now()
	if err := env.cluster.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: kube-apiserver back in %s", time.Since(begin).Round(time.Millisecond))
	// The aggregator needs a moment to find the APIService available again;
	// the server itself must not need a restart.
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if _, err = restart(t, m.node, ""); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("restart after kube-apiserver came back: %v", err)
	}
	t.Logf("figure: first restart accepted %s after kube-apiserver restarted", time.Since(begin).Round(time.Millisecond))
	if reboots(t, m) != 1 {
		t.Fatalf("want one reboot, got %d", reboots(t, m))
	}
	select {
	case <-env.product.Server.Done():
		t.Fatal("the server exited")
	default:
	}
}
