package chart_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
	"github.com/michael/k8s-cloud-node-manager/pkg/policy"
)

// TestPolicy: a policy in the values is the --policy-config file the
// server reads (and accepts); without one there is neither file nor flag.
func TestPolicy(t *testing.T) {
	argsOf := func(m manifest) []string {
		d := m.get(t, "Deployment", fullname)
		c := slice(t, mapOf(t, d.Object, "spec", "template", "spec"), "containers")[0].(map[string]any)
		return strs(c["args"])
	}
	const flag = "--policy-config=/etc/k8s-cloud-node-manager/policy.yaml"
	m := render(t, `
policy:
  underActionBound: 20m
  optOuts: {karpenterDoNotDisrupt: true}
  budgets:
    - {name: cluster, maxUnderAction: 3}
    - {name: per-zone, groupBy: topology.kubernetes.io/zone, maxUnderAction: 1}
    - {name: workers-ready, selector: pool=workers, minReady: "80%"}
  windows:
    - {name: nights, selector: pool=workers, actions: [restart], schedule: ["Mon-Fri 02:00-05:00 Europe/Berlin"]}
    - {name: dev, selector: pool=dev, schedule: [always]}
`)
	if !slices.Contains(argsOf(m), flag) {
		t.Fatalf("no %s in %v", flag, argsOf(m))
	}
	data := str(t, m.get(t, "ConfigMap", fullname+"-config").Object, "data", "policy.yaml")
	p, err := policy.Parse([]byte(data))
	if err != nil {
		t.Fatalf("the server refuses the chart's policy: %v\n%s", err, data)
	}
	if p.Bound() != 20*time.Minute {
		t.Fatalf("underActionBound %s", p.Bound())
	}
	def := render(t, "")
	if slices.Contains(argsOf(def), flag) {
		t.Fatal("--policy-config without a policy")
	}
	if _, ok := mapOf(t, def.get(t, "ConfigMap", fullname+"-config").Object, "data")["policy.yaml"]; ok {
		t.Fatal("policy.yaml without a policy")
	}
}

// TestRestarterAndViewerBindings: each restarters entry is a binding to
// node-restarter, or, with resourceNames, to a ClusterRole of its own
// limited to those Nodes; viewers bind the read role.
func TestRestarterAndViewerBindings(t *testing.T) {
	m := render(t, `
rbac:
  restarters:
    - name: oncall
      groups: [sre]
    - name: limited
      users: [bob]
      serviceAccounts: [{namespace: ops, name: remediator}]
      resourceNames: [node-a, node-b]
  viewers:
    - name: dash
      groups: [observers]
`)
	oncall := m.get(t, "ClusterRoleBinding", fullname+"-node-restarter-oncall")
	if got := roleRef(t, oncall); got != "ClusterRole/"+fullname+"-node-restarter" {
		t.Fatalf("oncall bound to %s", got)
	}
	if got := subjects(t, oncall); !slices.Equal(got, []string{"Group:/sre"}) {
		t.Fatalf("oncall subjects %v", got)
	}

	limitedRole := m.get(t, "ClusterRole", fullname+"-node-restarter-limited")
	want := []string{group + "|nodes/restart|create|node-a", group + "|nodes/restart|create|node-b"}
	if got := rbacRules(t, limitedRole); !slices.Equal(got, want) {
		t.Fatalf("limited role grants %v, want %v", got, want)
	}
	for k := range limitedRole.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			t.Fatalf("the limited restarter role is aggregated (%s)", k)
		}
	}
	limited := m.get(t, "ClusterRoleBinding", fullname+"-node-restarter-limited")
	if got := roleRef(t, limited); got != "ClusterRole/"+limitedRole.GetName() {
		t.Fatalf("limited bound to %s, not its own role", got)
	}
	if got := subjects(t, limited); !slices.Equal(got, []string{"ServiceAccount:ops/remediator", "User:/bob"}) {
		t.Fatalf("limited subjects %v", got)
	}

	dash := m.get(t, "ClusterRoleBinding", fullname+"-view-dash")
	if got := roleRef(t, dash); got != "ClusterRole/"+fullname+"-view" {
		t.Fatalf("dash bound to %s", got)
	}
	// The base roles stay as they are.
	checkUserRBAC(t, m)
}

