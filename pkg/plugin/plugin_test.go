package plugin

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/version"
)

func TestInvocationFor(t *testing.T) {
	for _, tc := range []struct {
		binary  string
		want    Invocation
		wantErr string
	}{
		{binary: "kubectl-restart", want: Invocation{Action: "restart", CommandName: "restart"}},
		{binary: "/home/me/.local/bin/kubectl-restart", want: Invocation{Action: "restart", CommandName: "restart"}},
		{binary: `kubectl-restart.exe`, want: Invocation{Action: "restart", CommandName: "restart"}},
		// krew links the plugin under its index name, node names use _ for -.
		{binary: "/root/.krew/bin/kubectl-cloudnode_restart", want: Invocation{Action: "restart", CommandName: "cloudnode-restart"}},
		{binary: "kubectl-cloudnode", want: Invocation{CommandName: "cloudnode"}},
		{binary: "kubectl-stop", want: Invocation{Action: "stop", CommandName: "stop"}},
		{binary: "kubectl-power_cycle", want: Invocation{Action: "power-cycle", CommandName: "power-cycle"}},
		{binary: "restart", wantErr: "install it as kubectl-<action>"},
		{binary: "kubectl-", wantErr: "install it as kubectl-<action>"},
		{binary: "kubectl-Restart", wantErr: "not an action name"},
		{binary: "kubectl-cloudnode_", wantErr: "not an action name"},
	} {
		got, err := InvocationFor(tc.binary)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("InvocationFor(%q) = %+v, %v; want an error containing %q", tc.binary, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("InvocationFor(%q) = %+v, %v; want %+v", tc.binary, got, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		set     func(o *Options)
		wantErr string
	}{
		{name: "one node", args: []string{"n1"}},
		{name: "node/ prefix as kubectl get -o name prints it", args: []string{"node/n1", "nodes.infraops.michael.io/n2"}},
		{name: "selector", set: func(o *Options) { o.Selector = "pool=a" }},
		{name: "nothing to act on", wantErr: "at least one node, or a selector"},
		{name: "names and selector", args: []string{"n1"}, set: func(o *Options) { o.Selector = "pool=a" }, wantErr: "cannot be given together"},
		{name: "bad selector", set: func(o *Options) { o.Selector = "pool in (a" }, wantErr: "invalid selector"},
		{name: "bad name", args: []string{"pods/x"}, wantErr: `invalid node name "pods/x"`},
		{name: "dot name", args: []string{".."}, wantErr: "invalid node name"},
		{name: "bad mode", args: []string{"n1"}, set: func(o *Options) { *o.Params["mode"] = "cold" }, wantErr: `invalid --mode "cold": must be one of soft, hard`},
		{name: "hard mode", args: []string{"n1"}, set: func(o *Options) { *o.Params["mode"] = "hard" }},
		{name: "bad output", args: []string{"n1"}, set: func(o *Options) { o.Output = "wide" }, wantErr: `output format "wide"`},
		{name: "bad dry-run", args: []string{"n1"}, set: func(o *Options) { o.DryRunFlag = "true" }, wantErr: `invalid dry-run value (true)`},
		{name: "max-in-flight 0", args: []string{"n1"}, set: func(o *Options) { o.MaxInFlight = 0 }, wantErr: "--max-in-flight must be at least 1"},
		{name: "wait", args: []string{"n1"}, set: func(o *Options) { o.Wait = true }},
		{name: "wait with dry run", args: []string{"n1"}, set: func(o *Options) { o.Wait = true; o.DryRunFlag = "server" }, wantErr: "--wait cannot be used with --dry-run"},
		{name: "wait without time", args: []string{"n1"}, set: func(o *Options) { o.Wait = true; o.Timeout = 0 }, wantErr: "--timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions(Restart, testStreams())
			if tc.set != nil {
				tc.set(o)
			}
			err := o.Complete(tc.args)
			if err == nil {
				err = o.Validate()
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCompleteNamesAndDryRun(t *testing.T) {
	o := NewOptions(Restart, testStreams())
	o.DryRunFlag = dryRunBare
	if err := o.Complete([]string{"node/a", "b", "a", "nodes/b"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !reflect.DeepEqual(o.Names, want) {
		t.Errorf("names %q, want %q (prefixes stripped, duplicates dropped, order kept)", o.Names, want)
	}
	if o.DryRunStrategy() != DryRunClient {
		t.Errorf("a bare --dry-run is %q, want client as in kubectl", o.DryRunStrategy())
	}
}

func TestWaitOnlyForRebootingActions(t *testing.T) {
	o := NewOptions(discoveredAction("stop", "StopOptions"), testStreams())
	o.Wait = true
	if err := o.Complete([]string{"n1"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--wait is not supported for stop") {
		t.Fatalf("error %v, want --wait refused for an action that does not reboot", err)
	}
}

func TestRestartBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want map[string]any
	}{
		{
			name: "defaults",
			args: []string{"n1"},
			// No mode: the server uses the cloud's own reboot.
			want: map[string]any{"apiVersion": "infraops.michael.io/v1", "kind": "RestartOptions"},
		},
		{
			name: "reason and hard mode",
			args: []string{"n1", "--mode", "hard", "--reason", "kernel 6.9"},
			want: map[string]any{"apiVersion": "infraops.michael.io/v1", "kind": "RestartOptions", "mode": "hard", "reason": "kernel 6.9"},
		},
		{
			name: "server dry run",
			args: []string{"n1", "--dry-run=server"},
			want: map[string]any{"apiVersion": "infraops.michael.io/v1", "kind": "RestartOptions", "dryRun": []any{"All"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, node("n1", "uid-1", nil))
			r := f.run(t, testDeps(nil), "", "kubectl-restart", tc.args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.errOut)
			}
			posts := f.Posts()
			if len(posts) != 1 || posts[0].Node != "n1" || posts[0].Action != "restart" {
				t.Fatalf("posts %+v, want one restart of n1", posts)
			}
			if !reflect.DeepEqual(posts[0].Body, tc.want) {
				t.Errorf("body %v, want %v", posts[0].Body, tc.want)
			}
		})
	}
}

func TestDefaultOutput(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil))
	r := f.run(t, testDeps(nil), "", "kubectl-restart", "n1")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.errOut)
	}
	if want := "node.infraops.michael.io/n1 restart requested (aws i-n1 in us-east-1, cloud request req-n1)\n"; r.out != want {
		t.Errorf("stdout %q, want %q", r.out, want)
	}
	if r.errOut != "" {
		t.Errorf("stderr %q, want nothing for one node", r.errOut)
	}

	r = f.run(t, testDeps(nil), "", "kubectl-restart", "n1", "--mode=hard", "--dry-run=server")
	if want := "node.infraops.michael.io/n1 restart requested (aws i-n1 in us-east-1, mode hard, cloud request req-n1) (server dry run)\n"; r.out != want {
		t.Errorf("stdout %q, want %q", r.out, want)
	}
}

func TestClientDryRunSendsNothing(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil))
	r := f.run(t, testDeps(nil), "", "kubectl-restart", "n1", "--dry-run=client", "--reason", "test")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.errOut)
	}
	if posts := f.Posts(); len(posts) != 0 {
		t.Fatalf("a client dry run posted %+v", posts)
	}
	want := `node.infraops.michael.io/n1 restart requested (dry run): POST /apis/infraops.michael.io/v1/nodes/n1/restart {"kind":"RestartOptions","apiVersion":"infraops.michael.io/v1","reason":"test"}` + "\n"
	if r.out != want {
		t.Errorf("stdout\n%s\nwant\n%s", r.out, want)
	}

	r = f.run(t, testDeps(nil), "", "kubectl-restart", "n1", "--dry-run", "-o", "json")
	var body infraopsv1.RestartOptions
	if err := json.Unmarshal([]byte(r.out), &body); err != nil {
		t.Fatalf("-o json of a client dry run is not the request body: %v\n%s", err, r.out)
	}
	if body.Kind != "RestartOptions" || body.Mode != "" || body.IsDryRun() {
		t.Errorf("printed body %+v", body)
	}
	if posts := f.Posts(); len(posts) != 0 {
		t.Fatalf("a bare --dry-run posted %+v", posts)
	}
}

