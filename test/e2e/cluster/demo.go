package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The demo's story nodes, beside DemoNodes: each command of the Try list
// that really acts has a node of its own, so no command meets the
// cooldown an earlier one left.
const (
	// DemoNodeEKS2 is restarted with the plugin's --wait.
	DemoNodeEKS2 = "ip-10-0-1-24.ec2.internal"
	// DemoNodeTKE2 is restarted with the plugin, -o yaml.
	DemoNodeTKE2 = "172.16.0.13"
	// DemoNodeDev is the one node DemoUser may restart.
	DemoNodeDev = "ip-10-0-3-7.ec2.internal"
	// DemoNodeIngest and DemoNodeIngest2 are EC2 nodes of pool=ingest in
	// one zone: the demo policy's per-zone budget lets one of them be
	// under an action at a time.
	DemoNodeIngest  = "ip-10-0-5-10.ec2.internal"
	DemoNodeIngest2 = "ip-10-0-5-11.ec2.internal"
	// DemoNodeMaint is drained, restarted and uncordoned with the plugin.
	DemoNodeMaint = "ip-10-0-2-31.ec2.internal"
	// DemoNodeEKSBatch is stopped; DemoNodeTKEStopped starts stopped (its
	// machine STOPPED, the Node NotReady) and is started.
	DemoNodeEKSBatch   = "ip-10-0-4-8.ec2.internal"
	DemoNodeTKEStopped = "172.16.0.14"

	DemoEC2InstanceIDBatch   = "i-0123456789abcdef3"
	DemoCVMInstanceIDStopped = "ins-abcd1236"

	DemoEC2InstanceID2       = "i-0123456789abcdef1"
	DemoEC2InstanceIDDev     = "i-0123456789abcdef2"
	DemoCVMInstanceID2       = "ins-abcd1235"
	DemoEC2InstanceIDIngest  = "i-0123456789abcdef5"
	DemoEC2InstanceIDIngest2 = "i-0123456789abcdef6"
	DemoEC2InstanceIDMaint   = "i-0123456789abcdef7"
)

// DemoBudget is the demo policy's budget: one ingest machine per zone
// under an action at once.
const DemoBudget = "ingest-per-zone"

// DemoPolicy is the demo server's --policy-config: small, and shaped so
// the Try list meets it on the ingest nodes and nowhere else.
const DemoPolicy = `apiVersion: infraops.michael.io/v1
kind: PolicyConfig
# A node counts as under an action until its lastAction completes, at most this long.
underActionBound: 30m
budgets:
  # At most one ingest machine per zone under an action at once.
  - name: ` + DemoBudget + `
    selector: pool=ingest
    groupBy: topology.kubernetes.io/zone
    maxUnderAction: 1
optOuts:
  # Nodes annotated karpenter.sh/do-not-disrupt: "true" are refused too
  # (infraops.michael.io/protect: "true" always is).
  karpenterDoNotDisrupt: true
`

// DemoChaosPool labels the demo's chaos nodes, DemoChaosNodes, which
// --random picks from.
const DemoChaosPool = "pool=chaos"

// DemoChaosNodes are the nodes of DemoChaosPool and their instances.
var DemoChaosNodes = []struct{ Name, InstanceID, Zone string }{
	{"ip-10-0-4-11.ec2.internal", "i-0123456789abcdef8", "us-east-1a"},
	{"ip-10-0-4-12.ec2.internal", "i-0123456789abcdef9", "us-east-1b"},
	{"ip-10-0-4-13.ec2.internal", "i-0123456789abcdefa", "us-east-1c"},
}

// DemoUser is the demo's developer: allowed to restart DemoNodeDev only,
// with no cloud account of any kind.
const (
	DemoUser     = "dev-alice"
	demoUserRole = "demo-dev-node-restarter"
)

// DemoPool is the label the demo's worker nodes carry (not the Fargate
// node, not the dev node), for the selector examples.
const DemoPool = "pool=workers"