func TestNoUserBindingsByDefault(t *testing.T) {
	m := render(t, "")
	for _, b := range m.all("ClusterRoleBinding") {
		if ref := roleRef(t, b); strings.Contains(ref, "-node-restarter") || strings.HasSuffix(ref, "-view") {
			t.Fatalf("%s binds %s without being asked", b.GetName(), ref)
		}
	}
}

// TestCloudSettings: keys from existing Secrets, workload identity on the
// ServiceAccount, and the rest of the pod settings reach the objects.
func TestCloudSettings(t *testing.T) {
	m := render(t, `
cloudConfig:
  providers:
    aws: {region: us-west-2, endpoint: "https://ec2.us-west-2.amazonaws.com:443", timeout: 20s, rateLimit: {qps: 2, burst: 4}, dryRunRateLimit: {qps: 1, burst: 3}, ownership: {clusterName: prod-eks}}
    tencentcloud: {enabled: false}
credentials:
  aws: {existingSecret: aws-keys, sessionTokenKey: token}
  tencentcloud: {existingSecret: tc-keys, secretIdKey: id, secretKeyKey: key}
  alibabacloud: {existingSecret: ali-keys}
serviceAccount:
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/cnm
    pod-identity.alibabacloud.com/role-name: cnm
image: {repository: registry.example/cnm, tag: v9.9.9, pullPolicy: Always}
imagePullSecrets: [{name: pull}]
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: CriticalAddonsOnly, operator: Exists}]
priorityClassName: system-cluster-critical
podAnnotations: {example.com/a: b}
logging: {format: json, verbosity: 3}
extraArgs: ["--audit-log-maxage=7"]
audit: {enabled: true}
`)
	d := m.get(t, "Deployment", fullname)
	pod := mapOf(t, d.Object, "spec", "template", "spec")
	c := slice(t, pod, "containers")[0].(map[string]any)

	secretEnv := map[string]string{}
	for _, e := range slice(t, c, "env") {
		em := e.(map[string]any)
		ref, ok := em["valueFrom"].(map[string]any)["secretKeyRef"].(map[string]any)
		if ok {
			secretEnv[em["name"].(string)] = ref["name"].(string) + "/" + ref["key"].(string)
		}
	}
	wantEnv := map[string]string{
		"AWS_ACCESS_KEY_ID":               "aws-keys/AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY":           "aws-keys/AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN":               "aws-keys/token",
		"TENCENTCLOUD_SECRET_ID":          "tc-keys/id",
		"TENCENTCLOUD_SECRET_KEY":         "tc-keys/key",
		"ALIBABA_CLOUD_ACCESS_KEY_ID":     "ali-keys/ALIBABA_CLOUD_ACCESS_KEY_ID",
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "ali-keys/ALIBABA_CLOUD_ACCESS_KEY_SECRET",
	}
	if !mapsEqual(secretEnv, wantEnv) {
		t.Fatalf("credential env %v, want %v", secretEnv, wantEnv)
	}

	sa := m.get(t, "ServiceAccount", fullname)
	if sa.GetAnnotations()["eks.amazonaws.com/role-arn"] != "arn:aws:iam::111122223333:role/cnm" ||
		sa.GetAnnotations()["pod-identity.alibabacloud.com/role-name"] != "cnm" {
		t.Fatalf("ServiceAccount annotations %v", sa.GetAnnotations())
	}
	if img := str(t, c, "image"); img != "registry.example/cnm:v9.9.9" || c["imagePullPolicy"] != "Always" {
		t.Fatalf("image %s %v", img, c["imagePullPolicy"])
	}
	if pod["priorityClassName"] != "system-cluster-critical" {
		t.Fatal("priorityClassName")
	}
	if len(slice(t, pod, "imagePullSecrets")) != 1 || len(slice(t, pod, "tolerations")) != 1 || mapOf(t, pod, "nodeSelector")["kubernetes.io/os"] != "linux" {
		t.Fatal("imagePullSecrets, tolerations or nodeSelector lost")
	}
	if mapOf(t, d.Object, "spec", "template", "metadata", "annotations")["example.com/a"] != "b" {
		t.Fatal("podAnnotations lost")
	}
	args := strs(slice(t, c, "args"))
	for _, want := range []string{"--logging-format=json", "--v=3", "--audit-log-path=-", "--audit-policy-file=/etc/k8s-cloud-node-manager/audit-policy.yaml", "--audit-log-maxage=7"} {
		if !slices.Contains(args, want) {
			t.Fatalf("args %v lack %s", args, want)
		}
	}
	cm := m.get(t, "ConfigMap", fullname+"-config")
	if !strings.Contains(str(t, cm.Object, "data", "audit-policy.yaml"), "nodes/restart") {
		t.Fatal("audit policy not rendered")
	}
	cfg := str(t, cm.Object, "data", "cloud-config.yaml")
	for _, want := range []string{"region: us-west-2", "enabled: false", "qps: 2"} {
		if !strings.Contains(cfg, want) {
			t.Fatalf("cloud config lacks %q:\n%s", want, cfg)
		}
	}
	parsed, err := providers.ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatalf("the server refuses the rendered cloud config: %v\n%s", err, cfg)
	}
	aws, tc := parsed.Providers[cloud.ProviderAWS], parsed.Providers[cloud.ProviderTencentCloud]
	if !aws.Enabled || aws.Region != "us-west-2" || aws.Timeout != 20*time.Second || aws.RateLimit.Burst != 4 || tc.Enabled ||
		aws.DryRunRateLimit.Burst != 3 || aws.Ownership.ClusterName != "prod-eks" {
		t.Fatalf("parsed cloud config %+v", parsed.Providers)
	}
}