func TestStructuredOutput(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", map[string]string{"pool": "a"}), node("n2", "uid-2", map[string]string{"pool": "a"}))

	r := f.run(t, testDeps(nil), "", "kubectl-restart", "n1", "-o", "json")
	var one infraopsv1.NodeAction
	if err := json.Unmarshal([]byte(r.out), &one); err != nil {
		t.Fatalf("-o json: %v\n%s", err, r.out)
	}
	if one.APIVersion != "infraops.michael.io/v1" || one.Kind != "NodeAction" || one.NodeName != "n1" || one.Cloud.InstanceID != "i-n1" || one.CloudRequestID != "req-n1" {
		t.Errorf("-o json printed %+v", one)
	}

	r = f.run(t, testDeps(nil), "", "kubectl-restart", "n1", "n2", "--yes", "-o", "yaml")
	var list struct {
		APIVersion string                  `json:"apiVersion"`
		Kind       string                  `json:"kind"`
		Items      []infraopsv1.NodeAction `json:"items"`
	}
	if err := yaml.Unmarshal([]byte(r.out), &list); err != nil {
		t.Fatalf("-o yaml: %v\n%s", err, r.out)
	}
	if list.APIVersion != "v1" || list.Kind != "List" || len(list.Items) != 2 || list.Items[0].NodeName != "n1" || list.Items[1].NodeName != "n2" || list.Items[1].Kind != "NodeAction" {
		t.Errorf("-o yaml of two nodes printed %+v", list)
	}
	if want := "2 requested, 0 failed\n"; r.errOut != want {
		t.Errorf("stderr %q, want the summary %q only", r.errOut, want)
	}

	r = f.run(t, testDeps(nil), "", "kubectl-restart", "-l", "pool=a", "--yes", "-o", "name")
	if want := "node.infraops.michael.io/n1\nnode.infraops.michael.io/n2\n"; r.out != want {
		t.Errorf("-o name printed %q, want %q", r.out, want)
	}
}

