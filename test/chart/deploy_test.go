package chart_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The plain manifests' release: named like the chart, so names are plain.
const (
	deployNamespace = "k8s-cloud-node-manager"
	deployName      = "k8s-cloud-node-manager"
)

func readManifest(t *testing.T, rel string) manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	m, err := decode(string(data))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return m
}

// TestPlainManifests checks config/deploy/k8s-cloud-node-manager.yaml as
// committed (hack/verify-manifests.sh checks it is fresh): one namespace,
// the serving Secret expected from outside, no insecure APIService.
func TestPlainManifests(t *testing.T) {
	m := readManifest(t, "config/deploy/k8s-cloud-node-manager.yaml")
	if m[0].GetKind() != "Namespace" || m[0].GetName() != deployNamespace {
		t.Fatalf("the first object is %s/%s, want the Namespace (kubectl apply creates in order)", m[0].GetKind(), m[0].GetName())
	}
	for _, o := range m {
		ns := o.GetNamespace()
		switch {
		case o.GetKind() == "RoleBinding" && ns == "kube-system":
		case ns != "" && ns != deployNamespace:
			t.Errorf("%s/%s in namespace %q", o.GetKind(), o.GetName(), ns)
		}
	}
	a := m.get(t, "APIService", apiSvcName)
	spec := mapOf(t, a.Object, "spec")
	if _, ok := spec["insecureSkipTLSVerify"]; ok {
		t.Fatal("insecureSkipTLSVerify in the plain manifests")
	}
	// The CA is patched in after the Secret exists (hack/gen-serving-cert.sh):
	// a caBundle in the file would trust a CA nobody has the key of.
	if _, ok := spec["caBundle"]; ok {
		t.Fatal("the plain manifests carry a caBundle")
	}
	if len(m.all("Secret")) != 0 {
		t.Fatal("the plain manifests carry a Secret (a private key in git)")
	}
	d := m.get(t, "Deployment", deployName)
	for _, v := range slice(t, d.Object, "spec", "template", "spec", "volumes") {
		vm := v.(map[string]any)
		if vm["name"] == "tls" && str(t, vm, "secret", "secretName") != deployName+"-tls" {
			t.Fatalf("the Deployment mounts %v", vm)
		}
	}
	if num(t, d.Object, "spec", "replicas") != 2 {
		t.Fatal("replicas")
	}
	m.get(t, "PodDisruptionBudget", deployName)
}

// TestOutOfClusterManifests: the developer variant grants the server
// exactly the in-cluster RBAC, and registers an ExternalName Service to
// localhost with a caBundle placeholder that cannot be applied unedited.
func TestOutOfClusterManifests(t *testing.T) {
	dir := "config/deploy/out-of-cluster"
	entries, err := os.ReadDir(filepath.Join(repoRoot(t), dir))
	if err != nil {
		t.Fatal(err)
	}
	var all manifest
	for _, e := range entries {
		all = append(all, readManifest(t, filepath.Join(dir, e.Name()))...)
	}
	inCluster := readManifest(t, "config/deploy/k8s-cloud-node-manager.yaml")

	// Same ServiceAccount, roles and bindings as the in-cluster install.
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
		var got, want []string
		for _, o := range all.all(kind) {
			got = append(got, o.GetNamespace()+"/"+o.GetName())
		}
		for _, o := range inCluster.all(kind) {
			want = append(want, o.GetNamespace()+"/"+o.GetName())
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: out-of-cluster %v, in-cluster %v", kind, got, want)
		}
		for _, o := range all.all(kind) {
			if strings.HasSuffix(kind, "Role") {
				if g, w := rbacRules(t, o), rbacRules(t, inCluster.get(t, kind, o.GetName())); !slices.Equal(g, w) {
					t.Fatalf("%s %s grants %v out of cluster, %v in cluster", kind, o.GetName(), g, w)
				}
			}
		}
	}
	for _, kind := range []string{"Deployment", "PodDisruptionBudget", "ConfigMap", "Secret"} {
		if len(all.all(kind)) != 0 {
			t.Fatalf("out-of-cluster manifests have a %s", kind)
		}
	}

	svc := all.get(t, "Service", deployName)
	if str(t, svc.Object, "spec", "type") != "ExternalName" || str(t, svc.Object, "spec", "externalName") != "localhost" {
		t.Fatalf("Service spec %v", svc.Object["spec"])
	}
	a := all.get(t, "APIService", apiSvcName)
	spec := mapOf(t, a.Object, "spec")
	if _, ok := spec["insecureSkipTLSVerify"]; ok {
		t.Fatal("insecureSkipTLSVerify")
	}
	if got := str(t, spec, "caBundle"); got != "${CA_BUNDLE}" {
		t.Fatalf("caBundle %q, want the documented placeholder ${CA_BUNDLE}", got)
	}
	if str(t, spec, "service", "name") != deployName || str(t, spec, "service", "namespace") != deployNamespace {
		t.Fatal("the APIService points elsewhere")
	}
	all.get(t, "Namespace", deployNamespace)
}
