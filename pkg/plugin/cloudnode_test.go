package plugin

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// withHibernate makes the server also serve nodes/hibernate, an action this plugin
// has no entry for.
func withHibernate(f *fakeServer) *fakeServer {
	f.actions = append(f.actions, servedAction{Name: "hibernate", Kind: "HibernateOptions"})
	return f
}

func TestCloudnodeRunsKnownAndDiscoveredActions(t *testing.T) {
	f := withHibernate(newFakeServer(t, node("n1", "uid-1", nil)))

	r := f.run(t, testDeps(nil), "", "kubectl-cloudnode", "restart", "n1", "--mode", "hard")
	if r.code != 0 {
		t.Fatalf("cloudnode restart: exit %d, stderr:\n%s", r.code, r.errOut)
	}
	r = f.run(t, testDeps(nil), "", "kubectl-cloudnode", "hibernate", "n1", "--reason", "save money", "--dry-run=server")
	if r.code != 0 {
		t.Fatalf("cloudnode hibernate: exit %d, stderr:\n%s", r.code, r.errOut)
	}
	if want := "node.infraops.michael.io/n1 hibernate requested (aws i-n1 in us-east-1, cloud request req-n1) (server dry run)\n"; r.out != want {
		t.Errorf("stdout %q, want %q", r.out, want)
	}
	// The same binary under the action's own name.
	r = f.run(t, testDeps(nil), "", "kubectl-hibernate", "n1")
	if r.code != 0 {
		t.Fatalf("kubectl-hibernate: exit %d, stderr:\n%s", r.code, r.errOut)
	}

	posts := f.Posts()
	want := []post{
		{Node: "n1", Action: "restart", Body: map[string]any{"apiVersion": "infraops.michael.io/v1", "kind": "RestartOptions", "mode": "hard"}},
		{Node: "n1", Action: "hibernate", Body: map[string]any{"apiVersion": "infraops.michael.io/v1", "kind": "HibernateOptions", "reason": "save money", "dryRun": []any{"All"}}},
		{Node: "n1", Action: "hibernate", Body: map[string]any{"apiVersion": "infraops.michael.io/v1", "kind": "HibernateOptions"}},
	}
	if !reflect.DeepEqual(posts, want) {
		t.Errorf("posts\n%+v\nwant\n%+v", posts, want)
	}
}

func TestCloudnodeRefusesUnservedActions(t *testing.T) {
	f := withHibernate(newFakeServer(t, node("n1", "uid-1", nil)))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{args: []string{"reboot", "n1"}, want: `error: the server has no node action "reboot"; it serves: hibernate, restart`},
		{args: nil, want: "error: you must specify an action, e.g. kubectl cloudnode restart NODE; see 'kubectl cloudnode --help'"},
	} {
		r := f.run(t, testDeps(nil), "", "kubectl-cloudnode", tc.args...)
		if r.code != 1 || strings.TrimSpace(r.errOut) != tc.want {
			t.Errorf("cloudnode %q: exit %d, stderr %q, want %q", tc.args, r.code, r.errOut, tc.want)
		}
	}
	// A server older than the plugin: restart is known here, not there.
	f.actions = nil
	r := f.run(t, testDeps(nil), "", "kubectl-cloudnode", "restart", "n1")
	if want := "error: the server serves no node actions of infraops.michael.io/v1"; r.code != 1 || strings.TrimSpace(r.errOut) != want {
		t.Errorf("exit %d, stderr %q, want %q", r.code, r.errOut, want)
	}
	if posts := f.Posts(); len(posts) != 0 {
		t.Errorf("unserved actions were posted: %+v", posts)
	}
}

// staleDiscovery is a cached discovery client whose cache predates the
// server's hibernate action.
type staleDiscovery struct {
	discovery.CachedDiscoveryInterface
	fresh, invalidated bool
}

func (d *staleDiscovery) Fresh() bool { return d.fresh }
func (d *staleDiscovery) Invalidate() { d.invalidated, d.fresh = true, true }
func (d *staleDiscovery) ServerResourcesForGroupVersion(string) (*metav1.APIResourceList, error) {
	l := &metav1.APIResourceList{APIResources: []metav1.APIResource{
		{Name: "nodes", Verbs: []string{"get", "list"}},
		{Name: "nodes/restart", Kind: "RestartOptions", Verbs: []string{"create"}},
		// Not an action: nothing may be posted to it.
		{Name: "nodes/status", Kind: "Node", Verbs: []string{"get"}},
	}}
	if d.invalidated {
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: "nodes/hibernate", Kind: "HibernateOptions", Verbs: []string{"create"}})
	}
	return l, nil
}