// TestOverrides: a custom affinity replaces the default anti-affinity, and
// one replica drops the PDB (minAvailable 1 would block every drain).
func TestOverrides(t *testing.T) {
	m := render(t, `
replicaCount: 1
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: role, operator: In, values: [infra]}]}]
`)
	pod := mapOf(t, m.get(t, "Deployment", fullname).Object, "spec", "template", "spec")
	aff := mapOf(t, pod, "affinity")
	if _, ok := aff["podAntiAffinity"]; ok {
		t.Fatal("the default anti-affinity is merged into a custom affinity")
	}
	if _, ok := aff["nodeAffinity"]; !ok {
		t.Fatal("custom affinity lost")
	}
	if len(m.all("PodDisruptionBudget")) != 0 {
		t.Fatal("a PDB with one replica")
	}
}

// TestInvalidValues: the schema and the templates refuse values the server
// or Kubernetes would refuse later, or that would silently do nothing.
func TestInvalidValues(t *testing.T) {
	cases := []struct {
		name, values string
		// wantErr is a fragment of helm's error message, proving it failed
		// for this reason and not another.
		wantErr string
	}{
		{"unknown TLS mode", "tls: {mode: insecure}", "/tls/mode"},
		{"zero replicas", "replicaCount: 0", "/replicaCount"},
		{"misspelt top-level key", "replicas: 3", "replicas"},
		{"credential in the cloud config", "cloudConfig: {providers: {aws: {secretAccessKey: x}}}", "secretAccessKey"},
		{"unknown provider", "cloudConfig: {providers: {gcp: {enabled: true}}}", "gcp"},
		{"plain http endpoint", `cloudConfig: {providers: {aws: {endpoint: "http://ec2.local"}}}`, "/cloudConfig/providers/aws/endpoint"},
		{"endpoint with a path", `cloudConfig: {providers: {aws: {endpoint: "https://ec2.local/x"}}}`, "/cloudConfig/providers/aws/endpoint"},
		{"timeout without a unit", `cloudConfig: {providers: {tencentcloud: {timeout: "15"}}}`, "/cloudConfig/providers/tencentcloud/timeout"},
		{"zero qps", "cloudConfig: {providers: {aws: {rateLimit: {qps: 0, burst: 1}}}}", "/cloudConfig/providers/aws/rateLimit/qps"},
		{"zero dry-run qps", "cloudConfig: {providers: {gce: {dryRunRateLimit: {qps: 0}}}}", "/cloudConfig/providers/gce/dryRunRateLimit/qps"},
		{"ownership cluster name a tag cannot carry", `cloudConfig: {providers: {aws: {ownership: {clusterName: "prod*"}}}}`, "/cloudConfig/providers/aws/ownership/clusterName"},
		{"ownership on a cloud without the check", "cloudConfig: {providers: {tencentcloud: {ownership: {clusterName: prod}}}}", "ownership"},
		{"existingSecret without a name", "tls: {mode: existingSecret}", "/tls/existingSecret"},
		{"caBundle that is not a PEM certificate", "tls: {mode: existingSecret, existingSecret: {name: s, caBundle: TFMwdExTMUNSVWRK}}", "must be the PEM text"},
		{"restarter binding without subjects", "rbac: {restarters: [{name: nobody}]}", "/rbac/restarters/0"},
		{"restarter name not a DNS label", "rbac: {restarters: [{name: On_Call, groups: [sre]}]}", "/rbac/restarters/0/name"},
		{"duplicate restarter names", "rbac: {restarters: [{name: a, groups: [x]}, {name: a, users: [bob]}]}", `the name "a" is used twice`},
		{"unknown logging format", "logging: {format: xml}", "/logging/format"},
		{"extraArgs not a flag", "extraArgs: [oops]", "/extraArgs/0"},
		{"image digest not sha256", "image: {digest: latest}", "/image/digest"},
		{"cooldown without a unit", "actionCooldown: 300", "/actionCooldown"},
		{"misspelt policy key", "policy: {budget: []}", "budget"},
		{"budget with a percentage as maxUnderAction", `policy: {budgets: [{name: a, maxUnderAction: "10%"}]}`, "/policy/budgets/0/maxUnderAction"},
		{"window without a schedule", "policy: {windows: [{name: w}]}", "/policy/windows/0"},
		{"serviceAccount not created and not named", "serviceAccount: {create: false}", "serviceAccount.name is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := renderRaw(t, tc.values)
			if err == nil {
				t.Fatalf("helm template accepted %q:\n%s", tc.values, out)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("helm template failed, but not with %q:\n%s", tc.wantErr, stderr)
			}
		})
	}
}

