// Package chart_test checks the Helm chart in config/chart and the plain
// manifests rendered from it in config/deploy, with the real helm binary
// (HELM_BIN, or hack/build-helm.sh): helm lint, helm template in each TLS
// mode, and the schema refusing bad values. The e2e suite (test/e2e) then
// applies the manifests to a real kube-apiserver and runs the server with
// the chart's ServiceAccount.
package chart_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
)

// What the server calls on kube-apiserver, traced in the chart's
// rbac-server.yaml: Nodes (informer and a fresh GET before each action) and
// Events on them (client-go's recorder: create, and patch for a repeat).
var wantServerClusterRules = []string{
	"|events|create|",
	"|events|patch|",
	"|nodes|get|",
	"|nodes|list|",
	"|nodes|watch|",
}

// The per-node lock Leases (pkg/registry/node/lock.go), lastAction
// records (history.go: list and watch feed every replica's view) and the
// policy's budget slots (pkg/policy, listed by label).
var wantLeaseRules = []string{
	"coordination.k8s.io|leases|create|",
	"coordination.k8s.io|leases|delete|",
	"coordination.k8s.io|leases|get|",
	"coordination.k8s.io|leases|list|",
	"coordination.k8s.io|leases|update|",
	"coordination.k8s.io|leases|watch|",
}

var wantViewRules = []string{
	group + "|budgets|get|",
	group + "|budgets|list|",
	group + "|nodes|get|",
	group + "|nodes|list|",
	group + "|nodes|watch|",
}

var wantRestarterRules = []string{group + "|nodes/restart|create|"}

// testCA is a CA certificate for tls.mode=existingSecret, made once per
// run (the chart only passes the certificate on, so its key is dropped).
var testCA = func() string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "chart-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}()

func TestLint(t *testing.T) {
	cases := map[string][]string{
		"defaults":       nil,
		"cert-manager":   {"--set", "tls.mode=cert-manager"},
		"existingSecret": {"--set", "tls.mode=existingSecret", "--set", "tls.existingSecret.name=tls", "--set-file", "tls.existingSecret.caBundle=" + writeCA(t)},
	}
	for name, extra := range cases {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir(t), "--namespace", namespace}, extra...)
			out, stderr, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, stderr)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint output does not report success:\n%s", out)
			}
		})
	}
}