func TestResolveActionRefreshesAStaleCache(t *testing.T) {
	d := &staleDiscovery{}
	a, err := resolveAction(d, "hibernate")
	if err != nil {
		t.Fatal(err)
	}
	if !d.invalidated || a.Name != "hibernate" || a.Kind != "HibernateOptions" || a.NewOptions != nil || a.Until != GoalNone {
		t.Fatalf("resolved %+v (invalidated=%v), want the discovered hibernate with the common options", a, d.invalidated)
	}
	d = &staleDiscovery{}
	if a, err := resolveAction(d, "restart"); err != nil || d.invalidated || a.NewOptions == nil {
		t.Fatalf("restart: %+v, %v (invalidated=%v): a cached hit must not refresh, a known action keeps its options", a, err, d.invalidated)
	}
	if _, err := resolveAction(&staleDiscovery{}, "status"); err == nil {
		t.Fatal("nodes/status resolved as an action")
	}
}

func TestDiscoveredActionBody(t *testing.T) {
	a := discoveredAction("hibernate", "")
	body := a.body(infraopsv1.ActionOptions{Reason: "r", NodeUID: "u"}, nil)
	got, ok := body.(*commonOptions)
	if !ok || got.Kind != "HibernateOptions" || got.APIVersion != "infraops.michael.io/v1" || got.Reason != "r" || got.NodeUID != "u" {
		t.Fatalf("body %#v", body)
	}
	if cp := body.DeepCopyObject().(*commonOptions); !reflect.DeepEqual(cp, got) {
		t.Fatalf("deep copy %#v differs from %#v", cp, got)
	}
}

// complete runs the hidden __complete command as kubectl's completion
// script does and returns the suggestions and the directive line.
func (f *fakeServer) complete(t *testing.T, binary string, args ...string) []string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv(clientcmd.RecommendedConfigPathEnvVar, "")
	streams := testStreams()
	all := append([]string{binary, "__complete", "--kubeconfig", f.kubeconfig(dir), "--cache-dir", filepath.Join(dir, "cache")}, args...)
	if code := run(t.Context(), all, streams, testDeps(nil)); code != 0 {
		t.Fatalf("__complete %q: exit %d, stderr:\n%s", args, code, streams.ErrOut)
	}
	return strings.Split(strings.TrimSpace(streams.Out.(*lockedBuilder).String()), "\n")
}

func TestCompletion(t *testing.T) {
	// In name order, as the server lists them.
	f := withHibernate(newFakeServer(t, node("m1", "uid-3", nil), node("n1", "uid-1", nil), node("n2", "uid-2", nil)))
	for _, tc := range []struct {
		binary string
		args   []string
		want   []string
	}{
		{binary: "kubectl-restart", args: []string{""}, want: []string{"m1", "n1", "n2", ":4"}},
		{binary: "kubectl-restart", args: []string{"n"}, want: []string{"n1", "n2", ":4"}},
		{binary: "kubectl-restart", args: []string{"n1", ""}, want: []string{"m1", "n2", ":4"}},
		{binary: "kubectl-restart", args: []string{"--mode", ""}, want: []string{"soft", "hard", ":4"}},
		{binary: "kubectl-restart", args: []string{"-o", ""}, want: []string{"json", "name", "yaml", ":4"}},
		{binary: "kubectl-restart", args: []string{"--context", ""}, want: []string{"fake", ":4"}},
		{binary: "kubectl-cloudnode", args: []string{"restart", "m"}, want: []string{"m1", ":4"}},
		{binary: "kubectl-cloudnode", args: []string{"hibernate", "n2", "n"}, want: []string{"n1", ":4"}},
	} {
		if got := f.complete(t, tc.binary, tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s __complete %q = %q, want %q", tc.binary, tc.args, got, tc.want)
		}
	}
	// The action: the subcommands, and what discovery adds.
	got := f.complete(t, "kubectl-cloudnode", "")
	for _, want := range []string{"restart\tRestart the cloud machines behind nodes", "hibernate", ":4"} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("cloudnode __complete \"\" = %q, lacks %q", got, want)
		}
	}
}