// DemoDefaults of the demo.
const (
	// DemoCooldown is the demo server's --action-cooldown: short enough
	// to try a node again soon, long enough to be seen.
	DemoCooldown = time.Minute
	// DemoKubeletDelay is how long a demo machine takes to come back.
	DemoKubeletDelay = 5 * time.Second
)

// DemoStoryInstances are the machines of DemoStoryNodes.
func DemoStoryInstances() []FakeInstance {
	out := append(DemoInstances(),
		FakeInstance{Provider: "aws", Region: "us-east-1", ID: DemoEC2InstanceID2, State: "running"},
		FakeInstance{Provider: "aws", Region: "us-east-1", ID: DemoEC2InstanceIDDev, State: "running"},
		FakeInstance{Provider: "tencentcloud", Region: "ap-guangzhou", ID: DemoCVMInstanceID2},
		FakeInstance{Provider: "aws", Region: "us-east-1", ID: DemoEC2InstanceIDMaint, State: "running"},
		FakeInstance{Provider: "aws", Region: "us-east-1", ID: DemoEC2InstanceIDBatch, State: "running"},
		FakeInstance{Provider: "aws", Region: "us-east-1", ID: DemoEC2InstanceIDIngest, State: "running"},
		FakeInstance{Provider: "aws", Region: "us-east-1", ID: DemoEC2InstanceIDIngest2, State: "running"},
		FakeInstance{Provider: "tencentcloud", Region: "ap-guangzhou", ID: DemoCVMInstanceIDStopped, State: "STOPPED"},
	)
	for _, n := range DemoChaosNodes {
		out = append(out, FakeInstance{Provider: "aws", Region: "us-east-1", ID: n.InstanceID, State: "running"})
	}
	return out
}

// DemoStoryNodes are DemoNodes, the worker nodes labelled DemoPool, plus
// a second EKS and TKE worker and a dev node.
func DemoStoryNodes() []NodeSpec {
	pool, workers, _ := strings.Cut(DemoPool, "=")
	nodes := DemoNodes()
	for i := range nodes {
		if nodes[i].Name == DemoNodeEKS || nodes[i].Name == DemoNodeTKE {
			nodes[i].Labels[pool] = workers
		}
	}
	eks := func(name, zone, id, poolName, boot string) NodeSpec {
		return NodeSpec{
			Name:       name,
			ProviderID: "aws:///" + zone + "/" + id,
			Labels: map[string]string{
				"topology.kubernetes.io/region":    "us-east-1",
				"topology.kubernetes.io/zone":      zone,
				"node.kubernetes.io/instance-type": "m5.large",
				pool:                               poolName,
			},
			Ready:  true,
			BootID: boot,
		}
	}
	_, chaos, _ := strings.Cut(DemoChaosPool, "=")
	for i, n := range DemoChaosNodes {
		nodes = append(nodes, eks(n.Name, n.Zone, n.InstanceID, chaos, fmt.Sprintf("6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e01%02d", i)))
	}
	return append(nodes,
		eks(DemoNodeEKS2, "us-east-1b", DemoEC2InstanceID2, workers, "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0005"),
		eks(DemoNodeDev, "us-east-1a", DemoEC2InstanceIDDev, "dev", "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0006"),
		eks(DemoNodeIngest, "us-east-1a", DemoEC2InstanceIDIngest, "ingest", "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e000a"),
		eks(DemoNodeIngest2, "us-east-1a", DemoEC2InstanceIDIngest2, "ingest", "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e000b"),
		eks(DemoNodeMaint, "us-east-1c", DemoEC2InstanceIDMaint, "maintenance", "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0008"),
		NodeSpec{
			Name:       DemoNodeTKE2,
			ProviderID: "qcloud:///100003/" + DemoCVMInstanceID2,
			Labels: map[string]string{
				"topology.kubernetes.io/region":      "gz",
				"topology.kubernetes.io/zone":        "100003",
				"cloud.tencent.com/node-instance-id": DemoCVMInstanceID2,
				"node.kubernetes.io/instance-type":   "S5.MEDIUM4",
				pool:                                 workers,
			},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0007",
		},
		eks(DemoNodeEKSBatch, "us-east-1a", DemoEC2InstanceIDBatch, "batch", "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0008"),
		NodeSpec{
			Name:       DemoNodeTKEStopped,
			ProviderID: "qcloud:///100003/" + DemoCVMInstanceIDStopped,
			Labels: map[string]string{
				"topology.kubernetes.io/region": "gz",
				"topology.kubernetes.io/zone":   "100003",
				pool:                            "batch",
			},
			Ready:  false,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0009",
		},
	)
}