func TestSelectorPrompt(t *testing.T) {
	nodes := []infraopsv1.Node{
		node("a1", "uid-a1", map[string]string{"pool": "a"}),
		node("a2", "uid-a2", map[string]string{"pool": "a"}),
		node("b1", "uid-b1", map[string]string{"pool": "b"}),
	}
	for _, tc := range []struct {
		name   string
		answer string
		args   []string
		posted bool
	}{
		{name: "yes", answer: "y\n", posted: true},
		{name: "YES without newline", answer: "YES", posted: true},
		{name: "no", answer: "n\n"},
		{name: "empty answer", answer: "\n"},
		{name: "no stdin", answer: ""},
		{name: "--yes", answer: "", args: []string{"--yes"}, posted: true},
		{name: "server dry run asks nothing", answer: "", args: []string{"--dry-run=server"}, posted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, nodes...)
			r := f.run(t, testDeps(nil), tc.answer, "kubectl-restart", append([]string{"-l", "pool=a", "--reason", "r"}, tc.args...)...)
			asked := strings.Contains(r.errOut, "About to restart 2 nodes:\n  a1\n  a2\nContinue? [y/N]: ")
			if wantAsk := len(tc.args) == 0; asked != wantAsk {
				t.Errorf("asked=%v, want %v; stderr:\n%s", asked, wantAsk, r.errOut)
			}
			posts := f.Posts()
			if !tc.posted {
				if len(posts) != 0 || r.code == 0 || !strings.Contains(r.errOut, "error: aborted: no node was asked to restart") {
					t.Fatalf("declined: exit %d, posts %+v, stderr:\n%s", r.code, posts, r.errOut)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.errOut)
			}
			if len(posts) != 2 {
				t.Fatalf("posts %+v, want a1 and a2", posts)
			}
			for i, want := range []string{"a1", "a2"} {
				if posts[i].Node != want || posts[i].Body["nodeUID"] != "uid-"+want {
					t.Errorf("post %d = %+v, want node %s with its UID as precondition", i, posts[i], want)
				}
			}
			if !strings.HasSuffix(r.errOut, "2 requested, 0 failed\n") {
				t.Errorf("stderr does not end in the summary:\n%s", r.errOut)
			}
		})
	}
}

