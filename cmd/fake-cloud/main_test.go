package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/alibabacloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/aws"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/gce"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/tencentcloud"
)

// writeCert writes a self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fake-cloud"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

const instancesYAML = `instances:
- {provider: aws, region: us-east-1, id: i-0123456789abcdef0, state: running}
- {provider: tencentcloud, region: ap-guangzhou, id: ins-abcd1234}
- {provider: alibabacloud, region: cn-hangzhou, id: i-bp1abcdefghij0000001}
- {provider: gce, project: my-project-1, zone: us-central1-a, id: gke-pool-1-abcd}
`

// syncBuffer is a log sink read by the test while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunWithRealDrivers starts the command on port 0, reads its address
// line, and drives the three fakes through the production drivers with
// signature checking on.
func TestRunWithRealDrivers(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir)
	instances := filepath.Join(dir, "instances.yaml")
	if err := os.WriteFile(instances, []byte(instancesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	gceKeyFile := filepath.Join(dir, "gce-sa.json")
	go func() {
		done <- run(ctx, []string{
			"--ec2-listen", "127.0.0.1:0", "--cvm-listen", "127.0.0.1:0", "--ecs-listen", "127.0.0.1:0",
			"--gce-listen", "127.0.0.1:0", "--gce-key-file", gceKeyFile,
			"--tls-cert-file", certFile, "--tls-private-key-file", keyFile, "--instances", instances,
			"--aws-access-key-id", "AKIDE2E", "--aws-secret-access-key", "aws-secret",
			"--tencent-secret-id", "AKIDTC", "--tencent-secret-key", "tc-secret",
			"--alibaba-access-key-id", "LTAIE2E", "--alibaba-access-key-secret", "ali-secret",
		}, pw, logs)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	urls := map[string]string{}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		urls[k] = v
	}
	distinct := map[string]bool{}
	for _, name := range []string{"ec2", "cvm", "ecs", "gce"} {
		if !strings.HasPrefix(urls[name], "https://127.0.0.1:") || distinct[urls[name]] {
			t.Fatalf("address line %q", line)
		}
		distinct[urls[name]] = true
	}
	if len(urls) != 4 {
		t.Fatalf("address line %q", line)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDE2E", "AWS_SECRET_ACCESS_KEY": "aws-secret", "AWS_SESSION_TOKEN": "",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
		"AWS_PROFILE": "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_EC2": "", "AWS_CA_BUNDLE": "",
		"TENCENTCLOUD_SECRET_ID": "AKIDTC", "TENCENTCLOUD_SECRET_KEY": "tc-secret",
		"TENCENTCLOUD_CREDENTIALS_FILE": empty, "TKE_ROLE_ARN": "", "HOME": dir,
		"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIE2E", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "ali-secret",
		"ALIBABA_CLOUD_SECURITY_TOKEN": "", "ALIBABA_CLOUD_ROLE_ARN": "", "ALIBABA_CLOUD_CREDENTIALS_FILE": empty,
		"ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true", "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
		// The key file the fake wrote (token_uri: its own), through ADC.
		"GOOGLE_APPLICATION_CREDENTIALS": gceKeyFile, "CLOUDSDK_CONFIG": dir,
	} {
		t.Setenv(k, v)
	}
	bg := context.Background()
	ad, err := aws.New(bg, cloud.ProviderConfig{Enabled: true, Endpoint: urls["ec2"], CAFile: certFile, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ad.Reboot(bg, cloud.Instance{Provider: "aws", ID: "i-0123456789abcdef0", Region: "us-east-1"}, cloud.RebootOptions{}); err != nil {
		t.Fatalf("aws: %v", err)
	}
	td, err := tencentcloud.New(bg, cloud.ProviderConfig{Enabled: true, Endpoint: urls["cvm"], CAFile: certFile, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.Reboot(bg, cloud.Instance{Provider: "tencentcloud", ID: "ins-abcd1234", Region: "ap-guangzhou"}, cloud.RebootOptions{Mode: cloud.RebootHard}); err != nil {
		t.Fatalf("tencentcloud: %v", err)
	}
	ald, err := alibabacloud.New(bg, cloud.ProviderConfig{Enabled: true, Endpoint: urls["ecs"], CAFile: certFile, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ald.Reboot(bg, cloud.Instance{Provider: alibabacloud.Name, ID: "i-bp1abcdefghij0000001", Region: "cn-hangzhou"}, cloud.RebootOptions{Mode: cloud.ModeHard}); err != nil {
		t.Fatalf("alibabacloud: %v", err)
	}

	gd, err := gce.New(bg, cloud.ProviderConfig{Enabled: true, Endpoint: urls["gce"], CAFile: certFile, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := gce.Provider.Resolve("gce://my-project-1/us-central1-a/gke-pool-1-abcd", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := gd.Reboot(bg, gi, cloud.RebootOptions{}); err != nil || res.Mode != cloud.ModeHard {
		t.Fatalf("gce: %+v %v", res, err)
	}

	// The admin endpoint answers another process without a signature.
	pool := x509.NewCertPool()
	certPEM, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(certPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Get(urls["cvm"] + "/_fake/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var calls []fakecloud.Call
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].StopType != "HARD" || calls[0].AccessKeyID != "AKIDTC" || calls[0].Error != "" {
		t.Fatalf("cvm calls %+v", calls)
	}

	out := logs.String()
	for _, want := range []string{
		"aws RebootInstances region=us-east-1 instances=i-0123456789abcdef0 key=AKIDE2E",
		"tencentcloud RebootInstances region=ap-guangzhou instances=ins-abcd1234 stopType=HARD key=AKIDTC",
		"alibabacloud RebootInstance region= instances=i-bp1abcdefghij0000001 forceStop=true key=LTAIE2E",
		"gce compute.instances.reset region=us-central1 instances=gke-pool-1-abcd project=my-project-1 zone=us-central1-a requestId=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	base := []string{"--tls-cert-file", "c", "--tls-private-key-file", "k", "--instances", "i"}
	for name, args := range map[string][]string{
		"no listener":    base,
		"no cert":        {"--ec2-listen", ":0", "--instances", "i"},
		"no instances":   {"--ec2-listen", ":0", "--tls-cert-file", "c", "--tls-private-key-file", "k"},
		"half aws":       append([]string{"--ec2-listen", ":0", "--aws-access-key-id", "A"}, base...),
		"half tencent":   append([]string{"--cvm-listen", ":0", "--tencent-secret-key", "K"}, base...),
		"gce no key":     append([]string{"--gce-listen", ":0"}, base...),
		"key no gce":     append([]string{"--ec2-listen", ":0", "--gce-key-file", "k.json"}, base...),
		"unknown flag":   append([]string{"--ec2-listen", ":0", "--region", "x"}, base...),
		"stray argument": append([]string{"--ec2-listen", ":0", "extra"}, base...),
		"negative delay": append([]string{"--ec2-listen", ":0", "--kubeconfig", "kc", "--kubelet-delay", "-1s"}, base...),
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
	if _, err := parseFlags(append([]string{"--ec2-listen", ":0"}, base...), io.Discard); err != nil {
		t.Errorf("valid flags refused: %v", err)
	}
}

func TestLoadInstancesErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"unknown provider": "instances: [{provider: azure, region: r, id: n}]\n",
		"gce without zone": "instances: [{provider: gce, project: my-project-1, id: vm-1}]\n",
		"bad gce name":     "instances: [{provider: gce, project: my-project-1, zone: us-central1-a, id: VM}]\n",
		"gce wrong region": "instances: [{provider: gce, project: my-project-1, zone: us-central1-a, region: us-east1, id: vm-1}]\n",
		"bad aws id":       "instances: [{provider: aws, region: us-east-1, id: i-xyz}]\n",
		"bad cvm id":       "instances: [{provider: tencentcloud, region: ap-guangzhou, id: ins-1}]\n",
		"bad ecs id":       "instances: [{provider: alibabacloud, region: cn-hangzhou, id: ins-abcd1234}]\n",
		"bad ecs region":   "instances: [{provider: alibabacloud, region: Hangzhou, id: i-bp1abcdefghij0000001}]\n",
		"no region":        "instances: [{provider: aws, id: i-0123456789abcdef0}]\n",
		"duplicate":        "instances: [{provider: aws, region: r, id: i-01234567}, {provider: aws, region: r, id: i-01234567}]\n",
		"unknown field":    "instances: [{provider: aws, region: r, id: i-01234567, flavor: z}]\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadInstances(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	path := filepath.Join(dir, "ok")
	if err := os.WriteFile(path, []byte(instancesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadInstances(path)
	a, c, e, g := got[cloud.ProviderAWS], got[cloud.ProviderTencentCloud], got[alibabacloud.Name], got[gce.Name]
	if err != nil || len(a) != 1 || len(c) != 1 || len(e) != 1 || len(g) != 1 || a[0].State != "running" || c[0].ID != "ins-abcd1234" ||
		e[0].Region != "cn-hangzhou" || g[0].Zone != "us-central1-a" {
		t.Fatalf("got %+v %v", got, err)
	}
}

func TestLoadAzureInstances(t *testing.T) {
	dir := t.TempDir()
	const vm = "/subscriptions/0a1b2c3d-0000-1111-2222-333344445555/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"
	path := filepath.Join(dir, "azure")
	if err := os.WriteFile(path, []byte("instances: [{provider: azure, region: eastus, id: "+vm+"}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadInstances(path)
	if az := got[fakecloud.ProviderAzure]; err != nil || len(az) != 1 || az[0].ID != vm {
		t.Fatalf("got %+v %v", got, err)
	}
	// A whole scale set is not an instance the server would act on.
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("instances: [{provider: azure, region: eastus, id: /subscriptions/0a1b2c3d-0000-1111-2222-333344445555/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadInstances(bad); err == nil {
		t.Fatal("a scale set was accepted as an instance")
	}
	base := []string{"--tls-cert-file", "c", "--tls-private-key-file", "k", "--instances", "i"}
	if _, err := parseFlags(append([]string{"--azure-listen", ":0"}, base...), io.Discard); err == nil {
		t.Fatal("--azure-listen without the service principal was accepted")
	}
	if _, err := parseFlags(append([]string{"--azure-listen", ":0", "--azure-tenant-id", "t", "--azure-client-id", "c", "--azure-client-secret", "s"}, base...), io.Discard); err != nil {
		t.Fatal(err)
	}
}
