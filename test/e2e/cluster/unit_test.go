package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func verify(t *testing.T, ca *keyPair, leaf *keyPair, usage x509.ExtKeyUsage, dnsName string) error {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	_, err := leaf.cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestPKI(t *testing.T) {
	dir := t.TempDir()
	p, err := newPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kubernetes.default.svc", "localhost", "127.0.0.1", serviceIP} {
		if err := verify(t, p.clusterCA, p.apiserver, x509.ExtKeyUsageServerAuth, name); err != nil {
			t.Errorf("apiserver cert for %s: %v", name, err)
		}
	}
	if err := verify(t, p.clusterCA, p.admin, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("admin cert: %v", err)
	}
	if !slices.Equal(p.admin.cert.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("admin groups = %v", p.admin.cert.Subject.Organization)
	}
	if err := verify(t, p.frontProxyCA, p.frontProxy, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("front-proxy client cert: %v", err)
	}
	if cn := p.frontProxy.cert.Subject.CommonName; cn != "front-proxy-client" {
		t.Errorf("front-proxy client CN = %q", cn)
	}
	// The front proxy's identity must not pass as a cluster client.
	if err := verify(t, p.clusterCA, p.frontProxy, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Error("front-proxy client cert verifies against the cluster CA")
	}

	for _, kp := range []*keyPair{p.clusterCA, p.frontProxyCA, p.extensionCA, p.apiserver, p.admin, p.frontProxy} {
		if life := time.Until(kp.cert.NotAfter); life < 24*time.Hour || life > 30*24*time.Hour {
			t.Errorf("%s lives %s more", kp.cert.Subject.CommonName, life)
		}
		pub, ok := kp.cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: key is not ECDSA P-256", kp.cert.Subject.CommonName)
		}
	}

	for _, f := range []string{fileAPIServerKey, fileAdminKey, fileFrontProxyKey, fileServiceAccountSK} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, st.Mode().Perm())
		}
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, fileServiceAccountPK))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pubPEM)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("service-account public key file: %q", pubPEM)
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		t.Error(err)
	}
}