func writeCA(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, []byte(testCA), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTemplateTLSModes renders each TLS mode and checks what every install
// needs, then what each mode adds.
func TestTemplateTLSModes(t *testing.T) {
	t.Run("helm", func(t *testing.T) {
		m := render(t, "")
		checkCommon(t, m)
		secretName := fullname + "-tls"
		if got := tlsVolumeSecret(t, m); got != secretName {
			t.Fatalf("the Deployment mounts Secret %q, want %q", got, secretName)
		}
		secret := m.get(t, "Secret", secretName)
		if typ := str(t, secret.Object, "type"); typ != "kubernetes.io/tls" {
			t.Fatalf("Secret type %q", typ)
		}
		caB64 := str(t, secret.Object, "data", "ca.crt")
		apiSvc := m.get(t, "APIService", apiSvcName)
		if got := str(t, apiSvc.Object, "spec", "caBundle"); got != caB64 {
			t.Fatal("the APIService's caBundle is not the CA of the generated Secret")
		}
		// The generated certificate must be one kube-apiserver accepts:
		// signed by the caBundle CA, for <service>.<namespace>.svc.
		ca := parseCert(t, b64(t, caB64))
		leaf := parseCert(t, b64(t, str(t, secret.Object, "data", "tls.crt")))
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: serviceDNS, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Fatalf("the serving certificate does not verify for %s against the caBundle: %v", serviceDNS, err)
		}
		if key := b64(t, str(t, secret.Object, "data", "tls.key")); !strings.Contains(string(key), "PRIVATE KEY") {
			t.Fatal("tls.key is not a PEM private key")
		}
		if len(m.all("Certificate")) != 0 || len(m.all("Issuer")) != 0 {
			t.Fatal("cert-manager objects rendered in tls.mode=helm")
		}
	})

	t.Run("cert-manager", func(t *testing.T) {
		m := render(t, "tls: {mode: cert-manager}")
		checkCommon(t, m)
		apiSvc := m.get(t, "APIService", apiSvcName)
		if _, ok := apiSvc.Object["spec"].(map[string]any)["caBundle"]; ok {
			t.Fatal("caBundle set in cert-manager mode; cainjector owns it")
		}
		inject := apiSvc.GetAnnotations()["cert-manager.io/inject-ca-from"]
		if inject != namespace+"/"+fullname+"-serving" {
			t.Fatalf("inject-ca-from = %q", inject)
		}
		// The chain: self-signed Issuer -> CA Certificate -> CA Issuer ->
		// serving Certificate into the Secret the Deployment mounts.
		selfSigned := m.get(t, "Issuer", fullname+"-selfsigned")
		mapOf(t, selfSigned.Object, "spec", "selfSigned")
		caCert := m.get(t, "Certificate", fullname+"-ca")
		if isCA, _, _ := unstructured.NestedBool(caCert.Object, "spec", "isCA"); !isCA {
			t.Fatal("the CA Certificate is not isCA")
		}
		if ref := str(t, caCert.Object, "spec", "issuerRef", "name"); ref != selfSigned.GetName() {
			t.Fatalf("the CA Certificate is issued by %q", ref)
		}
		caIssuer := m.get(t, "Issuer", fullname+"-ca")
		if got, want := str(t, caIssuer.Object, "spec", "ca", "secretName"), str(t, caCert.Object, "spec", "secretName"); got != want {
			t.Fatalf("the CA Issuer signs with Secret %q, the CA Certificate is stored in %q", got, want)
		}
		serving := m.get(t, "Certificate", fullname+"-serving")
		if ref := str(t, serving.Object, "spec", "issuerRef", "name"); ref != caIssuer.GetName() {
			t.Fatalf("the serving Certificate is issued by %q", ref)
		}
		if !slices.Contains(strs(slice(t, serving.Object, "spec", "dnsNames")), serviceDNS) {
			t.Fatalf("the serving Certificate lacks %s", serviceDNS)
		}
		if got, want := str(t, serving.Object, "spec", "secretName"), tlsVolumeSecret(t, m); got != want {
			t.Fatalf("the serving Certificate goes to Secret %q, the Deployment mounts %q", got, want)
		}
		for _, o := range m.all("Secret") {
			t.Fatalf("Secret %s rendered in cert-manager mode", o.GetName())
		}
	})

	t.Run("existingSecret", func(t *testing.T) {
		m := render(t, "", "--set", "tls.mode=existingSecret", "--set", "tls.existingSecret.name=my-tls",
			"--set-file", "tls.existingSecret.caBundle="+writeCA(t))
		checkCommon(t, m)
		if got := tlsVolumeSecret(t, m); got != "my-tls" {
			t.Fatalf("the Deployment mounts %q, want my-tls", got)
		}
		apiSvc := m.get(t, "APIService", apiSvcName)
		if got := string(b64(t, str(t, apiSvc.Object, "spec", "caBundle"))); got != testCA {
			t.Fatalf("caBundle decodes to %q, want the given CA", got)
		}
		if len(m.all("Secret")) != 0 {
			t.Fatal("a Secret rendered in existingSecret mode")
		}
		// Rendering is deterministic in this mode (why config/deploy uses
		// it): a second render is byte-identical.
		a, _, err1 := renderRaw(t, "", "--set", "tls.mode=existingSecret", "--set", "tls.existingSecret.name=my-tls")
		b, _, err2 := renderRaw(t, "", "--set", "tls.mode=existingSecret", "--set", "tls.existingSecret.name=my-tls")
		if err1 != nil || err2 != nil || a != b {
			t.Fatalf("two renders differ or failed: %v %v", err1, err2)
		}
	})
}

// checkCommon checks what every TLS mode must render identically.
func checkCommon(t *testing.T, m manifest) {
	t.Helper()
	for _, o := range m {
		if ns := o.GetNamespace(); ns != "" && ns != namespace && !(o.GetKind() == "RoleBinding" && ns == "kube-system") {
			t.Errorf("%s/%s in namespace %q", o.GetKind(), o.GetName(), ns)
		}
	}
	checkAPIService(t, m)
	checkDeployment(t, m)
	checkServerRBAC(t, m)
	checkUserRBAC(t, m)
	checkCloudConfig(t, m)
}

