package plugin

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// fakeServer serves the parts of infraops.michael.io/v1 the plugin uses:
// discovery, the node list and POST nodes/{name}/<action>. It checks the
// bearer token, so a test knows the kubeconfig was used.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// nodes are the group's nodes.
	nodes []infraopsv1.Node
	// actions are the served actions, as discovery lists them.
	actions []servedAction
	// fail maps a node name to the error its actions answer.
	fail map[string]*apierrors.StatusError
	// posts are the action requests received, in order.
	posts []post
	// onPost, when set, runs inside the POST handler before it answers.
	onPost func(r *http.Request, p post)
}

type post struct {
	Node, Action string
	Body         map[string]any
	// Impersonate is the Impersonate-User header and groups, if any.
	Impersonate []string
}

const fakeToken = "test-token"

func newFakeServer(t *testing.T, nodes ...infraopsv1.Node) *fakeServer {
	t.Helper()
	f := &fakeServer{
		t:       t,
		nodes:   nodes,
		actions: []servedAction{{Name: "restart", Kind: "RestartOptions"}},
		fail:    map[string]*apierrors.StatusError{},
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func node(name string, uid types.UID, lbls map[string]string) infraopsv1.Node {
	return infraopsv1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: uid, Labels: lbls},
		Status: infraopsv1.NodeStatus{
			Cloud: &infraopsv1.CloudInstance{Provider: "aws", Region: "us-east-1", Zone: "us-east-1a", InstanceID: "i-" + name},
			Ready: "True",
		},
	}
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+fakeToken {
		f.status(w, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	const gv = "/apis/infraops.michael.io/v1"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api":
		f.json(w, http.StatusOK, metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"}})
	case r.Method == http.MethodGet && r.URL.Path == "/apis":
		v := metav1.GroupVersionForDiscovery{GroupVersion: infraopsv1.SchemeGroupVersion.String(), Version: "v1"}
		f.json(w, http.StatusOK, metav1.APIGroupList{
			TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups:   []metav1.APIGroup{{Name: infraopsv1.GroupName, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v}},
		})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1":
		f.json(w, http.StatusOK, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "v1"})
	case r.Method == http.MethodGet && r.URL.Path == gv:
		f.discovery(w)
	case r.Method == http.MethodGet && r.URL.Path == gv+"/nodes":
		f.list(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, gv+"/nodes/"):
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, gv+"/nodes/"), "/")
		if len(parts) != 2 {
			f.status(w, apierrors.NewNotFound(infraopsv1.Resource("nodes"), r.URL.Path))
			return
		}
		f.act(w, r, parts[0], parts[1])
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeServer) discovery(w http.ResponseWriter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: infraopsv1.SchemeGroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: "nodes", SingularName: "node", Kind: "Node", Verbs: []string{"get", "list"}}},
	}
	for _, a := range f.actions {
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: "nodes/" + a.Name, Kind: a.Kind, Verbs: []string{"create"}})
	}
	f.json(w, http.StatusOK, list)
}

func (f *fakeServer) list(w http.ResponseWriter, r *http.Request) {
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		f.status(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	list := infraopsv1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: infraopsv1.SchemeGroupVersion.String()}, Items: []infraopsv1.Node{}}
	for _, n := range f.nodes {
		if sel.Matches(labels.Set(n.Labels)) {
			list.Items = append(list.Items, n)
		}
	}
	f.json(w, http.StatusOK, list)
}

func (f *fakeServer) act(w http.ResponseWriter, r *http.Request, name, action string) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		f.status(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		f.status(w, apierrors.NewBadRequest("body is not JSON: "+err.Error()))
		return
	}
	p := post{Node: name, Action: action, Body: body}
	if u := r.Header.Get("Impersonate-User"); u != "" {
		p.Impersonate = append([]string{u}, r.Header.Values("Impersonate-Group")...)
	}
	f.mu.Lock()
	f.posts = append(f.posts, p)
	onPost := f.onPost
	failure := f.fail[name]
	var found *infraopsv1.Node
	for i := range f.nodes {
		if f.nodes[i].Name == name {
			found = f.nodes[i].DeepCopy()
		}
	}
	f.mu.Unlock()
	if onPost != nil {
		onPost(r, p)
	}
	if failure != nil {
		f.status(w, failure)
		return
	}
	if found == nil {
		f.status(w, apierrors.NewNotFound(infraopsv1.Resource("nodes"), name))
		return
	}
	mode, _ := body["mode"].(string)
	reason, _ := body["reason"].(string)
	dryRun, _ := body["dryRun"].([]any)
	f.json(w, http.StatusAccepted, infraopsv1.NodeAction{
		TypeMeta:       metav1.TypeMeta{Kind: "NodeAction", APIVersion: infraopsv1.SchemeGroupVersion.String()},
		Action:         action,
		NodeName:       name,
		NodeUID:        found.UID,
		Cloud:          *found.Status.Cloud,
		Mode:           mode,
		DryRun:         len(dryRun) > 0,
		Reason:         reason,
		CloudRequestID: "req-" + name,
		User:           "alice",
	})
}

func (f *fakeServer) status(w http.ResponseWriter, err *apierrors.StatusError) {
	s := err.Status()
	s.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	f.json(w, int(s.Code), s)
}

func (f *fakeServer) json(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		f.t.Errorf("encoding the answer: %v", err)
	}
}

func (f *fakeServer) Posts() []post {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]post(nil), f.posts...)
}

// kubeconfig writes a kubeconfig for the server, trusting its CA and
// carrying the token, and returns its path.
func (f *fakeServer) kubeconfig(dir string) string {
	f.t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["fake"] = &clientcmdapi.Cluster{Server: f.srv.URL, CertificateAuthorityData: ca}
	cfg.AuthInfos["alice"] = &clientcmdapi.AuthInfo{Token: fakeToken}
	cfg.Contexts["fake"] = &clientcmdapi.Context{Cluster: "fake", AuthInfo: "alice"}
	cfg.CurrentContext = "fake"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// result is one run of the plugin.
type result struct {
	code        int
	out, errOut string
}

// runPlugin runs the binary against the fake server with stdin.
func (f *fakeServer) run(t *testing.T, d deps, stdin string, binary string, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := f.kubeconfig(dir)
	// The loader reads KUBECONFIG; the test's value must not leak in.
	t.Setenv(clientcmd.RecommendedConfigPathEnvVar, "")
	streams := testStreams()
	streams.In = strings.NewReader(stdin)
	all := append([]string{binary, "--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)
	code := run(context.Background(), all, streams, d)
	return result{code: code, out: streams.Out.(*lockedBuilder).String(), errOut: streams.ErrOut.(*lockedBuilder).String()}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
