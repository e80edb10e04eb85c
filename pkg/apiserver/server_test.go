package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes/fake"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// The in-process integration test: the real GenericAPIServer over HTTPS on
// loopback, the real cloud SDKs against the wire-level fakes, and a fake
// clientset standing in for kube-apiserver (the e2e suite uses a real one).

const (
	awsID      = "i-0123456789abcdef0"
	awsBusyID  = "i-0aaaaaaaaaaaaaaa1"
	awsSlowID  = "i-0aaaaaaaaaaaaaaa2"
	awsAuthID  = "i-0aaaaaaaaaaaaaaa3"
	awsRaceID  = "i-0aaaaaaaaaaaaaaa4"
	awsThrotID = "i-0aaaaaaaaaaaaaaa5"
	awsDryID   = "i-0aaaaaaaaaaaaaaa6"
	awsStopID  = "i-0aaaaaaaaaaaaaaa7"
	awsSelfID  = "i-0ccccccccccccccc0"
	cvmID      = "ins-abcd1234"
)

type harness struct {
	t       *testing.T
	base    string
	client  *http.Client
	kube    *fake.Clientset
	ec2     *fakecloud.EC2
	cvm     *fakecloud.CVM
	cancel  context.CancelFunc
	stopped chan struct{}
}

func newNode(name, providerID string, labels map[string]string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: labels, CreationTimestamp: metav1.Now()},
		Spec:       corev1.NodeSpec{ProviderID: providerID},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{BootID: "boot-1"},
		},
	}
}

func awsNode(name, id string) *corev1.Node {
	return newNode(name, "aws:///us-east-1a/"+id, map[string]string{"topology.kubernetes.io/region": "us-east-1", "pool": "aws"})
}

// world is what replicas of the server share: the clouds and kube-apiserver.
type world struct {
	kube        *fake.Clientset
	ec2         *fakecloud.EC2
	cvm         *fakecloud.CVM
	cloudConfig *cloud.Config
}

func startServer(t *testing.T) *harness {
	t.Helper()
	return newWorld(t).serve(t, "test-replica")
}