func checkAPIService(t *testing.T, m manifest) {
	t.Helper()
	list := m.all("APIService")
	if len(list) != 1 {
		t.Fatalf("%d APIServices", len(list))
	}
	a := list[0]
	if a.GetName() != apiSvcName {
		t.Fatalf("APIService %s", a.GetName())
	}
	spec := mapOf(t, a.Object, "spec")
	if _, ok := spec["insecureSkipTLSVerify"]; ok {
		t.Fatal("the APIService has insecureSkipTLSVerify")
	}
	_, hasCA := spec["caBundle"]
	_, hasInject := a.GetAnnotations()["cert-manager.io/inject-ca-from"]
	if !hasCA && !hasInject {
		t.Fatal("the APIService has neither a caBundle nor the cert-manager inject-ca-from annotation")
	}
	if str(t, spec, "group") != group || str(t, spec, "version") != "v1" {
		t.Fatalf("APIService for %s/%s", spec["group"], spec["version"])
	}
	if num(t, spec, "groupPriorityMinimum") < 1 || num(t, spec, "versionPriority") < 1 {
		t.Fatal("APIService priorities unset")
	}
	// It must point at the chart's Service, on the Service's port, which
	// must lead to the container's https port.
	svc := m.get(t, "Service", str(t, spec, "service", "name"))
	if svc.GetNamespace() != str(t, spec, "service", "namespace") {
		t.Fatal("the APIService points to another namespace")
	}
	ports := slice(t, svc.Object, "spec", "ports")
	if len(ports) != 1 {
		t.Fatalf("Service ports %v", ports)
	}
	port := ports[0].(map[string]any)
	if num(t, port, "port") != num(t, spec, "service", "port") || num(t, port, "port") != 443 {
		t.Fatalf("Service port %v, APIService port %v, want 443", port["port"], num(t, spec, "service", "port"))
	}
	if port["targetPort"] != "https" {
		t.Fatalf("Service targetPort %v", port["targetPort"])
	}
	sel := mapOf(t, svc.Object, "spec", "selector")
	podLabels := mapOf(t, m.get(t, "Deployment", fullname).Object, "spec", "template", "metadata", "labels")
	for k, v := range sel {
		if podLabels[k] != v {
			t.Fatalf("Service selector %s=%v does not match the pods (%v)", k, v, podLabels)
		}
	}
}