func TestSelectorMatchesNothing(t *testing.T) {
	f := newFakeServer(t, node("a1", "uid-a1", map[string]string{"pool": "a"}))
	r := f.run(t, testDeps(nil), "", "kubectl-restart", "-l", "pool=z")
	if r.code != 0 || r.errOut != "No resources found\n" || len(f.Posts()) != 0 {
		t.Fatalf("exit %d, stderr %q, posts %+v", r.code, r.errOut, f.Posts())
	}
}

func TestFailuresAndSummary(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil), node("n3", "uid-3", nil))
	f.fail["n3"] = apierrors.NewConflict(infraopsv1.Resource("nodes"), "n3", errorString("restart of n3 by bob is in progress"))
	r := f.run(t, testDeps(nil), "y\n", "kubectl-restart", "n1", "n2", "n3")
	if r.code == 0 {
		t.Fatalf("exit 0 although two nodes failed; stderr:\n%s", r.errOut)
	}
	if want := "node.infraops.michael.io/n1 restart requested (aws i-n1 in us-east-1, cloud request req-n1)\n"; r.out != want {
		t.Errorf("stdout %q, want %q", r.out, want)
	}
	for _, want := range []string{
		`Error from server (NotFound): nodes.infraops.michael.io "n2" not found` + "\n",
		`Error from server (Conflict): Operation cannot be fulfilled on nodes.infraops.michael.io "n3": restart of n3 by bob is in progress` + "\n",
	} {
		if !strings.Contains(r.errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.errOut)
		}
	}
	if !strings.HasSuffix(r.errOut, "\n3 requested, 2 failed\n") {
		t.Errorf("stderr does not end in the summary:\n%s", r.errOut)
	}
	if len(f.Posts()) != 3 {
		t.Errorf("without --wait a failure must not stop the others: posts %+v", f.Posts())
	}
}

func TestSingleFailureExitsNonZero(t *testing.T) {
	f := newFakeServer(t)
	f.fail["n1"] = apierrors.NewForbidden(infraopsv1.Resource("nodes"), "n1", errorString(`User "bob" cannot create resource "nodes/restart" in API group "infraops.michael.io" at the cluster scope`))
	r := f.run(t, testDeps(nil), "", "kubectl-restart", "n1")
	want := `Error from server (Forbidden): nodes.infraops.michael.io "n1" is forbidden: User "bob" cannot create resource "nodes/restart" in API group "infraops.michael.io" at the cluster scope` + "\n"
	if r.code != 1 || r.errOut != want || r.out != "" {
		t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant stderr %q", r.code, r.out, r.errOut, want)
	}
}

func TestMaxInFlight(t *testing.T) {
	var nodes []infraopsv1.Node
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		nodes = append(nodes, node(n, types.UID("uid-"+n), map[string]string{"pool": "a"}))
	}
	f := newFakeServer(t, nodes...)
	var (
		mu              sync.Mutex
		inFlight, most  int
		firstTwoArrived = make(chan struct{})
		arrived         int
	)
	// The first two requests are held until both are in: a plugin that
	// sent them one at a time would never release them.
	f.onPost = func(r *http.Request, _ post) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		arrived++
		if arrived == 2 {
			close(firstTwoArrived)
		}
		mu.Unlock()
		select {
		case <-firstTwoArrived:
		case <-r.Context().Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}
	r := f.run(t, testDeps(nil), "", "kubectl-restart", "-l", "pool=a", "--yes", "--max-in-flight", "2")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.errOut)
	}
	if most != 2 {
		t.Errorf("at most %d requests were in flight, want 2", most)
	}
	if len(f.Posts()) != 4 {
		t.Errorf("posts %+v, want all four", f.Posts())
	}
}