func newWorld(t *testing.T) *world {
	t.Helper()
	// The SDKs' credential chains read these; nothing of the host's own
	// configuration may leak in.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "aws-secret",
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_EC2_METADATA_DISABLED": "true",
		"TENCENTCLOUD_SECRET_ID": "tc-id", "TENCENTCLOUD_SECRET_KEY": "tc-secret",
	} {
		t.Setenv(k, v)
	}

	running := func(ids ...string) []fakecloud.Instance {
		var out []fakecloud.Instance
		for _, id := range ids {
			out = append(out, fakecloud.Instance{ID: id, Region: "us-east-1", State: "running"})
		}
		return out
	}
	ec2 := fakecloud.NewEC2(fakecloud.Options{
		Instances: running(awsID, awsBusyID, awsSlowID, awsAuthID, awsRaceID, awsThrotID, awsDryID, awsStopID, awsSelfID),
		Secrets:   map[string]string{"AKIDTEST": "aws-secret"},
	})
	cvm := fakecloud.NewCVM(fakecloud.Options{
		Instances: []fakecloud.Instance{{ID: cvmID, Region: "ap-guangzhou", State: "RUNNING"}},
		Secrets:   map[string]string{"tc-id": "tc-secret"},
	})
	ec2Server := newTLSServer(t, ec2)
	cvmServer := newTLSServer(t, cvm)
	ec2CA, err := fakecloud.WriteCAFile(ec2Server, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cvmCA, err := fakecloud.WriteCAFile(cvmServer, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cloudConfig, err := providers.ParseConfig([]byte(fmt.Sprintf(`
providers:
  aws:
    region: us-east-1
    endpoint: %s
    caFile: %s
    timeout: 6s
  tencentcloud:
    endpoint: %s
    caFile: %s
`, ec2Server.URL, ec2CA, cvmServer.URL, cvmCA)))
	if err != nil {
		t.Fatal(err)
	}

	kube := fake.NewClientset(
		awsNode("aws-node", awsID),
		newNode("tc-node", "qcloud:///100003/"+cvmID, map[string]string{"topology.kubernetes.io/region": "gz"}),
		awsNode("busy-node", awsBusyID),
		awsNode("slow-node", awsSlowID),
		awsNode("auth-node", awsAuthID),
		awsNode("race-node", awsRaceID),
		awsNode("throttled-node", awsThrotID),
		awsNode("dry-node", awsDryID),
		awsNode("stopped-node", awsStopID),
		awsNode("gone-node", "i-0bbbbbbbbbbbbbbb9"),
		awsNode("self-node", awsSelfID),
		newNode("empty-node", "", nil),
		newNode("gce-node", "gce://project/us-central1-a/vm-1", nil),
		newNode("bad-node", "aws:///us-east-1a/not-an-instance", nil),
		newNode("fargate-node", "aws:///us-east-1a/0123456789abcdef0123456789abcdef/fargate-ip-10-0-1-2.ec2.internal",
			map[string]string{"eks.amazonaws.com/compute-type": "fargate"}),
	)

	return &world{kube: kube, ec2: ec2, cvm: cvm, cloudConfig: cloudConfig}
}

// serve starts one replica of the server in the world and waits until it
// is ready.
func (w *world) serve(t *testing.T, identity string) *harness {
	t.Helper()
	h := w.start(t, identity, nil)
	h.waitReady()
	return h
}

// start starts one replica; adjust, when set, changes the generic config
// after the harness's own settings.
func (w *world) start(t *testing.T, identity string, adjust func(*genericapiserver.RecommendedConfig)) *harness {
	t.Helper()
	kube, ec2, cvm, cloudConfig := w.kube, w.ec2, w.cvm, w.cloudConfig
	ctx, cancel := context.WithCancel(context.Background())
	drivers, err := providers.New(ctx, cloudConfig)
	if err != nil {
		t.Fatal(err)
	}
	serving := genericoptions.NewSecureServingOptions().WithLoopback()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serving.Listener = listener
	serving.BindPort = listener.Addr().(*net.TCPAddr).Port
	serving.BindAddress = net.ParseIP("127.0.0.1")
	serving.ServerCert.CertDirectory = t.TempDir()
	serving.ServerCert.PairName = "apiserver"
	if err := serving.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	generic := genericapiserver.NewRecommendedConfig(Codecs)
	if err := serving.ApplyTo(&generic.SecureServing, &generic.LoopbackClientConfig); err != nil {
		t.Fatal(err)
	}
	// Stand-ins for delegated authn/authz, which need a kube-apiserver (the
	// e2e suite runs the real ones): the user comes from a header, and
	// "mallory" is denied everything.
	generic.Authentication.Authenticator = authenticator.RequestFunc(func(req *http.Request) (*authenticator.Response, bool, error) {
		name := req.Header.Get("X-Test-User")
		if name == "" {
			return nil, false, nil
		}
		return &authenticator.Response{User: &user.DefaultInfo{Name: name}}, true, nil
	})
	generic.Authorization.Authorizer = authorizer.AuthorizerFunc(func(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		if a.GetUser().GetName() == "mallory" {
			return authorizer.DecisionDeny, "mallory may not", nil
		}
		return authorizer.DecisionAllow, "", nil
	})
	if adjust != nil {
		adjust(generic)
	}

	config := &Config{Generic: generic, Extra: ExtraConfig{
		Kube:           kube,
		CloudConfig:    cloudConfig,
		Drivers:        drivers,
		NodeName:       "self-node",
		LockNamespace:  "kube-system",
		ActionCooldown: time.Minute,
		Identity:       identity,
	}}
	server, err := config.Complete().New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := server.Run(ctx); err != nil {
			t.Errorf("server: %v", err)
		}
	}()

	certPEM, err := os.ReadFile(filepath.Join(serving.ServerCert.CertDirectory, "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in the serving cert file")
	}
	h := &harness{
		t:       t,
		base:    fmt.Sprintf("https://127.0.0.1:%d", serving.BindPort),
		client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}},
		kube:    kube,
		ec2:     ec2,
		cvm:     cvm,
		cancel:  cancel,
		stopped: stopped,
	}
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	return h
}

func newTLSServer(t *testing.T, h http.Handler) *httptest.Server {
	s := httptest.NewTLSServer(h)
	t.Cleanup(s.Close)
	return s
}

func (h *harness) waitReady() {
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, h.base+"/readyz", nil)
		req.Header.Set("X-Test-User", "probe")
		resp, err := h.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("server not ready in 30s: %s", last)
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) status(t *testing.T) metav1.Status {
	t.Helper()
	var s metav1.Status
	if err := json.Unmarshal(r.body, &s); err != nil || s.Kind != "Status" {
		t.Fatalf("want a Status object, got %d %s (%v)", r.code, r.body, err)
	}
	return s
}