func checkDeployment(t *testing.T, m manifest) {
	t.Helper()
	d := m.get(t, "Deployment", fullname)
	if r := num(t, d.Object, "spec", "replicas"); r != 2 {
		t.Fatalf("replicas %d, want 2", r)
	}
	pod := mapOf(t, d.Object, "spec", "template", "spec")
	podLabels := mapOf(t, d.Object, "spec", "template", "metadata", "labels")

	sa := str(t, pod, "serviceAccountName")
	m.get(t, "ServiceAccount", sa)
	if sa != fullname {
		t.Fatalf("serviceAccountName %q", sa)
	}

	// Spread over nodes: a preferred anti-affinity by hostname on the pods'
	// own labels.
	terms := slice(t, pod, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution")
	term := terms[0].(map[string]any)["podAffinityTerm"].(map[string]any)
	if term["topologyKey"] != "kubernetes.io/hostname" {
		t.Fatalf("anti-affinity topologyKey %v", term["topologyKey"])
	}
	for k, v := range mapOf(t, term, "labelSelector", "matchLabels") {
		if podLabels[k] != v {
			t.Fatalf("anti-affinity selector %s=%v does not select the pods", k, v)
		}
	}

	psc := mapOf(t, pod, "securityContext")
	if psc["runAsNonRoot"] != true || str(t, psc, "seccompProfile", "type") != "RuntimeDefault" {
		t.Fatalf("pod securityContext %v", psc)
	}

	containers := slice(t, pod, "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers", len(containers))
	}
	c := containers[0].(map[string]any)
	sc := mapOf(t, c, "securityContext")
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || sc["runAsNonRoot"] != true {
		t.Fatalf("container securityContext %v", sc)
	}
	if drop := strs(slice(t, sc, "capabilities", "drop")); !slices.Equal(drop, []string{"ALL"}) {
		t.Fatalf("capabilities.drop %v", drop)
	}
	if _, ok := sc["capabilities"].(map[string]any)["add"]; ok {
		t.Fatal("capabilities added")
	}
	if str(t, sc, "seccompProfile", "type") != "RuntimeDefault" {
		t.Fatal("container seccompProfile")
	}
	if len(mapOf(t, c, "resources", "requests")) == 0 || len(mapOf(t, c, "resources", "limits")) == 0 {
		t.Fatal("no resource requests or limits")
	}

	ports := slice(t, c, "ports")
	if p := ports[0].(map[string]any); p["name"] != "https" || num(t, p, "containerPort") != 6443 {
		t.Fatalf("container port %v", p)
	}
	for probe, path := range map[string]string{"livenessProbe": "/livez", "readinessProbe": "/readyz"} {
		get := mapOf(t, c, probe, "httpGet")
		if get["path"] != path || get["scheme"] != "HTTPS" || get["port"] != "https" {
			t.Fatalf("%s %v, want HTTPS %s on https", probe, get, path)
		}
	}

	env := map[string]string{}
	for _, e := range slice(t, c, "env") {
		em := e.(map[string]any)
		if ref, ok, _ := unstructured.NestedString(em, "valueFrom", "fieldRef", "fieldPath"); ok {
			env[em["name"].(string)] = "fieldRef:" + ref
		}
	}
	if env["NODE_NAME"] != "fieldRef:spec.nodeName" || env["POD_NAMESPACE"] != "fieldRef:metadata.namespace" {
		t.Fatalf("downward API env %v", env)
	}

	args := strs(slice(t, c, "args"))
	flag := func(name string) string {
		t.Helper()
		var val string
		n := 0
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				val = v
				n++
			}
		}
		if n != 1 {
			t.Fatalf("flag %s given %d times in %v", name, n, args)
		}
		return val
	}
	if flag("--node-name") != "$(NODE_NAME)" {
		t.Fatal("--node-name is not the downward API's node name")
	}
	if flag("--lock-namespace") != namespace {
		t.Fatal("--lock-namespace is not the release namespace")
	}
	if flag("--secure-port") != "6443" || flag("--logging-format") != "text" {
		t.Fatal("--secure-port or --logging-format")
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--kubeconfig") || strings.Contains(a, "insecure") {
			t.Fatalf("unexpected flag %s (in cluster the server uses its ServiceAccount)", a)
		}
	}

	// Every file flag must point into a mount of the right volume.
	mounts := map[string]string{} // mountPath -> volume
	for _, vm := range slice(t, c, "volumeMounts") {
		vmm := vm.(map[string]any)
		mounts[vmm["mountPath"].(string)] = vmm["name"].(string)
	}
	volumes := map[string]map[string]any{}
	for _, v := range slice(t, pod, "volumes") {
		vm := v.(map[string]any)
		volumes[vm["name"].(string)] = vm
	}
	volumeOf := func(path string) map[string]any {
		t.Helper()
		vol, ok := volumes[mounts[filepath.Dir(path)]]
		if !ok {
			t.Fatalf("%s is not in a mounted volume (%v)", path, mounts)
		}
		return vol
	}
	cfgVol := volumeOf(flag("--cloud-config"))
	cm := m.get(t, "ConfigMap", str(t, cfgVol, "configMap", "name"))
	if _, ok := mapOf(t, cm.Object, "data")[filepath.Base(flag("--cloud-config"))]; !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.GetName(), filepath.Base(flag("--cloud-config")))
	}
	for _, f := range []string{"--tls-cert-file", "--tls-private-key-file"} {
		vol := volumeOf(flag(f))
		if str(t, vol, "secret", "secretName") != tlsVolumeSecret(t, m) {
			t.Fatalf("%s is not in the TLS Secret's volume", f)
		}
	}

	// The PDB keeps one of the two replicas.
	pdb := m.get(t, "PodDisruptionBudget", fullname)
	if num(t, pdb.Object, "spec", "minAvailable") != 1 {
		t.Fatal("PDB minAvailable")
	}
	for k, v := range mapOf(t, pdb.Object, "spec", "selector", "matchLabels") {
		if podLabels[k] != v {
			t.Fatalf("PDB selector %s=%v does not select the pods", k, v)
		}
	}
}

// tlsVolumeSecret is the Secret the Deployment mounts the serving
// certificate from.
func tlsVolumeSecret(t *testing.T, m manifest) string {
	t.Helper()
	for _, v := range slice(t, m.get(t, "Deployment", fullname).Object, "spec", "template", "spec", "volumes") {
		vm := v.(map[string]any)
		if vm["name"] == "tls" {
			return str(t, vm, "secret", "secretName")
		}
	}
	t.Fatal("no tls volume")
	return ""
}

