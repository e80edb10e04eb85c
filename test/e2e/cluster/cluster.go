// Package cluster runs a throwaway Kubernetes control plane (etcd and
// kube-apiserver, no controller-manager, no kubelet) on loopback, plus the
// product's own binaries against it. The demo (hack/local-up) and the e2e
// suite both start through here, so what the demo shows is what is tested.
//
// The binaries come from hack/build-k8s-binaries.sh (see BinDir). Children
// run in their own process groups and are killed by Stop; the package is
// Unix-only.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure Start.
type Options struct {
	// WorkDir holds certificates, etcd data, logs and the kubeconfig. It is
	// created if missing; the harness's own entries in it are replaced, and
	// nothing else in it is touched. Two clusters cannot share it.
	WorkDir string
	// BinDir holds kube-apiserver, etcd and kubectl (see BinDir()).
	BinDir string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// Timings are how long the phases of Start took.
type Timings struct {
	PKI            time.Duration
	EtcdHealthy    time.Duration
	APIServerReady time.Duration
	Total          time.Duration
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	opts    Options
	logDir  string
	pki     *pki
	lock    *os.File
	timings Timings

	etcdURL       string
	apiserverPort int
	apiserverURL  string
	apiserverArgs []string
	kubeconfig    string

	mu        sync.Mutex
	etcd      *Process
	apiserver *Process
	procs     []*Process
	stopped   bool
}

// Names of the harness's entries in WorkDir; Start clears exactly these.
const (
	dirPKI          = "pki"
	dirEtcdData     = "etcd-data"
	dirLogs         = "logs"
	dirAPIServer    = "kube-apiserver"
	dirProduct      = "product"
	fileKubeconfig  = "kubeconfig"
	fileWorkDirLock = ".lock"
)

// Start generates credentials, starts etcd and kube-apiserver, and returns
// once kube-apiserver's /readyz answers ok. ctx bounds the start only; the
// processes run until Stop. On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	begin := time.Now()
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.WorkDir == "" {
		return nil, errors.New("cluster: Options.WorkDir is required")
	}
	if opts.BinDir == "" {
		return nil, errors.New("cluster: Options.BinDir is required")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if err := executable(filepath.Join(opts.BinDir, b)); err != nil {
			return nil, fmt.Errorf("cluster: %w (build it with hack/build-k8s-binaries.sh)", err)
		}
	}
	workDir, err := filepath.Abs(opts.WorkDir)
	if err != nil {
		return nil, err
	}
	opts.WorkDir = workDir
	if opts.BinDir, err = filepath.Abs(opts.BinDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(filepath.Join(workDir, fileWorkDirLock))
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:       opts,
		logDir:     filepath.Join(workDir, dirLogs),
		lock:       lock,
		kubeconfig: filepath.Join(workDir, fileKubeconfig),
	}
	started := false
	defer func() {
		if !started {
			c.Stop()
		}
	}()
	for _, name := range []string{dirPKI, dirEtcdData, dirLogs, dirAPIServer, dirProduct, fileKubeconfig} {
		if err := os.RemoveAll(filepath.Join(workDir, name)); err != nil {
			return nil, err
		}
	}

	phase := time.Now()
	if c.pki, err = newPKI(filepath.Join(workDir, dirPKI)); err != nil {
		return nil, fmt.Errorf("cluster: generating certificates: %w", err)
	}
	c.timings.PKI = time.Since(phase)

	phase = time.Now()
	if err := c.startEtcd(ctx); err != nil {
		return nil, err
	}
	c.timings.EtcdHealthy = time.Since(phase)
	opts.Logf("etcd healthy at %s after %s", c.etcdURL, c.timings.EtcdHealthy.Round(time.Millisecond))

	phase = time.Now()
	if err := c.startAPIServer(ctx); err != nil {
		return nil, err
	}
	c.timings.APIServerReady = time.Since(phase)
	opts.Logf("kube-apiserver ready at %s after %s", c.apiserverURL, c.timings.APIServerReady.Round(time.Millisecond))

	if err := c.writeKubeconfig(); err != nil {
		return nil, err
	}
	c.timings.Total = time.Since(begin)
	started = true
	return c, nil
}

func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("cluster: %s is in use by another running cluster (stop it, or pick another work dir): %w", filepath.Dir(path), err)
	}
	return f, nil
}

// Timings are the durations of Start's phases.
func (c *Cluster) Timings() Timings { return c.timings }

// WorkDir is the absolute work directory.
func (c *Cluster) WorkDir() string { return c.opts.WorkDir }

// BinDir is the folder of kube-apiserver, etcd and kubectl.
func (c *Cluster) BinDir() string { return c.opts.BinDir }

// LogDir holds one log file per process name.
func (c *Cluster) LogDir() string { return c.logDir }