// DemoStep is one command of the demo's Try list. The list is data: the
// demo prints it and an end-to-end test runs it top to bottom, checking
// each command does what its comment says.
type DemoStep struct {
	// Comment says what the command shows.
	Comment string
	// Command is a shell command line, run with Demo.Env.
	Command string
	// Fails is true when the command shows a refusal: it exits non-zero.
	Fails bool
	// Want are regular expressions the command's output (stdout and
	// stderr) matches.
	Want []string
	// Settles is true when the output may need a moment (Events are
	// written after the answer): run again, it matches.
	Settles bool
	// Background commands run beside the steps that follow, as in a
	// second terminal, until the list ends; Want is then checked on what
	// they printed. Started is what they print once they are under way.
	Background bool
	Started    string
}

// DemoOptions configure StartDemo.
type DemoOptions struct {
	ServerBinary    string
	FakeCloudBinary string
	// PluginDir holds kubectl-restart, for the PATH of Demo.Env.
	PluginDir string
}

// Demo is the running demo: the product with the story nodes, a
// restricted user and the Try list.
type Demo struct {
	Product *Product
	// UserKubeconfig is DemoUser's kubeconfig.
	UserKubeconfig string
	// Env is what a shell needs to run the steps (KUBECONFIG, PATH).
	Env []string
	// Steps is the Try list, in order.
	Steps []DemoStep
	// PolicyFile is the server's --policy-config (DemoPolicy).
	PolicyFile string
}

// StartDemo starts the product as `make demo` runs it: the story nodes,
// the fake cloud playing the kubelets, a short cooldown, and DemoUser.
func (c *Cluster) StartDemo(ctx context.Context, o DemoOptions) (*Demo, error) {
	policyFile := filepath.Join(c.WorkDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(DemoPolicy), 0o644); err != nil {
		return nil, err
	}
	p, err := c.StartProduct(ctx, ProductOptions{
		ServerBinary:    o.ServerBinary,
		FakeCloudBinary: o.FakeCloudBinary,
		ExtraServerArgs: []string{"--action-cooldown=" + ShortDuration(DemoCooldown), "--policy-config=" + policyFile},
		Instances:       DemoStoryInstances(),
		Nodes:           DemoStoryNodes(),
		KubeletDelay:    DemoKubeletDelay,
		Azure:           true,
	})
	if err != nil {
		return nil, err
	}
	d := &Demo{Product: p, PolicyFile: policyFile}
	if d.UserKubeconfig, err = c.demoUser(ctx); err != nil {
		return nil, err
	}
	bodies, err := writeRequestBodies(c.WorkDir())
	if err != nil {
		return nil, err
	}
	path := os.Getenv("PATH")
	if kubectl := c.KubectlPath(); kubectl != "" {
		path = filepath.Dir(kubectl) + string(os.PathListSeparator) + path
	}
	if o.PluginDir != "" {
		dir, err := filepath.Abs(o.PluginDir)
		if err != nil {
			return nil, err
		}
		path = dir + string(os.PathListSeparator) + path
	}
	d.Env = []string{"KUBECONFIG=" + c.Kubeconfig(), "PATH=" + path}
	d.Steps = demoSteps(bodies, d.UserKubeconfig)
	return d, nil
}