func checkServerRBAC(t *testing.T, m manifest) {
	t.Helper()
	sa := "ServiceAccount:" + namespace + "/" + fullname

	role := m.get(t, "ClusterRole", fullname)
	if got := rbacRules(t, role); !slices.Equal(got, wantServerClusterRules) {
		t.Fatalf("the server's ClusterRole grants %v, want exactly %v", got, wantServerClusterRules)
	}
	for k := range role.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			t.Fatalf("the server's ClusterRole is aggregated (%s)", k)
		}
	}

	// Every binding that names the ServiceAccount, and what it grants: the
	// complete set of the server's permissions.
	want := map[string]string{
		"ClusterRoleBinding/" + fullname:                                                     "ClusterRole/" + fullname,
		"ClusterRoleBinding/" + fullname + ":system:auth-delegator":                          "ClusterRole/system:auth-delegator",
		"RoleBinding/kube-system/" + fullname + ":extension-apiserver-authentication-reader": "Role/extension-apiserver-authentication-reader",
		"RoleBinding/" + namespace + "/" + fullname + "-lock":                                "Role/" + fullname + "-lock",
	}
	got := map[string]string{}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range m.all(kind) {
			if !slices.Contains(subjects(t, b), sa) {
				continue
			}
			key := kind + "/" + b.GetName()
			if kind == "RoleBinding" {
				key = kind + "/" + b.GetNamespace() + "/" + b.GetName()
			}
			got[key] = roleRef(t, b)
			if n := len(subjects(t, b)); n != 1 {
				t.Fatalf("%s binds %d subjects", key, n)
			}
		}
	}
	if !mapsEqual(got, want) {
		t.Fatalf("bindings of the ServiceAccount:\n got %v\nwant %v", got, want)
	}

	lease := m.get(t, "Role", fullname+"-lock")
	if lease.GetNamespace() != namespace {
		t.Fatalf("lease Role in %q", lease.GetNamespace())
	}
	if got := rbacRules(t, lease); !slices.Equal(got, wantLeaseRules) {
		t.Fatalf("the lease Role grants %v, want exactly %v", got, wantLeaseRules)
	}
}

func checkUserRBAC(t *testing.T, m manifest) {
	t.Helper()
	view := m.get(t, "ClusterRole", fullname+"-view")
	if view.GetLabels()["rbac.authorization.k8s.io/aggregate-to-view"] != "true" {
		t.Fatal("the read role is not aggregated to view")
	}
	if got := rbacRules(t, view); !slices.Equal(got, wantViewRules) {
		t.Fatalf("the read role grants %v", got)
	}
	restarter := m.get(t, "ClusterRole", fullname+"-node-restarter")
	for k := range restarter.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			t.Fatalf("node-restarter is aggregated (%s): restarting must be granted on purpose", k)
		}
	}
	if _, ok := restarter.Object["aggregationRule"]; ok {
		t.Fatal("node-restarter has an aggregationRule")
	}
	if got := rbacRules(t, restarter); !slices.Equal(got, wantRestarterRules) {
		t.Fatalf("node-restarter grants %v", got)
	}
	// stop and start each have a role of their own, never aggregated.
	for role, want := range map[string]string{"-node-stopper": group + "|nodes/stop|create|", "-node-starter": group + "|nodes/start|create|"} {
		r := m.get(t, "ClusterRole", fullname+role)
		for k := range r.GetLabels() {
			if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
				t.Fatalf("%s is aggregated (%s)", role, k)
			}
		}
		if got := rbacRules(t, r); !slices.Equal(got, []string{want}) {
			t.Fatalf("%s grants %v", role, got)
		}
	}
	// Nothing else in the chart grants the restart.
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, r := range m.all(kind) {
			if strings.HasPrefix(r.GetName(), fullname+"-node-restarter") {
				continue
			}
			for _, rule := range rbacRules(t, r) {
				if strings.Contains(rule, "nodes/restart") || strings.HasPrefix(rule, "*|") || strings.Contains(rule, "|*|") {
					t.Fatalf("%s %s grants %s", kind, r.GetName(), rule)
				}
			}
		}
	}
}

// checkCloudConfig feeds the rendered cloud config to the server's own
// parser: the chart's defaults must be a config the server starts with.
func checkCloudConfig(t *testing.T, m manifest) {
	t.Helper()
	cm := m.get(t, "ConfigMap", fullname+"-config")
	data := str(t, cm.Object, "data", "cloud-config.yaml")
	cfg, err := providers.ParseConfig([]byte(data))
	if err != nil {
		t.Fatalf("the server refuses the chart's cloud config: %v\n%s", err, data)
	}
	for _, p := range []string{cloud.ProviderAWS, cloud.ProviderTencentCloud, "alibabacloud"} {
		if !cfg.Providers[p].Enabled {
			t.Fatalf("provider %s not enabled by default", p)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("not base64: %v", err)
	}
	return b
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", pemBytes)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
