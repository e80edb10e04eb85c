package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// FakeInstance is one machine the fake cloud knows (its --instances file).
type FakeInstance struct {
	Provider string `json:"provider"`
	Region   string `json:"region"`
	ID       string `json:"id"`
	// Project and Zone place a GCE instance.
	Project string `json:"project,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// State is the fake's initial state for the machine; empty leaves the
	// fake's default.
	State string `json:"state,omitempty"`
}

// NodeSpec is a core Node the harness creates, with the status a kubelet
// would have posted.
type NodeSpec struct {
	Name       string
	ProviderID string
	Labels     map[string]string
	Ready      bool
	BootID     string
}

// The machines behind the demo nodes.
const (
	DemoEC2InstanceID = "i-0123456789abcdef0"
	DemoCVMInstanceID = "ins-abcd1234"
	DemoECSInstanceID = "i-bp1demo0demo0demo0001"
	// DemoGCEProject and DemoGCEZone place the GKE node's VM.
	DemoGCEProject = "demo-project-1"
	DemoGCEZone    = "us-central1-a"
	// DemoAzureVMID is a standalone (or availability-set, or VMSS Flex)
	// VM, DemoAzureVMSSID an AKS VMSS Uniform instance; ARM resource IDs.
	DemoAzureVMID   = "/subscriptions/" + FakeAzureSubscription + "/resourceGroups/demo-rg/providers/Microsoft.Compute/virtualMachines/demo-vm-0"
	DemoAzureVMSSID = "/subscriptions/" + FakeAzureSubscription + "/resourceGroups/mc_demo_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/0"
)

// The fake Entra ID's one service principal, and the subscription of the
// fake Azure machines.
const (
	FakeAzureTenant       = "00000000-0000-4000-8000-00000000e2e0"
	FakeAzureClientID     = "00000000-0000-4000-8000-00000000c11d"
	fakeAzureSecret       = "fake-azure-client-secret"
	FakeAzureSubscription = "0a1b2c3d-0000-4000-8000-0000000000e2"
)

// Demo node names, one per kind of providerID the server must handle.
const (
	DemoNodeEKS        = "ip-10-0-1-23.ec2.internal"
	DemoNodeTKE        = "172.16.0.12"
	DemoNodeACK        = "cn-hangzhou.192.168.0.21"
	DemoNodeFargate    = "fargate-ip-10-0-2-45.ec2.internal"
	DemoNodeNoProvider = "bare-metal-1"
	// DemoNodeGKE is also its VM's name, as on GKE.
	DemoNodeGKE = "gke-demo-default-pool-1a2b3c4d-x1y2"
	// DemoNodeAzureVM is an Azure VM, DemoNodeAKS an AKS scale-set instance.
	DemoNodeAzureVM = "demo-vm-0"
	DemoNodeAKS     = "aks-nodepool1-12345678-vmss000000"
)

// DemoInstances are the machines of the demo nodes.
func DemoInstances() []FakeInstance {
	return []FakeInstance{
		{Provider: "aws", Region: "us-east-1", ID: DemoEC2InstanceID, State: "running"},
		{Provider: "tencentcloud", Region: "ap-guangzhou", ID: DemoCVMInstanceID},
		{Provider: "alibabacloud", Region: "cn-hangzhou", ID: DemoECSInstanceID},
		{Provider: "gce", Region: "us-central1", Project: DemoGCEProject, Zone: DemoGCEZone, ID: DemoNodeGKE},
		{Provider: "azure", Region: "westeurope", ID: DemoAzureVMID},
		{Provider: "azure", Region: "eastus", ID: DemoAzureVMSSID},
	}
}

// DemoNodes are an EKS node, a TKE node (with TKE's short region alias),
// an ACK node (with ACK's providerID, which has no scheme), a GKE node, an
// EKS Fargate node (not a machine we can reboot) and a node without a
// providerID.
func DemoNodes() []NodeSpec {
	return []NodeSpec{
		{
			Name:       DemoNodeEKS,
			ProviderID: "aws:///us-east-1a/" + DemoEC2InstanceID,
			Labels: map[string]string{
				"topology.kubernetes.io/region":    "us-east-1",
				"topology.kubernetes.io/zone":      "us-east-1a",
				"node.kubernetes.io/instance-type": "m5.large",
			},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0001",
		},
		{
			Name:       DemoNodeTKE,
			ProviderID: "qcloud:///100003/" + DemoCVMInstanceID,
			Labels: map[string]string{
				"topology.kubernetes.io/region":      "gz",
				"topology.kubernetes.io/zone":        "100003",
				"cloud.tencent.com/node-instance-id": DemoCVMInstanceID,
				"node.kubernetes.io/instance-type":   "S5.MEDIUM4",
			},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0002",
		},
		{
			Name:       DemoNodeACK,
			ProviderID: "cn-hangzhou." + DemoECSInstanceID,
			Labels: map[string]string{
				"topology.kubernetes.io/region":    "cn-hangzhou",
				"topology.kubernetes.io/zone":      "cn-hangzhou-k",
				"node.kubernetes.io/instance-type": "ecs.g7.large",
			},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0009",
		},
		{
			Name:       DemoNodeGKE,
			ProviderID: "gce://" + DemoGCEProject + "/" + DemoGCEZone + "/" + DemoNodeGKE,
			Labels: map[string]string{
				"topology.kubernetes.io/region":    "us-central1",
				"topology.kubernetes.io/zone":      DemoGCEZone,
				"cloud.google.com/gke-nodepool":    "default-pool",
				"node.kubernetes.io/instance-type": "e2-standard-4",
			},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0005",
		},
		{
			Name:       DemoNodeFargate,
			ProviderID: "aws:///us-east-1b/0123456789abcdef0123456789abcdef/" + DemoNodeFargate,
			Labels: map[string]string{
				"topology.kubernetes.io/region":  "us-east-1",
				"topology.kubernetes.io/zone":    "us-east-1b",
				"eks.amazonaws.com/compute-type": "fargate",
			},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0003",
		},
		{
			Name:       DemoNodeAzureVM,
			ProviderID: "azure://" + DemoAzureVMID,
			Labels: map[string]string{
				"topology.kubernetes.io/region":    "westeurope",
				"topology.kubernetes.io/zone":      "westeurope-1",
				"node.kubernetes.io/instance-type": "Standard_D2s_v5",
			},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0108",
		},
		{
			// AKS writes the resource group lower-cased, as here.
			Name:       DemoNodeAKS,
			ProviderID: "azure://" + DemoAzureVMSSID,
			Labels: map[string]string{
				"topology.kubernetes.io/region":    "eastus",
				"topology.kubernetes.io/zone":      "0",
				"kubernetes.azure.com/agentpool":   "nodepool1",
				"node.kubernetes.io/instance-type": "Standard_D4s_v5",
			},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0109",
		},
		{
			Name:   DemoNodeNoProvider,
			Labels: map[string]string{"kubernetes.io/hostname": DemoNodeNoProvider},
			Ready:  true,
			BootID: "6f1d2f0e-3c1b-4d55-9a39-0b7f1c2e0004",
		},
	}
}

// ProductOptions configure StartProduct.
type ProductOptions struct {
	// ServerBinary is bin/k8s-cloud-node-manager.
	ServerBinary string
	// FakeCloudBinary is bin/fake-cloud.
	FakeCloudBinary string
	// ExtraServerArgs are appended to the server's flags.
	ExtraServerArgs []string
	// ServerEnv is added to the server's environment, after the fake
	// credentials (so it can override them).
	ServerEnv []string
	// FakeCloudEnv is added to the fake cloud's environment.
	FakeCloudEnv []string
	// KubeletDelay, when positive, has the fake cloud play the kubelets
	// of its machines (fake-cloud --kubeconfig): a rebooted machine's
	// Node goes NotReady and is Ready again with a new boot ID after
	// this long. Zero leaves Nodes to the test (SetNodeStatus).
	KubeletDelay time.Duration
	// Instances seed the fake cloud; nil means DemoInstances().
	Instances []FakeInstance
	// Azure also serves the fake Azure (Entra ID and ARM on one listener)
	// and enables the azure provider at it, with DefaultAzureCredential's
	// environment credential for the fake's service principal.
	Azure bool
	// Nodes are created before the server starts; nil means DemoNodes(),
	// an empty non-nil slice none.
	Nodes []NodeSpec
}

// Product is the fake cloud and the extension server, registered with the
// cluster.
type Product struct {
	FakeCloud *Process
	Server    *Process
	// EC2URL, CVMURL, ECSURL and GCEURL are the fake cloud's endpoints
	// (GCE's OAuth2 token endpoint included).
	EC2URL string
	CVMURL string
	ECSURL string
	GCEURL string
	// GCEKeyFile is the service-account key the fake made and trusts; the
	// server finds it through GOOGLE_APPLICATION_CREDENTIALS.
	GCEKeyFile string
	// AzureURL is the fake Entra ID and ARM (one listener), with Azure.
	AzureURL string
	// ServerPort is the extension server's port on 127.0.0.1.
	ServerPort int
	// CloudConfig is the path of the server's --cloud-config file.
	CloudConfig string
	// APIService is the registration; APIService.CABundle verifies both
	// the server and the fake cloud.
	APIService APIServiceOptions
	// Available is how long the APIService took to become usable after
	// the server was started.
	Available time.Duration

	cluster   *Cluster
	serverBin string
	serverEnv []string
	extraArgs []string
}

// StartProduct starts the fake cloud, writes the cloud config, creates the
// nodes, starts the extension server and registers it, and returns once
// its group version answers through kube-apiserver.
func (c *Cluster) StartProduct(ctx context.Context, o ProductOptions) (*Product, error) {
	for _, b := range []string{o.ServerBinary, o.FakeCloudBinary} {
		if err := executable(b); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	dir := filepath.Join(c.opts.WorkDir, dirProduct)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &Product{cluster: c, serverBin: o.ServerBinary}
	ok := false
	defer func() {
		if !ok {
			p.stop()
		}
	}()

	// One serving certificate for both fake endpoints and one for the
	// server, from the same extension CA, so one CA file trusts both.
	fakeCert, fakeKey, caPEM, err := c.NewServingCert([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "ca.crt")
	files := map[string][]byte{
		caFile:                               caPEM,
		filepath.Join(dir, "fake-cloud.crt"): fakeCert,
		filepath.Join(dir, "fake-cloud.key"): fakeKey,
	}
	instances := o.Instances
	if instances == nil {
		instances = DemoInstances()
	}
	instancesYAML, err := yaml.Marshal(struct {
		Instances []FakeInstance `json:"instances"`
	}{instances})
	if err != nil {
		return nil, err
	}
	files[filepath.Join(dir, "instances.yaml")] = instancesYAML
	if err := writeFiles(files); err != nil {
		return nil, err
	}

	p.GCEKeyFile = filepath.Join(dir, "gce-service-account.json")
	fakeArgs := []string{
		"--ec2-listen", "127.0.0.1:0",
		"--cvm-listen", "127.0.0.1:0",
		"--ecs-listen", "127.0.0.1:0",
		"--gce-listen", "127.0.0.1:0",
		"--gce-key-file", p.GCEKeyFile,
		"--tls-cert-file", filepath.Join(dir, "fake-cloud.crt"),
		"--tls-private-key-file", filepath.Join(dir, "fake-cloud.key"),
		"--instances", filepath.Join(dir, "instances.yaml"),
		// With the secrets the fakes verify every signature in full, so a
		// test proves what the SDKs signed, not only the header's shape.
		"--aws-access-key-id", fakeAWSKeyID, "--aws-secret-access-key", fakeAWSSecret,
		"--tencent-secret-id", fakeTencentID, "--tencent-secret-key", fakeTencentSecret,
		"--alibaba-access-key-id", fakeAlibabaKeyID, "--alibaba-access-key-secret", fakeAlibabaSecret,
	}
	if o.Azure {
		fakeArgs = append(fakeArgs, "--azure-listen", "127.0.0.1:0",
			"--azure-tenant-id", FakeAzureTenant, "--azure-client-id", FakeAzureClientID, "--azure-client-secret", fakeAzureSecret)
	}
	if o.KubeletDelay > 0 {
		fakeArgs = append(fakeArgs, "--kubeconfig", c.kubeconfig, "--kubelet-delay", o.KubeletDelay.String())
	}
	begin := time.Now()
	p.FakeCloud, err = c.StartProcess("fake-cloud", o.FakeCloudBinary, fakeArgs, o.FakeCloudEnv)
	if err != nil {
		return nil, err
	}
	lineCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	line, err := p.FakeCloud.FirstLine(lineCtx)
	cancel()
	if err != nil {
		return nil, err
	}
	urls, err := parseFakeCloudLine(line)
	if err != nil {
		return nil, fmt.Errorf("fake-cloud: %w%s", err, p.FakeCloud.logTailSuffix())
	}
	p.EC2URL, p.CVMURL, p.ECSURL, p.GCEURL = urls["ec2"], urls["cvm"], urls["ecs"], urls["gce"]
	// Azure is opt-in: only then is azure=URL required of the first line.
	if o.Azure {
		if p.AzureURL = urls["azure"]; p.AzureURL == "" {
			return nil, fmt.Errorf("fake-cloud: first line %q lacks azure=URL%s", line, p.FakeCloud.logTailSuffix())
		}
	}
	c.opts.Logf("fake cloud up after %s: %s", time.Since(begin).Round(time.Millisecond), strings.TrimSpace(line))

	p.CloudConfig = filepath.Join(dir, "cloud-config.yaml")
	if !o.Azure {
		// A fake started without Azure has none; never configure one.
		delete(urls, "azure")
	}
	cloudConfig, err := cloudConfigYAML(urls, caFile)
	if err != nil {
		return nil, err
	}
	if err := writeFiles(map[string][]byte{p.CloudConfig: cloudConfig}); err != nil {
		return nil, err
	}

	nodes := o.Nodes
	if nodes == nil {
		nodes = DemoNodes()
	}
	for _, n := range nodes {
		if _, err := c.CreateNode(ctx, n.Name, n.ProviderID, n.Labels); err != nil {
			return nil, err
		}
		if err := c.SetNodeStatus(ctx, n.Name, n.Ready, n.BootID); err != nil {
			return nil, err
		}
	}

	// The server's leader-election lock lives in this namespace, and the
	// server may look for it before the APIService exists.
	if err := c.EnsureNamespace(ctx, Namespace); err != nil {
		return nil, err
	}
	p.APIService = ProductAPIService(0, caPEM)
	serverCert, serverKey, _, err := c.NewServingCert(p.APIService.ServingDNSNames(), []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	if err := writeFiles(map[string][]byte{
		filepath.Join(dir, "server.crt"): serverCert,
		filepath.Join(dir, "server.key"): serverKey,
	}); err != nil {
		return nil, err
	}
	p.serverEnv = append(fakeCredentials(), "GOOGLE_APPLICATION_CREDENTIALS="+p.GCEKeyFile)
	if o.Azure {
		p.serverEnv = append(p.serverEnv, azureCredentials(p.AzureURL)...)
	}
	p.serverEnv = append(p.serverEnv, o.ServerEnv...)
	extra := append([]string(nil), o.ExtraServerArgs...)
	p.extraArgs = extra

	begin = time.Now()
	if err := p.startServer(ctx, extra); err != nil {
		return nil, err
	}
	p.APIService.Port = p.ServerPort
	if err := c.RegisterAPIService(ctx, p.APIService); err != nil {
		return nil, err
	}
	if _, err := c.WaitAPIServiceAvailable(ctx, p.APIService.Name(), p.APIService.GroupVersionPath()); err != nil {
		return nil, fmt.Errorf("%w%s", err, p.Server.logTailSuffix())
	}
	p.Available = time.Since(begin)
	c.opts.Logf("APIService %s available %s after the server started", p.APIService.Name(), p.Available.Round(time.Millisecond))
	ok = true
	return p, nil
}

func writeFiles(files map[string][]byte) error {
	for path, data := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(path, ".key") {
			mode = 0o600
		}
		if err := os.WriteFile(path, data, mode); err != nil {
			return err
		}
	}
	return nil
}

// fakeEndpoints are the fake cloud's endpoints the harness starts, by
// the name the fake prints, with the provider each serves.
var fakeEndpoints = map[string]string{"ec2": "aws", "cvm": "tencentcloud", "ecs": "alibabacloud", "gce": "gce"}

// parseFakeCloudLine reads "ec2=https://127.0.0.1:P cvm=https://127.0.0.1:Q
// ecs=https://127.0.0.1:R gce=https://127.0.0.1:S" into endpoint name →
// URL; every one of fakeEndpoints must be there.
func parseFakeCloudLine(line string) (map[string]string, error) {
	urls := map[string]string{}
	for field := range strings.FieldsSeq(line) {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			continue
		}
		u, perr := url.Parse(v)
		if perr != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("bad %s URL %q in first line %q", k, v, line)
		}
		urls[k] = v
	}
	for name := range fakeEndpoints {
		if urls[name] == "" {
			return nil, fmt.Errorf("first line %q lacks %s=URL", line, name)
		}
	}
	return urls, nil
}

type cloudProviderConfig struct {
	Region   string `json:"region,omitempty"`
	Endpoint string `json:"endpoint"`
	CAFile   string `json:"caFile"`
}

// cloudConfigYAML points every cloud at its fake endpoint (urls from
// parseFakeCloudLine), trusting caFile. Azure, opt-in, only when urls has
// it: ARM at the fake, whose token endpoint AZURE_AUTHORITY_HOST names.
func cloudConfigYAML(urls map[string]string, caFile string) ([]byte, error) {
	providers := map[string]cloudProviderConfig{
		"aws":          {Region: "us-east-1", Endpoint: urls["ec2"], CAFile: caFile},
		"tencentcloud": {Region: "ap-guangzhou", Endpoint: urls["cvm"], CAFile: caFile},
		// ECS providerIDs name their region; the default is never used.
		"alibabacloud": {Region: "cn-hangzhou", Endpoint: urls["ecs"], CAFile: caFile},
		// Every GCE providerID names its zone: no default region. The CA
		// file is trusted for the token endpoint too.
		"gce": {Endpoint: urls["gce"], CAFile: caFile},
	}
	if urls["azure"] != "" {
		providers["azure"] = cloudProviderConfig{Endpoint: urls["azure"], CAFile: caFile}
	}
	return yaml.Marshal(struct {
		Providers map[string]cloudProviderConfig `json:"providers"`
	}{providers})
}

// azureCredentials are DefaultAzureCredential's environment credential for
// the fake's service principal, at the fake's token endpoint. Only the
// production credentials (environment, workload identity, managed
// identity) are tried, never a developer's az login.
func azureCredentials(azureURL string) []string {
	return []string{
		"AZURE_TENANT_ID=" + FakeAzureTenant,
		"AZURE_CLIENT_ID=" + FakeAzureClientID,
		"AZURE_CLIENT_SECRET=" + fakeAzureSecret,
		"AZURE_AUTHORITY_HOST=" + azureURL + "/",
		"AZURE_TOKEN_CREDENTIALS=prod",
	}
}

// fakeCredentials satisfy the SDKs' credential chains without reaching
// any real account, and keep the AWS SDK off the instance metadata
// service (which would stall start-up for seconds off EC2).
// The fake clouds' credentials: the server signs with them, the fakes verify.
const (
	fakeAWSKeyID      = "AKIAFAKEFAKEFAKEFAKE"
	fakeAWSSecret     = "fake-secret-access-key"
	fakeTencentID     = "AKIDfakefakefakefakefakefakefakefake"
	fakeTencentSecret = "fake-secret-key"
	fakeAlibabaKeyID  = "LTAI5tFakeFakeFakeFake00"
	fakeAlibabaSecret = "fake-access-key-secret"
)

func fakeCredentials() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + fakeAWSKeyID,
		"AWS_SECRET_ACCESS_KEY=" + fakeAWSSecret,
		"AWS_EC2_METADATA_DISABLED=true",
		"TENCENTCLOUD_SECRET_ID=" + fakeTencentID,
		"TENCENTCLOUD_SECRET_KEY=" + fakeTencentSecret,
		"ALIBABA_CLOUD_ACCESS_KEY_ID=" + fakeAlibabaKeyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET=" + fakeAlibabaSecret,
		// Keep credentials-go off the CLI's config file and the ECS
		// metadata server should the chain ever get that far.
		"ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true",
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
	}
}

// cloudEnv matches variables through which the caller's real cloud
// identity (profiles, session tokens, endpoint overrides, TKE workload
// identity) could reach the server: the demo and the tests must only ever
// talk to the fake cloud.
func cloudEnv(kv string) bool {
	for _, prefix := range []string{"AWS_", "TENCENTCLOUD_", "TKE_", "ALIBABA_CLOUD_", "ALICLOUD_", "GOOGLE_", "CLOUDSDK_", "GCE_METADATA", "AZURE_", "MSI_", "IDENTITY_"} {
		if strings.HasPrefix(kv, prefix) {
			return true
		}
	}
	return false
}

func (p *Product) serverArgs(port int, extra []string) []string {
	c := p.cluster
	dir := filepath.Join(c.opts.WorkDir, dirProduct)
	return append([]string{
		"--secure-port", strconv.Itoa(port),
		"--bind-address", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "server.crt"),
		"--tls-private-key-file", filepath.Join(dir, "server.key"),
		"--kubeconfig", c.kubeconfig,
		"--authentication-kubeconfig", c.kubeconfig,
		"--authorization-kubeconfig", c.kubeconfig,
		"--cloud-config", p.CloudConfig,
		"--lock-namespace", Namespace,
	}, extra...)
}

// startServer picks a port and starts the server until it listens,
// retrying when it lost the port to someone else.
func (p *Product) startServer(ctx context.Context, extra []string) error {
	for range attempts {
		port, err := freePort()
		if err != nil {
			return err
		}
		if err := p.launchServer(ctx, port, p.serverArgs(port, extra)); err == nil {
			p.ServerPort = port
			return nil
		} else if !isPortRace(p.Server) {
			return err
		}
		p.cluster.opts.Logf("k8s-cloud-node-manager lost a port race; retrying with another port")
	}
	return errPortRace("k8s-cloud-node-manager")
}

func (p *Product) launchServer(ctx context.Context, port int, args []string) error {
	proc, err := p.cluster.track(nil, func() (*Process, error) {
		return startProcess(p.cluster.logDir, "k8s-cloud-node-manager", p.serverBin, args, p.serverEnv, cloudEnv)
	})
	if err != nil {
		return err
	}
	p.Server = proc
	client := p.serverHTTPClient()
	readyz := fmt.Sprintf("https://127.0.0.1:%d/readyz", port)
	err = waitFor(ctx, time.Minute, proc, func(ctx context.Context) error {
		return serverAnswers(ctx, client, readyz)
	})
	if err != nil {
		_ = proc.Stop()
		return fmt.Errorf("k8s-cloud-node-manager did not start: %w", err)
	}
	return nil
}

// RestartServer stops the extension server and starts it again with the
// same flags and port, then waits for the APIService to be usable again;
// it returns how long that took from the new start.
func (p *Product) RestartServer(ctx context.Context) (time.Duration, error) {
	args := p.Server.Args()
	if err := p.Server.Stop(); err != nil {
		return 0, err
	}
	begin := time.Now()
	if err := p.launchServer(ctx, p.ServerPort, args); err != nil {
		return 0, err
	}
	if _, err := p.cluster.WaitAPIServiceAvailable(ctx, p.APIService.Name(), p.APIService.GroupVersionPath()); err != nil {
		return 0, fmt.Errorf("%w%s", err, p.Server.logTailSuffix())
	}
	return time.Since(begin), nil
}

// KillServer ends the extension server with SIGKILL (no graceful
// shutdown, nothing flushed) and starts it again with the same flags and
// port, then waits for the APIService to be usable again.
func (p *Product) KillServer(ctx context.Context) error {
	if err := p.Server.Kill(); err != nil {
		return err
	}
	_, err := p.RestartServer(ctx)
	return err
}

// StartReplica starts another extension server beside the registered one,
// with the same flags on a free port plus extra, and returns at once
// (without waiting for it to be ready). It is stopped with the cluster.
func (p *Product) StartReplica(extra []string) (*Process, int, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	args := p.serverArgs(port, append(append([]string(nil), p.extraArgs...), extra...))
	proc, err := p.cluster.track(nil, func() (*Process, error) {
		return startProcess(p.cluster.logDir, fmt.Sprintf("k8s-cloud-node-manager-%d", port), p.serverBin, args, p.serverEnv, cloudEnv)
	})
	return proc, port, err
}

// ServerHTTPClient trusts the extension server's serving certificate and
// presents certs, if any.
func (p *Product) ServerHTTPClient(certs ...tls.Certificate) *http.Client {
	c := p.serverHTTPClient()
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = certs
	return c
}

// FrontProxyClientCert is the certificate kube-apiserver's aggregator
// presents to extension servers (CN front-proxy-client).
func (c *Cluster) FrontProxyClientCert() (tls.Certificate, error) {
	return tls.LoadX509KeyPair(c.pki.path(fileFrontProxyCert), c.pki.path(fileFrontProxyKey))
}

func (p *Product) stop() {
	for _, proc := range []*Process{p.Server, p.FakeCloud} {
		if proc != nil {
			_ = proc.Stop()
		}
	}
}

func (p *Product) serverHTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.APIService.CABundle)
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		},
	}
}

// serverAnswers is satisfied by any non-5xx answer: /readyz is open to
// anonymous users by default, but a server run with anonymous auth off
// answers 401 and is up all the same; the APIService check that follows
// proves it serves.
func serverAnswers(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