func TestNewServingCert(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{pki: p}
	api := ProductAPIService(0, nil)
	certPEM, keyPEM, caPEM, err := c.NewServingCert(api.ServingDNSNames(), []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(keyPEM) == 0 {
		t.Fatal("no key")
	}
	cert := parseCert(t, certPEM)
	extCA := x509.NewCertPool()
	extCA.AppendCertsFromPEM(caPEM)
	// The aggregator checks this name; local clients use the others.
	for _, name := range []string{"k8s-cloud-node-manager.k8s-cloud-node-manager.svc", "localhost", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: extCA, DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	clusterCA := x509.NewCertPool()
	clusterCA.AddCert(p.clusterCA.cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: clusterCA}); err == nil {
		t.Error("extension serving cert verifies against the cluster CA; the caBundle would trust too much")
	}
}

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < portMin || p > portMax {
			t.Fatalf("port %d outside [%d, %d]", p, portMin, portMax)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestProcessFirstLineAndGroupStop(t *testing.T) {
	dir := t.TempDir()
	// The shell forks a sleeper and reports its PID: Stop must kill it too.
	p, err := startProcess(dir, "sh", "/bin/sh", []string{"-c", "sleep 300 & echo $!; echo to-stderr >&2; wait"}, []string{"X=1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := p.FirstLine(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("first line %q", line)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the stopped process still runs", child)
		}
		time.Sleep(50 * time.Millisecond)
	}
	log := p.LogTail(10)
	for _, want := range []string{line, "to-stderr", "exited"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// alive treats a zombie as dead: in a container the reaper may be slow.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) == 0 || fields[0] != "Z"
}

func TestProcessExitsWithoutLine(t *testing.T) {
	p, err := startProcess(t.TempDir(), "fails", "/bin/sh", []string{"-c", "echo boom >&2; exit 3"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.FirstLine(t.Context())
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("error %v, want the exit status and the log tail", err)
	}
	<-p.Done()
	if p.Err() == nil {
		t.Error("Err() is nil after a failing exit")
	}
}

func TestStartProcessDropsEnv(t *testing.T) {
	t.Setenv("ETCD_NAME", "wrong")
	p, err := startProcess(t.TempDir(), "env", "/bin/sh", []string{"-c", `echo "[$ETCD_NAME][$KEPT]"`}, []string{"KEPT=yes"},
		func(kv string) bool { return strings.HasPrefix(kv, "ETCD_") })
	if err != nil {
		t.Fatal(err)
	}
	line, err := p.FirstLine(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if line != "[][yes]" {
		t.Errorf("child saw %q", line)
	}
}

func TestFirstLineTapLongLine(t *testing.T) {
	var sink strings.Builder
	tap := &firstLineTap{w: &sink, ready: make(chan struct{})}
	chunk := strings.Repeat("x", 1024)
	for range maxFirstLine/1024 + 1 {
		if _, err := tap.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-tap.ready:
	default:
		t.Fatal("an endless first line must still end the wait")
	}
	if sink.Len() != (maxFirstLine/1024+1)*1024 {
		t.Errorf("log got %d bytes", sink.Len())
	}
}

func TestParseFakeCloudLine(t *testing.T) {
	urls, err := parseFakeCloudLine("ec2=https://127.0.0.1:40001 cvm=https://127.0.0.1:40002 ecs=https://127.0.0.1:40003 gce=https://127.0.0.1:40004")
	if err != nil || urls["ec2"] != "https://127.0.0.1:40001" || urls["cvm"] != "https://127.0.0.1:40002" ||
		urls["ecs"] != "https://127.0.0.1:40003" || urls["gce"] != "https://127.0.0.1:40004" {
		t.Fatalf("got %v %v", urls, err)
	}
	for _, bad := range []string{"", "listening", "ec2=https://127.0.0.1:1", "ec2=:bad cvm=https://x",
		"ec2=https://127.0.0.1:1 cvm=https://127.0.0.1:2",
		"ec2=https://127.0.0.1:1 cvm=https://127.0.0.1:2 ecs=https://127.0.0.1:3",
		"ec2=https://127.0.0.1:1 cvm=https://127.0.0.1:2 gce=https://127.0.0.1:3"} {
		if _, err := parseFakeCloudLine(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFakeCloudLineAzure(t *testing.T) {
	urls, err := parseFakeCloudLine("ec2=https://127.0.0.1:1 cvm=https://127.0.0.1:2 ecs=https://127.0.0.1:5 gce=https://127.0.0.1:4 azure=https://127.0.0.1:3")
	if err != nil || urls["azure"] != "https://127.0.0.1:3" {
		t.Fatalf("got %v %v", urls, err)
	}
	if _, err := parseFakeCloudLine("ec2=https://127.0.0.1:1 cvm=https://127.0.0.1:2 ecs=https://127.0.0.1:5 gce=https://127.0.0.1:4 azure=:x"); err == nil {
		t.Error("bad azure URL: no error")
	}
	data, err := cloudConfigYAML(urls, "/ca.crt")
	if err != nil || !strings.Contains(string(data), "azure:") || !strings.Contains(string(data), "https://127.0.0.1:3") {
		t.Fatalf("%s %v", data, err)
	}
	delete(urls, "azure")
	if data, err := cloudConfigYAML(urls, "/ca.crt"); err != nil || strings.Contains(string(data), "azure:") {
		t.Fatalf("azure configured without its endpoint: %s %v", data, err)
	}
}

func TestCloudConfigYAML(t *testing.T) {
	data, err := cloudConfigYAML(map[string]string{"ec2": "https://127.0.0.1:1", "cvm": "https://127.0.0.1:2", "ecs": "https://127.0.0.1:3", "gce": "https://127.0.0.1:4"}, "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]map[string]string
	if err := yaml.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"aws":          {"region": "us-east-1", "endpoint": "https://127.0.0.1:1", "caFile": "/ca.crt"},
		"tencentcloud": {"region": "ap-guangzhou", "endpoint": "https://127.0.0.1:2", "caFile": "/ca.crt"},
		"alibabacloud": {"region": "cn-hangzhou", "endpoint": "https://127.0.0.1:3", "caFile": "/ca.crt"},
		"gce":          {"endpoint": "https://127.0.0.1:4", "caFile": "/ca.crt"},
	}
	for name, fields := range want {
		for k, v := range fields {
			if got["providers"][name][k] != v {
				t.Errorf("providers.%s.%s = %q, want %q\n%s", name, k, got["providers"][name][k], v, data)
			}
		}
	}
}

func TestCloudEnv(t *testing.T) {
	for kv, want := range map[string]bool{
		"AWS_PROFILE=prod":                  true,
		"AWS_ENDPOINT_URL_EC2=x":            true,
		"TENCENTCLOUD_SECRET_ID=x":          true,
		"TKE_ROLE_ARN=x":                    true,
		"AZURE_CLIENT_SECRET=x":             true,
		"AZURE_FEDERATED_TOKEN_FILE=x":      true,
		"IDENTITY_ENDPOINT=x":               true,
		"MSI_ENDPOINT=x":                    true,
		"ALIBABA_CLOUD_ACCESS_KEY_ID=x":     true,
		"ALICLOUD_ACCESS_KEY=x":             true,
		"GOOGLE_APPLICATION_CREDENTIALS=x":  true,
		"CLOUDSDK_CONFIG=x":                 true,
		"GCE_METADATA_HOST=x":               true,
		"HOME=/root":                        false,
		"KUBECONFIG=/x":                     false,
		"MY_AWS_THING=x":                    false,
		"TENCENTCLOUD=not-a-credential-var": false,
	} {
		if got := cloudEnv(kv); got != want {
			t.Errorf("cloudEnv(%q) = %v", kv, got)
		}
	}
}

func TestModulePathOf(t *testing.T) {
	if got := modulePathOf([]byte("// x\nmodule " + ModulePath + "\n\ngo 1.26\n")); got != ModulePath {
		t.Errorf("got %q", got)
	}
}

func TestPortRaceIsPerRun(t *testing.T) {
	dir := t.TempDir()
	run := func(script string) *Process {
		t.Helper()
		p, err := startProcess(dir, "same-name", "/bin/sh", []string{"-c", script}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		<-p.Done()
		return p
	}
	first := run("echo 'listen tcp 127.0.0.1:20000: bind: address already in use' >&2; exit 1")
	if !isPortRace(first) {
		t.Errorf("bind failure not recognised:\n%s", first.LogTail(10))
	}
	second := run("echo 'some other failure' >&2; exit 1")
	if isPortRace(second) {
		t.Errorf("the previous run's bind failure was counted against this one:\n%s", second.LogTail(10))
	}
	if strings.Contains(second.LogTail(10), "address already in use") {
		t.Error("LogTail shows the previous run")
	}
	all, err := os.ReadFile(second.LogPath())
	if err != nil || !strings.Contains(string(all), "address already in use") {
		t.Errorf("restarts must append to the log file: %v\n%s", err, all)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Minute: "1m", 5 * time.Second: "5s", 10 * time.Second: "10s", 90 * time.Second: "1m30s", time.Hour: "1h0m"} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