func TestFormatError(t *testing.T) {
	invalid := apierrors.NewInvalid(infraopsv1.Kind("Node"), "fargate-1", field.ErrorList{
		field.Invalid(field.NewPath("spec", "providerID"), "aws:///us-east-1b/abc/fargate-1", "not an EC2 instance: a Fargate task"),
	})
	invalidTwo := apierrors.NewInvalid(infraopsv1.Kind("RestartOptions"), "n1", field.ErrorList{
		field.NotSupported(field.NewPath("mode"), "cold", []string{"soft", "hard"}),
		field.TooLong(field.NewPath("reason"), "", 1024),
	})
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{
			name: "forbidden",
			err:  apierrors.NewForbidden(infraopsv1.Resource("nodes"), "n1", errorString("no RBAC")),
			want: `Error from server (Forbidden): nodes.infraops.michael.io "n1" is forbidden: no RBAC`,
		},
		{
			name: "not found",
			err:  apierrors.NewNotFound(infraopsv1.Resource("nodes"), "n1"),
			want: `Error from server (NotFound): nodes.infraops.michael.io "n1" not found`,
		},
		{
			name: "unauthorized",
			err:  apierrors.NewUnauthorized("Unauthorized"),
			want: `error: You must be logged in to the server (Unauthorized)`,
		},
		{
			name: "invalid, one cause",
			err:  invalid,
			want: `The Node "fargate-1" is invalid: spec.providerID: Invalid value: "aws:///us-east-1b/abc/fargate-1": not an EC2 instance: a Fargate task`,
		},
		{
			name: "invalid, two causes",
			err:  invalidTwo,
			want: "The RestartOptions \"n1\" is invalid: \n* mode: Unsupported value: \"cold\": supported values: \"soft\", \"hard\"\n* reason: Too long: may not be more than 1024 bytes",
		},
		{
			name: "too many requests",
			err:  apierrors.NewTooManyRequests("restart of aws instance i-1: throttled", 3),
			want: `Error from server (TooManyRequests): restart of aws instance i-1: throttled`,
		},
		{
			name: "bad gateway, a reason of this server",
			err:  &apierrors.StatusError{ErrStatus: metav1Status(http.StatusBadGateway, "BadGateway", "restart of aws instance i-1 in us-east-1: UnauthorizedOperation")},
			want: `Error from server (BadGateway): restart of aws instance i-1 in us-east-1: UnauthorizedOperation`,
		},
		{
			name: "status without reason",
			err:  &apierrors.StatusError{ErrStatus: metav1Status(http.StatusBadGateway, "", "upstream broke")},
			want: `Error from server: upstream broke`,
		},
		{
			name: "plain",
			err:  errorString("timed out waiting for node.infraops.michael.io/n1 to come back"),
			want: `error: timed out waiting for node.infraops.michael.io/n1 to come back`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatError(tc.err); got != tc.want {
				t.Errorf("FormatError:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestUnauthorizedThroughTheClient(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil))
	dir := t.TempDir()
	kubeconfig := f.kubeconfig(dir)
	streams := testStreams()
	out := streams.ErrOut.(*lockedBuilder)
	t.Setenv("KUBECONFIG", "")
	code := run(t.Context(), []string{"kubectl-restart", "--kubeconfig", kubeconfig, "--cache-dir", dir, "--token", "wrong", "n1"}, streams, testDeps(nil))
	if want := "error: You must be logged in to the server (Unauthorized)\n"; code != 1 || out.String() != want {
		t.Fatalf("exit %d, stderr %q, want %q (--token must override the kubeconfig)", code, out.String(), want)
	}
}

func TestKubeconfigList(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil))
	dir := t.TempDir()
	real := f.kubeconfig(dir)
	// The first file of the list sets the context; the second has it.
	first := dir + "/first"
	writeFile(t, first, "apiVersion: v1\nkind: Config\ncurrent-context: fake\n")
	t.Setenv("KUBECONFIG", "")
	streams := testStreams()
	code := run(t.Context(), []string{"kubectl-restart", "--kubeconfig", first + ":" + dir + "/missing:" + real, "--cache-dir", dir, "n1"}, streams, testDeps(nil))
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, streams.ErrOut)
	}
	if len(f.Posts()) != 1 {
		t.Fatalf("posts %+v", f.Posts())
	}
}