func (h *harness) do(method, path, userName, body string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if userName != "" {
		req.Header.Set("X-Test-User", userName)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func restartPath(node string) string {
	return "/apis/infraops.michael.io/v1/nodes/" + node + "/restart"
}

func (h *harness) restart(node, body string) response {
	h.t.Helper()
	return h.do(http.MethodPost, restartPath(node), "alice", body)
}

// reboots counts the non-dry-run RebootInstances calls the cloud accepted
// for an instance.
func reboots(calls []fakecloud.Call, id string) int {
	n := 0
	for _, c := range calls {
		if c.Action == "RebootInstances" && !c.DryRun && c.Error == "" && len(c.InstanceIDs) == 1 && c.InstanceIDs[0] == id {
			n++
		}
	}
	return n
}

func callsFor(calls []fakecloud.Call, id string) []fakecloud.Call {
	var out []fakecloud.Call
	for _, c := range calls {
		for _, i := range c.InstanceIDs {
			if i == id {
				out = append(out, c)
			}
		}
	}
	return out
}

func TestRestartAWS(t *testing.T) {
	h := startServer(t)
	r := h.restart("aws-node", `{"reason":"kernel update"}`)
	if r.code != http.StatusAccepted {
		t.Fatalf("want 202, got %d %s", r.code, r.body)
	}
	var got infraopsv1.NodeAction
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	calls := callsFor(h.ec2.Calls(), awsID)
	if len(calls) != 1 || calls[0].Action != "RebootInstances" || calls[0].DryRun || calls[0].Region != "us-east-1" || calls[0].AccessKeyID != "AKIDTEST" {
		t.Fatalf("want one signed RebootInstances of %s in us-east-1, got %+v", awsID, calls)
	}
	want := infraopsv1.NodeAction{
		TypeMeta: metav1.TypeMeta{APIVersion: "infraops.michael.io/v1", Kind: "NodeAction"},
		Action:   "restart", NodeName: "aws-node", NodeUID: "uid-aws-node",
		Cloud: infraopsv1.CloudInstance{Provider: "aws", Region: "us-east-1", Zone: "us-east-1a", InstanceID: awsID},
		Mode:  "soft", Reason: "kernel update", CloudRequestID: calls[0].RequestID, User: "alice", Time: got.Time,
	}
	if got != want || got.Time.IsZero() || got.CloudRequestID == "" {
		t.Fatalf("answer:\n got %+v\nwant %+v", got, want)
	}

	// The Event on the core Node names the user, mode, reason and request ID.
	var event *corev1.Event
	for deadline := time.Now().Add(10 * time.Second); event == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		events, err := h.kube.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range events.Items {
			if e := &events.Items[i]; e.InvolvedObject.Name == "aws-node" && e.Reason == "RestartRequested" {
				event = e
			}
		}
	}
	if event == nil {
		t.Fatal("no RestartRequested event on aws-node")
	}
	for _, s := range []string{"alice", "soft", "kernel update", calls[0].RequestID, awsID} {
		if !strings.Contains(event.Message, s) {
			t.Errorf("event message %q does not name %q", event.Message, s)
		}
	}
	if event.InvolvedObject.Kind != "Node" || event.InvolvedObject.UID != "uid-aws-node" || event.Type != corev1.EventTypeNormal {
		t.Errorf("event is not a Normal event on the core Node: %+v", event.InvolvedObject)
	}

	// A second request in the cooldown meets the lock: nothing reboots twice.
	r = h.restart("aws-node", "")
	if r.code != http.StatusConflict || r.header.Get("Retry-After") == "" {
		t.Fatalf("want 409 with Retry-After, got %d %v %s", r.code, r.header, r.body)
	}
	if s := r.status(t); s.Reason != metav1.StatusReasonConflict {
		t.Fatalf("want reason Conflict, got %+v", s)
	}
	if n := reboots(h.ec2.Calls(), awsID); n != 1 {
		t.Fatalf("want exactly one reboot, got %d", n)
	}
}

func TestRestartTencentHard(t *testing.T) {
	h := startServer(t)
	r := h.restart("tc-node", `{"apiVersion":"infraops.michael.io/v1","kind":"RestartOptions","mode":"hard"}`)
	if r.code != http.StatusAccepted {
		t.Fatalf("want 202, got %d %s", r.code, r.body)
	}
	calls := callsFor(h.cvm.Calls(), cvmID)
	if len(calls) != 1 || calls[0].Action != "RebootInstances" || calls[0].StopType != "HARD" || calls[0].Region != "ap-guangzhou" || calls[0].AccessKeyID != "tc-id" {
		t.Fatalf("want one HARD RebootInstances of %s in ap-guangzhou, got %+v", cvmID, calls)
	}
	var got infraopsv1.NodeAction
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Mode != "hard" || got.Cloud.Provider != "tencentcloud" || got.Cloud.Region != "ap-guangzhou" || got.CloudRequestID != calls[0].RequestID {
		t.Fatalf("unexpected answer %+v", got)
	}
}

func TestRestartDryRunRebootsNothing(t *testing.T) {
	h := startServer(t)
	for _, node := range []string{"dry-node", "tc-node"} {
		r := h.restart(node, `{"dryRun":["All"]}`)
		if r.code != http.StatusAccepted {
			t.Fatalf("%s: want 202, got %d %s", node, r.code, r.body)
		}
		var got infraopsv1.NodeAction
		if err := json.Unmarshal(r.body, &got); err != nil || !got.DryRun {
			t.Fatalf("%s: want dryRun true in %s (%v)", node, r.body, err)
		}
	}
	ec2Calls := callsFor(h.ec2.Calls(), awsDryID)
	if len(ec2Calls) != 1 || !ec2Calls[0].DryRun {
		t.Fatalf("want one DryRun RebootInstances at EC2, got %+v", ec2Calls)
	}
	for _, c := range callsFor(h.cvm.Calls(), cvmID) {
		if c.Action == "RebootInstances" {
			t.Fatalf("dry run rebooted the CVM instance: %+v", c)
		}
	}
	// A dry run takes no lock: the real restart right after it goes through.
	if r := h.restart("dry-node", ""); r.code != http.StatusAccepted {
		t.Fatalf("want 202 after a dry run, got %d %s", r.code, r.body)
	}
}

func TestRestartParallelRebootsOnce(t *testing.T) {
	h := startServer(t)
	const n = 50
	count := burst(n, func(int) int { return h.restart("race-node", "").code })
	if count[http.StatusAccepted] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("want 1×202 and %d×409, got %v", n-1, count)
	}
	if got := reboots(h.ec2.Calls(), awsRaceID); got != 1 {
		t.Fatalf("want exactly one reboot at the cloud, got %d", got)
	}
}