// Kubeconfig is the path of a kubeconfig for a system:masters user, with
// its credentials inline.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// APIServerURL is kube-apiserver's https URL on 127.0.0.1.
func (c *Cluster) APIServerURL() string { return c.apiserverURL }

// EtcdURL is etcd's plain-http client URL.
func (c *Cluster) EtcdURL() string { return c.etcdURL }

// APIServer is the running kube-apiserver; RestartAPIServer replaces it.
func (c *Cluster) APIServer() *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apiserver
}

// Etcd is the running etcd.
func (c *Cluster) Etcd() *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.etcd
}

// RESTConfig returns a new client-go config for the admin user.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host: c.apiserverURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.pki.clusterCA.certPEM,
			CertData: c.pki.admin.certPEM,
			KeyData:  c.pki.admin.keyPEM,
		},
		QPS:   50,
		Burst: 100,
	}
}

// NewServingCert issues a serving certificate from the extension CA, a CA
// of its own so that trusting it in an APIService's caBundle trusts
// nothing else of the cluster.
func (c *Cluster) NewServingCert(dnsNames []string, ips []net.IP) (certPEM, keyPEM, caPEM []byte, err error) {
	cn := "127.0.0.1"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	kp, err := c.pki.extensionCA.serving(cn, dnsNames, ips)
	if err != nil {
		return nil, nil, nil, err
	}
	return kp.certPEM, kp.keyPEM, c.pki.extensionCA.certPEM, nil
}

// StartProcess starts a binary under the harness: stdout and stderr go to
// LogDir()/<name>.log, env is added to the harness's own environment, and
// Stop ends it.
func (c *Cluster) StartProcess(name, path string, args, env []string) (*Process, error) {
	return c.track(nil, func() (*Process, error) {
		return startProcess(c.logDir, name, path, args, env, nil)
	})
}

// track starts a process unless the cluster is stopping, so that Stop
// racing with a (re)start cannot miss the new process. The process goes
// to *slot, or to the list of extra processes when slot is nil.
func (c *Cluster) track(slot **Process, start func() (*Process, error)) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("cluster: stopped")
	}
	p, err := start()
	if err != nil {
		return nil, err
	}
	if slot != nil {
		*slot = p
	} else {
		c.procs = append(c.procs, p)
	}
	return p, nil
}

// Stop ends every process the cluster started, newest first, and releases
// the work directory. It is idempotent.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	procs := append([]*Process(nil), c.procs...)
	apiserver, etcd := c.apiserver, c.etcd
	c.mu.Unlock()

	for i := len(procs) - 1; i >= 0; i-- {
		c.stopLogged(procs[i])
	}
	c.stopLogged(apiserver)
	c.stopLogged(etcd)
	if c.lock != nil {
		_ = c.lock.Close()
	}
}

func (c *Cluster) stopLogged(p *Process) {
	if p == nil {
		return
	}
	if err := p.Stop(); err != nil {
		c.opts.Logf("stopping %s: %v", p.Name(), err)
	}
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	bin := filepath.Join(c.opts.BinDir, "etcd")
	for range attempts {
		ports, err := freePorts(3)
		if err != nil {
			return err
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		args := []string{
			"--name=test",
			"--data-dir=" + filepath.Join(c.opts.WorkDir, dirEtcdData),
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=test=" + peer,
			"--initial-cluster-state=new",
			fmt.Sprintf("--listen-metrics-urls=http://127.0.0.1:%d", ports[2]),
			// Throwaway data: durability buys nothing and costs seconds.
			"--unsafe-no-fsync",
		}
		// etcd turns every ETCD_* variable into a flag, so one in the
		// caller's environment could silently change this cluster.
		p, err := c.track(&c.etcd, func() (*Process, error) {
			return startProcess(c.logDir, "etcd", bin, args, nil, func(kv string) bool {
				return strings.HasPrefix(kv, "ETCD_")
			})
		})
		if err != nil {
			return err
		}
		err = waitFor(ctx, time.Minute, p, func(ctx context.Context) error { return etcdHealthy(ctx, client) })
		if err == nil {
			c.etcdURL = client
			return nil
		}
		_ = p.Stop()
		if !isPortRace(p) {
			return fmt.Errorf("cluster: etcd did not become healthy: %w", err)
		}
		c.opts.Logf("etcd lost a port race; retrying with other ports")
		if err := os.RemoveAll(filepath.Join(c.opts.WorkDir, dirEtcdData)); err != nil {
			return err
		}
	}
	return errPortRace("etcd")
}

func isPortRace(p *Process) bool {
	select {
	case <-p.Done():
	case <-time.After(stopGrace):
	}
	return bindFailed(p.LogTail(50))
}

func etcdHealthy(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("/health: %s: %w", resp.Status, err)
	}
	if body.Health != "true" {
		return fmt.Errorf("/health: %s %q", resp.Status, body.Reason)
	}
	return nil
}