// AKS workload identity: the client ID annotates the ServiceAccount (with
// the annotations given by hand kept), the pods carry the webhook's label,
// and an enabled Azure keeps DefaultAzureCredential to its production
// credentials.
func TestAzureWorkloadIdentity(t *testing.T) {
	m := render(t, `
azureWorkloadIdentity: {clientId: 11111111-2222-3333-4444-555555555555, tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47}
serviceAccount:
  annotations: {example.com/keep: "yes"}
cloudConfig:
  providers:
    azure: {enabled: true, timeout: 50s}
`)
	sa := m.get(t, "ServiceAccount", fullname)
	a := sa.GetAnnotations()
	if a["azure.workload.identity/client-id"] != "11111111-2222-3333-4444-555555555555" ||
		a["azure.workload.identity/tenant-id"] != "72f988bf-86f1-41af-91ab-2d7cd011db47" || a["example.com/keep"] != "yes" {
		t.Fatalf("ServiceAccount annotations %v", a)
	}
	d := m.get(t, "Deployment", fullname)
	if l := mapOf(t, d.Object, "spec", "template", "metadata", "labels"); l["azure.workload.identity/use"] != "true" {
		t.Fatalf("pod labels %v", l)
	}
	c := slice(t, mapOf(t, d.Object, "spec", "template", "spec"), "containers")[0].(map[string]any)
	found := false
	for _, e := range slice(t, c, "env") {
		if em := e.(map[string]any); em["name"] == "AZURE_TOKEN_CREDENTIALS" && em["value"] == "prod" {
			found = true
		}
	}
	if !found {
		t.Fatal("AZURE_TOKEN_CREDENTIALS=prod not set")
	}
	// Without a client ID: no label, no annotation.
	m = render(t, "")
	if _, ok := m.get(t, "ServiceAccount", fullname).GetAnnotations()["azure.workload.identity/client-id"]; ok {
		t.Fatal("annotation without a client ID")
	}
	d = m.get(t, "Deployment", fullname)
	if _, ok := mapOf(t, d.Object, "spec", "template", "metadata", "labels")["azure.workload.identity/use"]; ok {
		t.Fatal("label without a client ID")
	}
	if _, _, err := renderRaw(t, "azureWorkloadIdentity: {clientId: not-a-guid}"); err == nil {
		t.Fatal("a malformed client ID was accepted")
	}
}