func TestRestartErrors(t *testing.T) {
	h := startServer(t)
	h.ec2.SetFault(awsBusyID, fakecloud.Fault{Kind: fakecloud.FaultBusy})
	h.ec2.SetFault(awsAuthID, fakecloud.Fault{Kind: fakecloud.FaultAuth})

	cases := []struct {
		name, node, body string
		code             int
		reason           metav1.StatusReason
		contains         string
	}{
		{"unknown node", "no-such-node", "", 404, metav1.StatusReasonNotFound, "not found"},
		{"empty providerID", "empty-node", "", 422, metav1.StatusReasonInvalid, "spec.providerID"},
		{"unsupported cloud", "gce-node", "", 422, metav1.StatusReasonInvalid, "gce"},
		{"malformed providerID", "bad-node", "", 422, metav1.StatusReasonInvalid, "spec.providerID"},
		{"fargate", "fargate-node", "", 422, metav1.StatusReasonInvalid, "Fargate"},
		{"instance unknown at the cloud", "gone-node", "", 422, metav1.StatusReasonInvalid, "InvalidInstanceID.NotFound"},
		{"instance busy", "busy-node", "", 409, metav1.StatusReasonConflict, "busy-node"},
		{"cloud refuses our credentials", "auth-node", "", 502, node.StatusReasonBadGateway, "UnauthorizedOperation"},
		{"node recreated", "aws-node", `{"nodeUID":"some-other-uid"}`, 409, metav1.StatusReasonConflict, "precondition"},
		{"unknown field", "aws-node", `{"dryrun":["All"]}`, 400, metav1.StatusReasonBadRequest, "dryrun"},
		{"bad JSON", "aws-node", `{"mode":`, 400, metav1.StatusReasonBadRequest, "not valid"},
		{"wrong kind", "aws-node", `{"kind":"Pod","apiVersion":"v1"}`, 400, metav1.StatusReasonBadRequest, "RestartOptions"},
		{"bad mode", "aws-node", `{"mode":"gentle"}`, 422, metav1.StatusReasonInvalid, "mode"},
		{"bad dryRun", "aws-node", `{"dryRun":["Some"]}`, 422, metav1.StatusReasonInvalid, "dryRun"},
		{"body too large", "aws-node", `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`, 413, metav1.StatusReasonRequestEntityTooLarge, "limited"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.restart(tc.node, tc.body)
			s := r.status(t)
			if r.code != tc.code || int(s.Code) != tc.code || s.Reason != tc.reason || !strings.Contains(s.Message, tc.contains) {
				t.Fatalf("want %d %s containing %q, got %d %s: %s", tc.code, tc.reason, tc.contains, r.code, s.Reason, s.Message)
			}
		})
	}
	// None of these rebooted anything.
	for _, c := range h.ec2.Calls() {
		if c.Error == "" {
			t.Errorf("a refused request reached the cloud and succeeded: %+v", c)
		}
	}
	// The cloud refused and did nothing, so the lock is released: once the
	// instance is free a retry goes through.
	h.ec2.ClearFaults(awsBusyID)
	if r := h.restart("busy-node", ""); r.code != http.StatusAccepted {
		t.Fatalf("want 202 after the cloud's refusal cleared, got %d %s", r.code, r.body)
	}
}