// demoUser creates DemoUser's RBAC (restart only DemoNodeDev; read
// nodes, for -l and --wait) and a kubeconfig with a client certificate
// of the cluster CA.
func (c *Cluster) demoUser(ctx context.Context) (string, error) {
	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return "", err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: demoUserRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{Group}, Resources: []string{"nodes/restart"}, Verbs: []string{"create"}, ResourceNames: []string{DemoNodeDev}},
			{APIGroups: []string{Group}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: demoUserRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: demoUserRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: DemoUser}},
	}
	if _, err := kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	return c.UserKubeconfig(DemoUser, "developers")
}

// UserKubeconfig writes a kubeconfig for a user authenticated by a client
// certificate of the cluster CA (CN the user, O the groups) and returns
// its path. The user has no rights until RBAC grants some.
func (c *Cluster) UserKubeconfig(user string, groups ...string) (string, error) {
	kp, err := c.pki.clusterCA.client(user, groups...)
	if err != nil {
		return "", err
	}
	const name = "k8s-cloud-node-manager-test"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: c.apiserverURL, CertificateAuthorityData: c.pki.clusterCA.certPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.certPEM, ClientKeyData: kp.keyPEM}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = user
	path := filepath.Join(c.opts.WorkDir, dirProduct, user+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

type requestBodies struct{ dryRun, soft, hard, stop, start string }

// writeRequestBodies saves RestartOptions bodies for `kubectl create
// --raw`, which reads a body only from a file.
func writeRequestBodies(dir string) (requestBodies, error) {
	b := requestBodies{
		dryRun: filepath.Join(dir, "restart-dry-run.json"),
		soft:   filepath.Join(dir, "restart-soft.json"),
		hard:   filepath.Join(dir, "restart-hard.json"),
		stop:   filepath.Join(dir, "stop.json"),
		start:  filepath.Join(dir, "start.json"),
	}
	const head = `{"apiVersion":"` + Group + `/` + Version + `","kind":"RestartOptions",`
	for path, body := range map[string]string{
		b.dryRun: head + `"dryRun":["All"],"reason":"demo: would it be allowed?"}`,
		b.soft:   head + `"mode":"soft","reason":"demo"}`,
		b.hard:   head + `"mode":"hard","reason":"demo"}`,
		b.stop:   `{"apiVersion":"` + Group + `/` + Version + `","kind":"StopOptions","mode":"soft","reason":"demo: the batch pool sleeps at night"}`,
		b.start:  `{"apiVersion":"` + Group + `/` + Version + `","kind":"StartOptions","reason":"demo: morning"}`,
	} {
		if err := os.WriteFile(path, []byte(body+"\n"), 0o644); err != nil {
			return b, err
		}
	}
	return b, nil
}

// demoSteps is the Try list. Every command that acts has a node of its
// own (the cooldown), dry runs come before the real requests on the same
// nodes, and the comments say only what the test checks.
func demoSteps(b requestBodies, userKubeconfig string) []DemoStep {
	rawAction := func(action, node, body string) string {
		return fmt.Sprintf("kubectl create --raw /apis/%s/%s/nodes/%s/%s -f %s", Group, Version, node, action, body)
	}
	raw := func(node, body string) string { return rawAction("restart", node, body) }
	nodes := "nodes." + Group
	asUser := " --kubeconfig " + userKubeconfig
	return []DemoStep{
		{
			Comment: "kube-apiserver serves " + Group + "/" + Version + " through the server (AVAILABLE True)",
			Command: "kubectl get apiservice " + Version + "." + Group,
			Want:    []string{`\sTrue\s`},
		},
		{
			Comment: "the core Nodes: EKS and TKE workers, a dev node, an ACK node, a GKE node, an EKS Fargate node, a bare-metal node",
			Command: "kubectl get nodes --show-labels",
			Want:    []string{DemoNodeEKS, DemoNodeTKE2, regexp.QuoteMeta(DemoNodeACK), regexp.QuoteMeta(DemoNodeGKE), DemoNodeFargate, DemoNodeNoProvider},
		},
		{
			Comment: "the same nodes with the cloud machine behind each one",
			Command: "kubectl get " + nodes,
			Want: []string{DemoNodeEKS + `\s+aws\s+us-east-1\s+us-east-1a\s+` + DemoEC2InstanceID, DemoNodeTKE + `\s+tencentcloud\s+ap-guangzhou\s+100003\s+` + DemoCVMInstanceID,
				regexp.QuoteMeta(DemoNodeACK) + `\s+alibabacloud\s+cn-hangzhou\s+cn-hangzhou-k\s+` + DemoECSInstanceID,
				regexp.QuoteMeta(DemoNodeGKE) + `\s+gce\s+us-central1\s+` + DemoGCEZone + `\s+` + regexp.QuoteMeta(DemoNodeGKE)},
		},
		{
			Comment: "status.cloud, resolved from spec.providerID",
			Command: "kubectl get " + nodes + " " + DemoNodeEKS + " -o yaml",
			Want:    []string{`instanceID: ` + DemoEC2InstanceID},
		},
		{
			Comment: "EC2 dry run: EC2 checks the request (DryRun), nothing reboots",
			Command: raw(DemoNodeEKS, b.dryRun),
			Want:    []string{`"dryRun":true`, DemoEC2InstanceID},
		},
		{
			Comment: "the kubectl plugin on every node labelled " + DemoPool + " (not the Fargate node); a dry run does not ask for confirmation",
			Command: "kubectl restart -l " + DemoPool + " --dry-run=server",
			Want:    []string{`\(server dry run\)`, `4 requested, 0 failed`},
		},
		{
			Comment:    "in a second terminal: watch READY go Unknown and back to True, and LAST-ACTION/PHASE go from Requested to Completed, as the next commands reboot machines (Ctrl-C ends it)",
			Command:    "kubectl get " + nodes + " -w",
			Background: true,
			Started:    DemoNodeEKS2,
			Want: []string{
				`(?s)` + regexp.QuoteMeta(DemoNodeEKS2) + `\s[^\n]*\sUnknown\s.*\n` + regexp.QuoteMeta(DemoNodeEKS2) + `\s[^\n]*\sTrue\s`,
				`(?s)` + regexp.QuoteMeta(DemoNodeEKS2) + `\s[^\n]*\srestart\s+Requested\s.*\n` + regexp.QuoteMeta(DemoNodeEKS2) + `\s[^\n]*\srestart\s+Completed\s`,
			},
		},
		{
			Comment: "EC2 reboot: 202 with a NodeAction (the instance, EC2's request ID, who asked)",
			Command: raw(DemoNodeEKS, b.soft),
			Want:    []string{`"action":"restart"`, `"dryRun":false`, `"cloudRequestID":"[^"]+"`, `"user":"kubernetes-admin"`},
		},
		{
			Comment: fmt.Sprintf("the same again: 409, the node is in its cooldown (--action-cooldown: %s in this demo, 5m by default), so nothing reboots twice by accident", ShortDuration(DemoCooldown)),
			Command: raw(DemoNodeEKS, b.soft),
			Fails:   true,
			Want:    []string{`\(Conflict\)`},
		},
		{
			Comment: "CVM hard reset (StopType HARD); the region ap-guangzhou comes from TKE's \"gz\" label",
			Command: raw(DemoNodeTKE, b.hard),
			Want:    []string{`"mode":"hard"`, `"region":"ap-guangzhou"`},
		},
		{
			Comment: "Azure VM restart: one BeginRestart, answered once ARM's operation has succeeded (its ID is the cloudRequestID)",
			Command: raw(DemoNodeAzureVM, b.soft),
			Want:    []string{`"provider":"azure"`, `"mode":"soft"`, `"cloudRequestID":"[^"]+"`},
		},
		{
			Comment: "AKS scale-set instance dry run: ARM has none, so the instance view is read (it exists, it is running)",
			Command: raw(DemoNodeAKS, b.dryRun),
			Want:    []string{`"dryRun":true`, `virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/0`},
		},
		{
			Comment: "ECS hard reboot (ForceStop); ACK's providerID cn-hangzhou.i-… has no scheme, and names the region",
			Command: raw(DemoNodeACK, b.hard),
			Want:    []string{`"mode":"hard"`, `"provider":"alibabacloud"`, `"region":"cn-hangzhou"`, DemoECSInstanceID},
		},
		{
			Comment: "refused (422): Compute Engine has no soft reboot, and the answer names the mode it has",
			Command: raw(DemoNodeGKE, b.soft),
			Fails:   true,
			Want:    []string{`is invalid`, `hard`},
		},
		{
			Comment: "GCE Instances.Reset: no mode asked, so the cloud's own reboot, and the answer says it was a hard reset",
			Command: "kubectl restart " + DemoNodeGKE + " --reason demo -o yaml",
			Want:    []string{`mode: hard`, `provider: gce`, `instanceID: ` + regexp.QuoteMeta(DemoNodeGKE)},
		},
		{
			Comment: "refused (422): an EKS Fargate pod has no machine to reboot",
			Command: raw(DemoNodeFargate, b.soft),
			Fails:   true,
			Want:    []string{`is invalid: spec\.providerID`, `EKS Fargate pod`},
		},
		{
			Comment: "refused (422): no spec.providerID",
			Command: raw(DemoNodeNoProvider, b.soft),
			Fails:   true,
			Want:    []string{`is invalid: spec\.providerID`},
		},
		{
			Comment: fmt.Sprintf("the plugin waits until the machine has booted again (new boot ID) and the node is Ready: the fake cloud plays the kubelet (about %s)", DemoKubeletDelay),
			Command: "kubectl restart " + DemoNodeEKS2 + " --reason 'kernel update' --wait",
			Want:    []string{`restart requested`, regexp.QuoteMeta(DemoNodeEKS2) + ` is back: new boot ID`},
		},
		{
			Comment: "maintenance: cordon, evict the pods (PodDisruptionBudgets respected, at most --drain-timeout), restart, wait until back, uncordon",
			Command: "kubectl restart " + DemoNodeMaint + " --drain --drain-timeout 2m --reason 'kernel update'",
			Want: []string{
				`(?s)` + regexp.QuoteMeta(DemoNodeMaint) + ` cordoned\n.*` + regexp.QuoteMeta(DemoNodeMaint) + ` drained\n.*restart requested.*is back: new boot ID.*` + regexp.QuoteMeta(DemoNodeMaint) + ` uncordoned`,
			},
		},
		{
			Comment: "chaos: restart 2 nodes picked at random from " + DemoChaosPool + ", both at once, each waited for; the same --seed picks the same nodes again",
			Command: "kubectl restart -l " + DemoChaosPool + " --random 2 --seed 7 --max-in-flight 2 --wait --yes",
			Want:    []string{`picked 2 of 3 nodes matching "` + regexp.QuoteMeta(DemoChaosPool) + `" at random \(--seed 7\)`, `2 done, 0 failed, 0 skipped`},
		},
		{
			Comment: "the answer as YAML (a CVM hard reset)",
			Command: "kubectl restart " + DemoNodeTKE2 + " --mode hard --reason demo -o yaml",
			Want:    []string{`kind: NodeAction`, `mode: hard`, `instanceID: ` + DemoCVMInstanceID2},
		},
		{
			Comment: "the audit trail: an Event on the node names who asked, the mode, the reason and the cloud's request ID",
			Command: "kubectl get events --field-selector involvedObject.name=" + DemoNodeEKS2,
			Settles: true,
			Want:    []string{`RestartRequested`, `requested by kubernetes-admin \(mode soft, reason "kernel update"`},
		},
		{
			Comment: "the safety policy (--policy-config): budget " + DemoBudget + " lets one ingest node per zone be under an action at once; both ingest nodes are in us-east-1a",
			Command: "kubectl get budgets." + Group,
			Want:    []string{DemoBudget + `\s+us-east-1a\s+0\s+1\s+2\s+maxUnderAction=1\s+<none>`},
		},
		{
			Comment: "a dry run on both: each alone would be allowed, and a dry run takes no budget",
			Command: "kubectl restart -l pool=ingest --dry-run=server",
			Want:    []string{`2 requested, 0 failed`},
		},
		{
			Comment: "both for real, one after the other: the first is accepted, the second refused with 429 TooManyRequests (and Retry-After) naming the budget and the node under its restart",
			Command: raw(DemoNodeIngest, b.soft) + " && " + raw(DemoNodeIngest2, b.soft),
			Fails:   true,
			Want:    []string{`"nodeName":"` + regexp.QuoteMeta(DemoNodeIngest) + `"`, `\(TooManyRequests\)`, `Budget "` + DemoBudget + `"`, `under an action now: ` + regexp.QuoteMeta(DemoNodeIngest)},
		},
		{
			Comment: "the developer " + DemoUser + " (no cloud account) may restart " + DemoNodeDev + " only: RBAC create on nodes/restart with resourceNames",
			Command: "kubectl describe clusterrole " + demoUserRole,
			Want:    []string{`nodes\.` + regexp.QuoteMeta(Group) + `/restart\s+\[\]\s+\[` + regexp.QuoteMeta(DemoNodeDev) + `\]\s+\[create\]`},
		},
		{
			Comment: "as " + DemoUser + ": the dev node restarts",
			Command: "kubectl restart " + DemoNodeDev + " --reason 'testing my fix'" + asUser,
			Want:    []string{regexp.QuoteMeta(DemoNodeDev) + ` restart requested`},
		},
		{
			Comment: "as " + DemoUser + ", another node: 403 Forbidden",
			Command: "kubectl restart " + DemoNodeEKS2 + asUser,
			Fails:   true,
			Want:    []string{`Error from server \(Forbidden\)`, regexp.QuoteMeta(DemoUser)},
		},
		{
			Comment: "the Event names " + DemoUser,
			Command: "kubectl get events --field-selector involvedObject.name=" + DemoNodeDev,
			Settles: true,
			Want:    []string{`requested by ` + regexp.QuoteMeta(DemoUser) + ` \(mode soft, reason "testing my fix"`},
		},
		{
			Comment: "EC2 stop (StopInstances; mode hard would be Force): the machine keeps its disks, the Node stays and goes NotReady",
			Command: rawAction("stop", DemoNodeEKSBatch, b.stop),
			Want:    []string{`"action":"stop"`, `"mode":"soft"`, DemoEC2InstanceIDBatch},
		},
		{
			Comment: "CVM start (StartInstances) of a machine that was stopped",
			Command: rawAction("start", DemoNodeTKEStopped, b.start),
			Want:    []string{`"action":"start"`, DemoCVMInstanceIDStopped},
		},
		{
			Comment: "status.lastAction followed to its end: the stopped node NotReady, the started one Ready again (the fake cloud plays the kubelets)",
			Command: "kubectl get " + nodes + " " + DemoNodeEKSBatch + " " + DemoNodeTKEStopped,
			Settles: true,
			Want: []string{
				regexp.QuoteMeta(DemoNodeEKSBatch) + `\s[^\n]*\sstop\s+Completed\s`,
				regexp.QuoteMeta(DemoNodeTKEStopped) + `\s[^\n]*\sTrue\s+start\s+Completed\s`,
			},
		},
		{
			Comment: "the stopped node started again at once with the plugin: the stop's cooldown refuses only another stop",
			Command: "kubectl cloudnode start " + DemoNodeEKSBatch + " --reason 'demo: morning' --wait",
			Want:    []string{`start requested`, regexp.QuoteMeta(DemoNodeEKSBatch) + ` is up: boot ID \S+, Ready`},
		},
	}
}

// ShortDuration prints whole minutes as people write them: 1m, not 1m0s.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}