func (c *Cluster) apiserverFlags(port int) []string {
	p := c.pki.path
	return []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(c.opts.WorkDir, dirAPIServer),
		"--tls-cert-file=" + p(fileAPIServerCert),
		"--tls-private-key-file=" + p(fileAPIServerKey),
		"--client-ca-file=" + p(fileClusterCA),
		"--service-account-key-file=" + p(fileServiceAccountPK),
		"--service-account-signing-key-file=" + p(fileServiceAccountSK),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=Node,RBAC",
		// From 1.37 the lease reconciler refuses a loopback advertise
		// address; with no kubelet nothing needs the endpoints anyway.
		"--endpoint-reconciler-type=none",
		"--requestheader-client-ca-file=" + p(fileFrontProxyCA),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p(fileFrontProxyCert),
		"--proxy-client-key-file=" + p(fileFrontProxyKey),
		"--profiling=false",
	}
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	for range attempts {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.apiserverPort = port
		c.apiserverURL = fmt.Sprintf("https://127.0.0.1:%d", port)
		c.apiserverArgs = c.apiserverFlags(port)
		err = c.launchAPIServer(ctx)
		if err == nil {
			return nil
		}
		if !isPortRace(c.APIServer()) {
			return err
		}
		c.opts.Logf("kube-apiserver lost a port race; retrying with another port")
	}
	return errPortRace("kube-apiserver")
}

func (c *Cluster) launchAPIServer(ctx context.Context) error {
	p, err := c.track(&c.apiserver, func() (*Process, error) {
		return startProcess(c.logDir, "kube-apiserver", filepath.Join(c.opts.BinDir, "kube-apiserver"), c.apiserverArgs, nil, nil)
	})
	if err != nil {
		return err
	}
	client := c.adminHTTPClient()
	err = waitFor(ctx, 2*time.Minute, p, func(ctx context.Context) error { return c.readyz(ctx, client) })
	if err != nil {
		_ = p.Stop()
		return fmt.Errorf("cluster: kube-apiserver did not become ready: %w", err)
	}
	return nil
}

// RestartAPIServer stops kube-apiserver and starts it again with the same
// flags and port, and waits for /readyz. Clients and APIServices survive:
// etcd keeps the state.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return errors.New("cluster: stopped")
	}
	old := c.apiserver
	c.mu.Unlock()
	if err := old.Stop(); err != nil {
		return err
	}
	return c.launchAPIServer(ctx)
}

func (c *Cluster) adminHTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(c.pki.clusterCA.cert)
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				RootCAs: pool,
				Certificates: []tls.Certificate{{
					Certificate: [][]byte{c.pki.admin.cert.Raw},
					PrivateKey:  c.pki.admin.key,
				}},
				MinVersion: tls.VersionTLS12,
			},
		},
	}
}

func (c *Cluster) readyz(ctx context.Context, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.apiserverURL+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// Readyz asks kube-apiserver's /readyz once.
func (c *Cluster) Readyz(ctx context.Context) error {
	return c.readyz(ctx, c.adminHTTPClient())
}

func (c *Cluster) writeKubeconfig() error {
	const name = "k8s-cloud-node-manager-test"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   c.apiserverURL,
		CertificateAuthorityData: c.pki.clusterCA.certPEM,
	}
	cfg.AuthInfos[name+"-admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.pki.admin.certPEM,
		ClientKeyData:         c.pki.admin.keyPEM,
	}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name + "-admin"}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, c.kubeconfig)
}

// KubectlPath is the kubectl built with the cluster's binaries, else the
// one on PATH, else "".
func (c *Cluster) KubectlPath() string {
	own := filepath.Join(c.opts.BinDir, "kubectl")
	if executable(own) == nil {
		return own
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p
	}
	return ""
}

// Kubectl runs kubectl with the admin kubeconfig and returns its combined
// output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	path := c.KubectlPath()
	if path == "" {
		return nil, errors.New("cluster: no kubectl (build it with hack/build-k8s-binaries.sh)")
	}
	cmd := exec.CommandContext(ctx, path, append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// waitFor polls check until it succeeds, p exits, timeout passes or ctx
// ends; failures carry the last check error and the tail of p's log.
func waitFor(ctx context.Context, timeout time.Duration, p *Process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(callCtx)
		callCancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%v); last check: %v%s", p.Name(), p.Err(), last, p.logTailSuffix())
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last check: %v%s", p.Name(), context.Cause(ctx), last, p.logTailSuffix())
		case <-tick.C:
		}
	}
}