func TestRestartThrottled(t *testing.T) {
	h := startServer(t)
	h.ec2.SetFault(awsThrotID, fakecloud.Fault{Kind: fakecloud.FaultThrottle})
	r := h.restart("throttled-node", "")
	s := r.status(t)
	if r.code != http.StatusTooManyRequests || s.Reason != metav1.StatusReasonTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("want 429 with Retry-After, got %d %v %s", r.code, r.header, r.body)
	}
	if n := len(callsFor(h.ec2.Calls(), awsThrotID)); n != 1 {
		t.Fatalf("want exactly one call (no SDK retry of a reboot), got %d", n)
	}
	h.ec2.ClearFaults(awsThrotID)
	if r := h.restart("throttled-node", ""); r.code != http.StatusAccepted {
		t.Fatalf("want 202 once the cloud stops throttling, got %d %s", r.code, r.body)
	}
}

func TestRestartTimeoutKeepsLock(t *testing.T) {
	h := startServer(t)
	// The fake acts on the call, then answers after the driver's 6s timeout
	// (not less: 50 concurrent restarts on a loaded 2-core machine saw a
	// spurious 504 at 2s).
	h.ec2.SetFault(awsSlowID, fakecloud.Fault{Delay: 8 * time.Second})
	r := h.restart("slow-node", "")
	s := r.status(t)
	if r.code != http.StatusGatewayTimeout || s.Reason != metav1.StatusReasonTimeout {
		t.Fatalf("want 504 Timeout, got %d %s", r.code, r.body)
	}
	if n := len(callsFor(h.ec2.Calls(), awsSlowID)); n != 1 {
		t.Fatalf("want exactly one call, got %d", n)
	}
	// The outcome is unknown, so a retry must not reboot again.
	h.ec2.ClearFaults(awsSlowID)
	if r := h.restart("slow-node", ""); r.code != http.StatusConflict {
		t.Fatalf("want 409 after a timeout, got %d %s", r.code, r.body)
	}
	if n := len(callsFor(h.ec2.Calls(), awsSlowID)); n != 1 {
		t.Fatalf("the retry reached the cloud: %d calls", n)
	}
}

func TestAuthnAndMethods(t *testing.T) {
	h := startServer(t)
	if r := h.do(http.MethodPost, restartPath("aws-node"), "", ""); r.code != http.StatusUnauthorized {
		t.Fatalf("anonymous: want 401, got %d %s", r.code, r.body)
	}
	r := h.do(http.MethodPost, restartPath("aws-node"), "mallory", "")
	if r.code != http.StatusForbidden || r.status(t).Reason != metav1.StatusReasonForbidden {
		t.Fatalf("denied user: want 403, got %d %s", r.code, r.body)
	}
	// GET is not an action verb: it must never reboot.
	if r := h.do(http.MethodGet, restartPath("aws-node"), "alice", ""); r.code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: want 405, got %d %s", r.code, r.body)
	}
	if r := h.do(http.MethodPost, restartPath("aws-node")+"?dryRun=All", "alice", ""); r.code != http.StatusBadRequest {
		t.Fatalf("dryRun query parameter: want 400, got %d %s", r.code, r.body)
	}
	if n := len(h.ec2.Calls()); n != 0 {
		t.Fatalf("refused requests reached the cloud: %+v", h.ec2.Calls())
	}
}