func TestImpersonationFlags(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil))
	r := f.run(t, testDeps(nil), "", "kubectl-restart", "n1", "--as", "bob", "--as-group", "ops", "--as-group", "oncall")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.errOut)
	}
	if posts := f.Posts(); len(posts) != 1 || !reflect.DeepEqual(posts[0].Impersonate, []string{"bob", "ops", "oncall"}) {
		t.Fatalf("posts %+v, want one impersonating bob in ops and oncall", posts)
	}
}

func TestExecCredentialPlugin(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil))
	dir := t.TempDir()
	helper := filepath.Join(dir, "credential-helper")
	writeFile(t, helper, "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\""+fakeToken+"\"}}'\n")
	if err := os.Chmod(helper, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["fake"] = &clientcmdapi.Cluster{Server: f.srv.URL, CertificateAuthorityData: ca}
	cfg.AuthInfos["exec"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion: "client.authentication.k8s.io/v1", Command: helper, InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
	}}
	cfg.Contexts["fake"] = &clientcmdapi.Context{Cluster: "fake", AuthInfo: "exec"}
	cfg.CurrentContext = "fake"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	streams := testStreams()
	if code := run(t.Context(), []string{"kubectl-restart", "--cache-dir", dir, "n1"}, streams, testDeps(nil)); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, streams.ErrOut)
	}
	if len(f.Posts()) != 1 {
		t.Fatalf("posts %+v: the token of the exec plugin did not get through", f.Posts())
	}
}

func TestInterruptAtThePrompt(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil), node("n2", "uid-2", nil))
	dir := t.TempDir()
	t.Setenv("KUBECONFIG", "")
	streams := testStreams()
	// Nobody ever answers: only the interrupt can end the prompt.
	stdin, _ := io.Pipe()
	streams.In = stdin
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	code := run(ctx, []string{"kubectl-restart", "--kubeconfig", f.kubeconfig(dir), "--cache-dir", dir, "n1", "n2"}, streams, testDeps(nil))
	if errOut := streams.ErrOut.(*lockedBuilder).String(); code != 1 || !strings.Contains(errOut, "error: aborted: no node was asked to restart") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if posts := f.Posts(); len(posts) != 0 {
		t.Fatalf("posts %+v after an interrupt at the prompt", posts)
	}
}

// --version prints the stamped version of the binary it runs as, and
// asks no server.
func TestVersionFlag(t *testing.T) {
	for _, binary := range []string{"kubectl-restart", "kubectl-cloudnode"} {
		streams := testStreams()
		if code := run(t.Context(), []string{binary, "--version"}, streams, testDeps(nil)); code != 0 {
			t.Fatalf("%s: exit %d, stderr:\n%s", binary, code, streams.ErrOut)
		}
		want := binary + " " + version.Version + " (go"
		if out := streams.Out.(*lockedBuilder).String(); !strings.HasPrefix(out, want) {
			t.Errorf("%s --version printed %q, want it to start with %q", binary, out, want)
		}
	}
}

// Nodes are cluster-scoped: neither the help nor the parser knows
// -n/--namespace.
func TestNoNamespaceFlag(t *testing.T) {
	for _, args := range [][]string{{"kubectl-restart", "--help"}, {"kubectl-cloudnode", "restart", "--help"}} {
		streams := testStreams()
		if code := run(t.Context(), args, streams, testDeps(nil)); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		if out := streams.Out.(*lockedBuilder).String(); strings.Contains(out, "--namespace") || !strings.Contains(out, "--kubeconfig") {
			t.Errorf("%v shows --namespace (or no connection flags):\n%s", args, out)
		}
	}
	streams := testStreams()
	if code := run(t.Context(), []string{"kubectl-restart", "-n", "default", "n1"}, streams, testDeps(nil)); code == 0 ||
		!strings.Contains(streams.ErrOut.(*lockedBuilder).String(), "unknown shorthand flag: 'n'") {
		t.Errorf("-n accepted (exit %d):\n%s", code, streams.ErrOut)
	}
}
