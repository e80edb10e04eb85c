package apiserver

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The options kube-apiserver refuses are refused here too, with a 4xx.
func TestListOptionsValidation(t *testing.T) {
	h := startServer(t)
	for query, code := range map[string]int{
		"?sendInitialEvents=true":                                           422,
		"?watch=1&sendInitialEvents=true":                                   422,
		"?watch=1&resourceVersionMatch=NotOlderThan":                        422,
		"?resourceVersionMatch=Exact":                                       422,
		"?resourceVersion=abc":                                              400,
		"?watch=1&resourceVersion=abc":                                      400,
		"?continue=abc":                                                     400,
		"?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan": 200,
	} {
		path := "/apis/infraops.michael.io/v1/nodes" + query
		if strings.Contains(query, "watch=1") {
			path += "&timeoutSeconds=1"
		}
		r := h.do(http.MethodGet, path, "alice", "")
		if r.code != code {
			t.Errorf("%s: want %d, got %d %s", query, code, r.code, r.body)
		}
	}
}

// client-go's watch-list request, on the wire: an ADDED event per node,
// then the bookmark that ends them.
func TestWatchListOnTheWire(t *testing.T) {
	h := startServer(t)
	req, _ := http.NewRequest(http.MethodGet, h.base+"/apis/infraops.michael.io/v1/nodes?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5", nil)
	req.Header.Set("X-Test-User", "alice")
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	added := 0
	for {
		var e struct {
			Type   string `json:"type"`
			Object struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			} `json:"object"`
		}
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("after %d ADDED: %v", added, err)
		}
		if e.Type == "ADDED" {
			added++
			continue
		}
		if e.Type != "BOOKMARK" || e.Object.Metadata.Annotations[metav1.InitialEventsAnnotationKey] != "true" || e.Object.Metadata.ResourceVersion == "" {
			t.Fatalf("want the initial-events-end bookmark, got %+v", e)
		}
		break
	}
	if added != 15 {
		t.Fatalf("want 15 ADDED before the bookmark, got %d", added)
	}
}

// A name that is not a node name is a 4xx before any kube call, for the
// view and for the actions: never a 5xx.
func TestInvalidNodeNames(t *testing.T) {
	h := startServer(t)
	before := len(h.kube.Actions())
	for _, name := range []string{"a%25b", "%2E", "%2E%2E", "Foo_Bar", "a%20b"} {
		for _, r := range []response{
			h.do(http.MethodGet, "/apis/infraops.michael.io/v1/nodes/"+name, "alice", ""),
			h.do(http.MethodPost, restartPath(name), "alice", `{"dryRun":["All"]}`),
		} {
			if r.code != http.StatusBadRequest && r.code != http.StatusNotFound {
				t.Errorf("%s: want 400 or 404, got %d %s", name, r.code, r.body)
				continue
			}
			if s := r.status(t); s.Code != int32(r.code) {
				t.Errorf("%s: Status code %d in a %d answer", name, s.Code, r.code)
			}
		}
	}
	for _, a := range h.kube.Actions()[before:] {
		if a.GetResource().Resource == "nodes" && a.GetVerb() == "get" {
			t.Errorf("an invalid name reached kube-apiserver: %v", a)
		}
	}
}

// --kube-api-qps and --kube-api-burst reach the client the server uses,
// which speaks protobuf.
func TestKubeClientFlags(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		qps   float32
		burst int
	}{
		{nil, DefaultKubeAPIQPS, DefaultKubeAPIBurst},
		{[]string{"--kube-api-qps=123", "--kube-api-burst=456"}, 123, 456},
	} {
		o := NewOptions()
		fs := o.Flags()
		all := fs.FlagSet("all")
		for _, s := range fs.Order {
			all.AddFlagSet(fs.FlagSets[s])
		}
		if err := all.Parse(append([]string{"--kubeconfig", kubeconfig}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := o.restConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.QPS != tc.qps || cfg.Burst != tc.burst || cfg.ContentType != "application/vnd.kubernetes.protobuf" {
			t.Fatalf("%v: rest config QPS %v burst %d content type %q", tc.args, cfg.QPS, cfg.Burst, cfg.ContentType)
		}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := kube.CoreV1().RESTClient().GetRateLimiter().QPS(); got != tc.qps {
			t.Fatalf("%v: the client's limiter runs at %v QPS", tc.args, got)
		}
		if got := kube.CoordinationV1().RESTClient().GetRateLimiter(); got != kube.CoreV1().RESTClient().GetRateLimiter() {
			t.Fatalf("Leases and Nodes do not share one rate limiter")
		}
	}
	o := NewOptions()
	o.KubeAPIQPS = 0
	if errs := o.Validate(); len(errs) == 0 || !strings.Contains(errs[len(errs)-1].Error(), "kube-api-qps") {
		t.Fatalf("--kube-api-qps=0 accepted: %v", errs)
	}
}
