package chart_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The release every test renders, and the names it gives.
const (
	release   = "cnm"
	namespace = "infra"
	// fullname: the release name does not contain the chart name.
	fullname    = "cnm-k8s-cloud-node-manager"
	serviceDNS  = fullname + "." + namespace + ".svc"
	group       = "infraops.michael.io"
	apiSvcName  = "v1." + group
	modulePath  = "github.com/michael/k8s-cloud-node-manager"
	chartSubdir = "config/chart/k8s-cloud-node-manager"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error

	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// repoRoot walks up from the package directory to the project's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no go.mod of %s above the working directory", modulePath)
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatal(rootErr)
	}
	return rootDir
}

// helmBin is $HELM_BIN, else what hack/build-helm.sh builds (or finds in its
// cache). A missing helm fails the tests: skipping would turn "cannot check
// the chart" into a green run.
func helmBin(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	helmOnce.Do(func() {
		if p := os.Getenv("HELM_BIN"); p != "" {
			helmPath = p
			return
		}
		cmd := exec.Command(filepath.Join(root, "hack", "build-helm.sh"))
		cmd.Dir = root
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			helmErr = fmt.Errorf("hack/build-helm.sh: %w\n%s", err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		helmPath = strings.TrimSpace(lines[len(lines)-1])
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	if st, err := os.Stat(helmPath); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("helm binary %q is not an executable file (HELM_BIN or hack/build-helm.sh): %v", helmPath, err)
	}
	return helmPath
}

func chartDir(t *testing.T) string {
	return filepath.Join(repoRoot(t), chartSubdir)
}

// runHelm runs helm with a private HOME-like environment, so that a
// developer's helm repositories or plugins cannot change the result.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.CommandContext(t.Context(), helmBin(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(tmp, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(tmp, "config"),
		"HELM_DATA_HOME="+filepath.Join(tmp, "data"),
		// No cluster: helm template must not depend on one.
		"KUBECONFIG="+filepath.Join(tmp, "no-kubeconfig"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// writeValues writes a values file and returns its path.
func writeValues(t *testing.T, values string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// render runs helm template for the test release with the given values
// (a YAML document, may be empty) and extra args, and decodes the output.
func render(t *testing.T, values string, extra ...string) manifest {
	t.Helper()
	out, stderr, err := renderRaw(t, values, extra...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	m, err := decode(out)
	if err != nil {
		t.Fatalf("decoding helm template output: %v\n%s", err, out)
	}
	return m
}

func renderRaw(t *testing.T, values string, extra ...string) (string, string, error) {
	t.Helper()
	args := []string{"template", release, chartDir(t), "--namespace", namespace}
	if values != "" {
		args = append(args, "-f", writeValues(t, values))
	}
	return runHelm(t, append(args, extra...)...)
}

// manifest is a rendered set of objects, in output order.
type manifest []*unstructured.Unstructured

// decode splits a multi-document YAML stream and decodes each non-empty
// document into an unstructured object.
func decode(data string) (manifest, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(data)))
	var m manifest
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("%w in document:\n%s", err, doc)
		}
		if len(obj) == 0 {
			continue // only comments
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document without apiVersion, kind or name:\n%s", doc)
		}
		m = append(m, u)
	}
}

// all returns the objects of a kind.
func (m manifest) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// get returns the one object of kind and name, failing the test otherwise.
func (m manifest) get(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range m.all(kind) {
		if o.GetName() == name {
			if found != nil {
				t.Fatalf("two %s objects named %s", kind, name)
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("no %s %s in the output; have %s", kind, name, m.names())
	}
	return found
}

func (m manifest) has(kind, name string) bool {
	for _, o := range m.all(kind) {
		if o.GetName() == name {
			return true
		}
	}
	return false
}

func (m manifest) names() string {
	var s []string
	for _, o := range m {
		s = append(s, o.GetKind()+"/"+o.GetName())
	}
	return strings.Join(s, ", ")
}

// str reads a string field, failing when it is missing or not a string.
func str(t *testing.T, obj map[string]any, fields ...string) string {
	t.Helper()
	v, ok, err := unstructured.NestedString(obj, fields...)
	if err != nil || !ok {
		t.Fatalf("field %s: missing or not a string (%v)", strings.Join(fields, "."), err)
	}
	return v
}

func num(t *testing.T, obj map[string]any, fields ...string) int64 {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(obj, fields...)
	if err != nil || !ok {
		t.Fatalf("field %s: missing (%v)", strings.Join(fields, "."), err)
	}
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	}
	t.Fatalf("field %s: %v (%T) is not a number", strings.Join(fields, "."), v, v)
	return 0
}

func slice(t *testing.T, obj map[string]any, fields ...string) []any {
	t.Helper()
	v, ok, err := unstructured.NestedSlice(obj, fields...)
	if err != nil || !ok {
		t.Fatalf("field %s: missing or not a list (%v)", strings.Join(fields, "."), err)
	}
	return v
}

func mapOf(t *testing.T, obj map[string]any, fields ...string) map[string]any {
	t.Helper()
	v, ok, err := unstructured.NestedMap(obj, fields...)
	if err != nil || !ok {
		t.Fatalf("field %s: missing or not a map (%v)", strings.Join(fields, "."), err)
	}
	return v
}

// rbacRules flattens a role's rules to sorted "group|resource|verb|name"
// strings (name empty without resourceNames), so that two rule lists that
// grant the same thing compare equal however they are grouped.
func rbacRules(t *testing.T, role *unstructured.Unstructured) []string {
	t.Helper()
	var out []string
	for _, r := range slice(t, role.Object, "rules") {
		rule := r.(map[string]any)
		groups := strs(rule["apiGroups"])
		resources := strs(rule["resources"])
		verbs := strs(rule["verbs"])
		names := strs(rule["resourceNames"])
		if len(names) == 0 {
			names = []string{""}
		}
		if len(strs(rule["nonResourceURLs"])) > 0 {
			t.Fatalf("%s %s has nonResourceURLs", role.GetKind(), role.GetName())
		}
		for _, g := range groups {
			for _, res := range resources {
				for _, v := range verbs {
					for _, n := range names {
						out = append(out, strings.Join([]string{g, res, v, n}, "|"))
					}
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// subjects returns a binding's subjects as "Kind:namespace/name".
func subjects(t *testing.T, binding *unstructured.Unstructured) []string {
	t.Helper()
	var out []string
	for _, s := range slice(t, binding.Object, "subjects") {
		m := s.(map[string]any)
		ns, _ := m["namespace"].(string)
		out = append(out, fmt.Sprintf("%s:%s/%s", m["kind"], ns, m["name"]))
	}
	sort.Strings(out)
	return out
}

func roleRef(t *testing.T, binding *unstructured.Unstructured) string {
	t.Helper()
	return str(t, binding.Object, "roleRef", "kind") + "/" + str(t, binding.Object, "roleRef", "name")
}