func TestNodesView(t *testing.T) {
	h := startServer(t)
	r := h.do(http.MethodGet, "/apis/infraops.michael.io/v1/nodes/tc-node", "alice", "")
	if r.code != http.StatusOK {
		t.Fatalf("get: %d %s", r.code, r.body)
	}
	var n infraopsv1.Node
	if err := json.Unmarshal(r.body, &n); err != nil {
		t.Fatal(err)
	}
	want := infraopsv1.CloudInstance{Provider: "tencentcloud", Region: "ap-guangzhou", Zone: "100003", InstanceID: cvmID}
	if n.Status.Cloud == nil || *n.Status.Cloud != want || n.Status.Ready != "True" || n.Status.BootID != "boot-1" || n.UID != "uid-tc-node" {
		t.Fatalf("unexpected view %+v", n.Status)
	}

	r = h.do(http.MethodGet, "/apis/infraops.michael.io/v1/nodes/fargate-node", "alice", "")
	var fargate infraopsv1.Node
	if err := json.Unmarshal(r.body, &fargate); err != nil || fargate.Status.Cloud != nil || !strings.Contains(fargate.Status.CloudError, "Fargate") {
		t.Fatalf("fargate view: %s (%v)", r.body, err)
	}

	if r := h.do(http.MethodGet, "/apis/infraops.michael.io/v1/nodes/no-such-node", "alice", ""); r.code != 404 || r.status(t).Reason != metav1.StatusReasonNotFound {
		t.Fatalf("want 404, got %d %s", r.code, r.body)
	}

	list := func(query string) []string {
		t.Helper()
		r := h.do(http.MethodGet, "/apis/infraops.michael.io/v1/nodes"+query, "alice", "")
		if r.code != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, r.code, r.body)
		}
		var l infraopsv1.NodeList
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, i := range l.Items {
			names = append(names, i.Name)
		}
		return names
	}
	if got := list(""); len(got) != 15 {
		t.Fatalf("want 15 nodes, got %v", got)
	}
	if got := list("?labelSelector=topology.kubernetes.io/region%3Dgz"); len(got) != 1 || got[0] != "tc-node" {
		t.Fatalf("label selector: got %v", got)
	}
	if got := list("?fieldSelector=status.cloud.provider%3Dtencentcloud"); len(got) != 1 || got[0] != "tc-node" {
		t.Fatalf("field selector: got %v", got)
	}
	if r := h.do(http.MethodGet, "/apis/infraops.michael.io/v1/nodes?fieldSelector=spec.unschedulable%3Dtrue", "alice", ""); r.code != http.StatusBadRequest {
		t.Fatalf("unknown field selector: want 400, got %d %s", r.code, r.body)
	}

	// kubectl asks for a Table.
	req, _ := http.NewRequest(http.MethodGet, h.base+"/apis/infraops.michael.io/v1/nodes", nil)
	req.Header.Set("X-Test-User", "alice")
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if strings.Join(cols, ",") != "Name,Provider,Region,Zone,Instance,Ready,Last-Action,Phase,Age,Cloud-Error" || len(table.Rows) != 15 {
		t.Fatalf("unexpected table: columns %v, %d rows", cols, len(table.Rows))
	}

	// Discovery lists the resource and its action with the verbs RBAC uses.
	r = h.do(http.MethodGet, "/apis/infraops.michael.io/v1", "alice", "")
	var resources metav1.APIResourceList
	if err := json.Unmarshal(r.body, &resources); err != nil {
		t.Fatal(err)
	}
	verbs := map[string]string{}
	for _, res := range resources.APIResources {
		verbs[res.Name] = strings.Join(res.Verbs, ",")
	}
	if verbs["nodes"] != "get,list,watch" || verbs["nodes/restart"] != "create" || verbs["nodes/stop"] != "create" || verbs["nodes/start"] != "create" {
		t.Fatalf("unexpected discovery %v", verbs)
	}
	// OpenAPI v3 describes the group, for kubectl explain.
	// OpenAPI v2 and v3 describe the group, for kubectl explain, and the
	// action's request body, which the generic installer leaves out.
	r = h.do(http.MethodGet, "/openapi/v3/apis/infraops.michael.io/v1", "alice", "")
	var v3 struct {
		Paths map[string]struct {
			Post struct {
				RequestBody struct {
					Content map[string]struct {
						Schema struct {
							Ref string `json:"$ref"`
						} `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
			} `json:"post"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &v3); err != nil {
		t.Fatalf("openapi v3: %d %v", r.code, err)
	}
	ref := v3.Paths["/apis/infraops.michael.io/v1/nodes/{name}/restart"].Post.RequestBody.Content["application/json"].Schema.Ref
	const restartOptions = "io.michael.infraops.v1.RestartOptions"
	if ref != "#/components/schemas/"+restartOptions || !bytes.Contains(v3.Components.Schemas[restartOptions], []byte(`"mode"`)) {
		names := []string{}
		for k := range v3.Components.Schemas {
			names = append(names, k)
		}
		t.Fatalf("openapi v3: restart body is %q; schemas %v", ref, names)
	}
	for _, kind := range []string{"io.michael.infraops.v1.Node", "io.michael.infraops.v1.NodeAction"} {
		if _, ok := v3.Components.Schemas[kind]; !ok {
			t.Errorf("openapi v3 lacks %s", kind)
		}
	}
	// stop and start publish their own kinds, each with the common fields.
	for action, kind := range map[string]string{"stop": "io.michael.infraops.v1.StopOptions", "start": "io.michael.infraops.v1.StartOptions"} {
		ref := v3.Paths["/apis/infraops.michael.io/v1/nodes/{name}/"+action].Post.RequestBody.Content["application/json"].Schema.Ref
		if ref != "#/components/schemas/"+kind || !bytes.Contains(v3.Components.Schemas[kind], []byte(`"nodeUID"`)) {
			t.Errorf("openapi v3: %s body is %q", action, ref)
		}
	}
	if !bytes.Contains(v3.Components.Schemas["io.michael.infraops.v1.StopOptions"], []byte(`"stopCharging"`)) {
		t.Errorf("openapi v3: StopOptions lacks stopCharging")
	}
	r = h.do(http.MethodGet, "/openapi/v2", "alice", "")
	if r.code != http.StatusOK || !bytes.Contains(r.body, []byte(`"#/definitions/`+restartOptions+`"`)) {
		t.Fatalf("openapi v2 does not reference %s: %d", restartOptions, r.code)
	}
}

// Two replicas behind one Service: requests for one node that land on
// different replicas still meet one lock (a Lease in kube-apiserver), so
// the machine reboots once.
func TestTwoReplicasRebootOnce(t *testing.T) {
	w := newWorld(t)
	replicas := []*harness{w.serve(t, "replica-a"), w.serve(t, "replica-b")}
	const n = 40
	count := burst(n, func(i int) int { return replicas[i%2].restart("race-node", "").code })
	if count[http.StatusAccepted] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("want 1×202 and %d×409 across two replicas, got %v", n-1, count)
	}
	if got := reboots(w.ec2.Calls(), awsRaceID); got != 1 {
		t.Fatalf("want exactly one reboot at the cloud, got %d", got)
	}
}

// burst runs n requests at once and counts their status codes.
func burst(n int, request func(i int) int) map[int]int {
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = request(i)
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	return count
}

// An HTML page answered with 200 in front of EC2 is not a restart: 502,
// the outcome unknown, and the node stays locked so a retry cannot reboot
// a second time.
func TestRestartMalformedAnswerKeepsLock(t *testing.T) {
	h := startServer(t)
	h.ec2.SetFault(awsBusyID, fakecloud.Fault{Kind: fakecloud.FaultMalformed})
	r := h.restart("busy-node", "")
	s := r.status(t)
	if r.code != http.StatusBadGateway || s.Reason != node.StatusReasonBadGateway || !strings.Contains(s.Message, "unknown") {
		t.Fatalf("want 502 saying the outcome is unknown, got %d %s", r.code, r.body)
	}
	h.ec2.ClearFaults(awsBusyID)
	if r := h.restart("busy-node", ""); r.code != http.StatusConflict {
		t.Fatalf("want 409 after an answer of unknown outcome, got %d %s", r.code, r.body)
	}
	if n := len(callsFor(h.ec2.Calls(), awsBusyID)); n != 1 {
		t.Fatalf("the retry reached the cloud: %d calls", n)
	}
}

// A mode the cloud does not have is a 422 naming the modes it has, sent
// nowhere and leaving the node unlocked; an omitted mode is the cloud's
// default, and the answer says which.
func TestRestartModeTheCloudLacks(t *testing.T) {
	h := startServer(t)
	r := h.restart("aws-node", `{"mode":"hard"}`)
	s := r.status(t)
	if r.code != http.StatusUnprocessableEntity || !strings.Contains(s.Message, "soft") || s.Details == nil ||
		len(s.Details.Causes) == 0 || s.Details.Causes[0].Field != "mode" {
		t.Fatalf("want 422 on mode naming soft, got %d %s", r.code, r.body)
	}
	if n := len(callsFor(h.ec2.Calls(), awsID)); n != 0 {
		t.Fatalf("a mode EC2 does not have reached it: %d calls", n)
	}
	r = h.restart("aws-node", "")
	if r.code != http.StatusAccepted {
		t.Fatalf("want 202, got %d %s", r.code, r.body)
	}
	var a infraopsv1.NodeAction
	if err := json.Unmarshal([]byte(r.body), &a); err != nil || a.Mode != "soft" {
		t.Fatalf("answer %s (%v), want mode soft", r.body, err)
	}
}

// caSource is a requestheader CA that is not there until set, as the
// front-proxy CA before the server's ConfigMap informer has synced.
type caSource struct{ pem atomic.Value }

func (c *caSource) Name() string { return "test-requestheader-ca" }
func (c *caSource) CurrentCABundleContent() []byte {
	b, _ := c.pem.Load().([]byte)
	return b
}
func (c *caSource) VerifyOptions() (x509.VerifyOptions, bool) { return x509.VerifyOptions{}, false }
func (c *caSource) AddListener(dynamiccertificates.Listener)  {}

// Item 10 of issue 9: not ready before the front-proxy CA is loaded and
// delegated authorization answers.
func TestNotReadyBeforeItCanAuthenticateAndAuthorize(t *testing.T) {
	ca := &caSource{}
	var authzUp atomic.Bool
	h := newWorld(t).start(t, "replica", func(c *genericapiserver.RecommendedConfig) {
		c.Authentication.RequestHeaderConfig = &authenticatorfactory.RequestHeaderConfig{
			CAContentProvider:   ca,
			UsernameHeaders:     headerrequest.StaticStringSlice{"X-Remote-User"},
			UIDHeaders:          headerrequest.StaticStringSlice{},
			GroupHeaders:        headerrequest.StaticStringSlice{"X-Remote-Group"},
			ExtraHeaderPrefixes: headerrequest.StaticStringSlice{"X-Remote-Extra-"},
			AllowedClientNames:  headerrequest.StaticStringSlice{"front-proxy-client"},
		}
		next := c.Authorization.Authorizer
		c.Authorization.Authorizer = authorizer.AuthorizerFunc(func(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
			if strings.HasSuffix(a.GetUser().GetName(), "readiness-probe") && !authzUp.Load() {
				return authorizer.DecisionNoOpinion, "", fmt.Errorf("kube-apiserver unreachable")
			}
			return next.Authorize(ctx, a)
		})
	})
	readyz := func() (int, string) {
		r := h.do(http.MethodGet, "/readyz?verbose", "probe", "")
		return r.code, string(r.body)
	}
	// The node cache loads quickly; what is left failing is the CA and authz.
	waitUntil(t, "the node cache to load", func() bool { _, b := readyz(); return strings.Contains(b, "[+]node-cache-sync") })
	if code, body := readyz(); code == http.StatusOK || !strings.Contains(body, "[-]requestheader-client-ca") || !strings.Contains(body, "[-]delegated-authorization") {
		t.Fatalf("ready without the front-proxy CA and authorization: %d\n%s", code, body)
	}
	ca.pem.Store([]byte("-----BEGIN CERTIFICATE-----\n"))
	if code, body := readyz(); code == http.StatusOK || !strings.Contains(body, "[+]requestheader-client-ca") {
		t.Fatalf("ready before authorization answers: %d\n%s", code, body)
	}
	authzUp.Store(true)
	h.waitReady()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting for %s", what)
}

// Item 9 of issue 9: the node this replica runs on is restarted through
// the API (the replica does it itself), once.
func TestRestartOwnNode(t *testing.T) {
	h := startServer(t)
	if r := h.restart("self-node", `{"reason":"kernel"}`); r.code != http.StatusAccepted {
		t.Fatalf("want 202 for the replica's own node, got %d %s", r.code, r.body)
	}
	if r := h.restart("self-node", ""); r.code != http.StatusConflict {
		t.Fatalf("want 409 in the cooldown, got %d %s", r.code, r.body)
	}
	if n := reboots(h.ec2.Calls(), awsSelfID); n != 1 {
		t.Fatalf("want one reboot, got %d", n)
	}
}

// Item 1 of issue 9: a cooldown shorter than a cloud call may take is
// refused at start-up, naming both values.
func TestStartupRefusesALockShorterThanTheCall(t *testing.T) {
	cfg, err := providers.ParseConfig([]byte("providers:\n  aws:\n    timeout: 15s\n  tencentcloud:\n    timeout: 3s\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckLockCoversCall(time.Second, cfg)
	if err == nil || !strings.Contains(err.Error(), "--action-cooldown (1s)") || !strings.Contains(err.Error(), "providers.aws.timeout (15s)") {
		t.Fatalf("want a refusal naming 1s and 15s, got %v", err)
	}
	if err := CheckLockCoversCall(15*time.Second, cfg); err != nil {
		t.Fatalf("15s covers both: %v", err)
	}
	// Through the options, as the binary runs them.
	o := NewOptions()
	o.SecureServing.ServerCert.CertDirectory = t.TempDir()
	o.ActionCooldown = time.Second
	o.Kubeconfig = writeKubeconfig(t)
	if _, err := o.Config(); err == nil || !strings.Contains(err.Error(), "--action-cooldown (1s)") || !strings.Contains(err.Error(), "(15s)") {
		t.Fatalf("Options.Config: want the refusal, got %v", err)
	}
}

func writeKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	const cfg = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
