// Command local-up runs the demo behind `make demo`: a loopback
// kube-apiserver, the fake cloud and k8s-cloud-node-manager registered as
// an APIService, with a few Nodes to act on. It runs until Ctrl-C or
// SIGTERM, then stops everything it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "local-up:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	root, rootErr := cluster.RepoRoot()
	workDir := flag.String("workdir", envOr("WORKDIR", "/tmp/k8s-cloud-node-manager-demo"), "folder for certificates, data and logs ($WORKDIR)")
	binDir := flag.String("k8s-bin-dir", os.Getenv(cluster.EnvBinDir), "folder with kube-apiserver, etcd and kubectl; empty runs hack/build-k8s-binaries.sh ($K8S_BIN_DIR)")
	serverBin := flag.String("server-binary", filepath.Join(root, "bin", "k8s-cloud-node-manager"), "the extension server")
	fakeCloudBin := flag.String("fake-cloud-binary", filepath.Join(root, "bin", "fake-cloud"), "the fake EC2, CVM and ECS endpoints")
	flag.Parse()
	if rootErr != nil {
		return fmt.Errorf("%w (run from inside the checkout)", rootErr)
	}
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	begin := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[local-up +%5.1fs] %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}

	var bins string
	var err error
	if *binDir != "" {
		bins, err = cluster.NormalizeBinDir(*binDir)
	} else {
		bins, err = cluster.BuildBinaries(ctx, root, logf)
	}
	if err != nil {
		return err
	}

	c, err := cluster.Start(ctx, cluster.Options{WorkDir: *workDir, BinDir: bins, Logf: logf})
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping")
		c.Stop()
		logf("stopped; logs stay in %s", c.LogDir())
	}()

	p, err := c.StartProduct(ctx, cluster.ProductOptions{
		ServerBinary:    *serverBin,
		FakeCloudBinary: *fakeCloudBin,
	})
	if err != nil {
		return err
	}
	bodies, err := writeRequestBodies(c.WorkDir())
	if err != nil {
		return err
	}
	printHowTo(c, p, bodies, time.Since(begin))

	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr)
		return nil
	case <-p.Server.Done():
		return exited(p.Server)
	case <-p.FakeCloud.Done():
		return exited(p.FakeCloud)
	case <-c.APIServer().Done():
		return exited(c.APIServer())
	case <-c.Etcd().Done():
		return exited(c.Etcd())
	}
}

func exited(p *cluster.Process) error {
	return fmt.Errorf("%s exited unexpectedly (%v); last lines of %s:\n%s",
		p.Name(), p.Err(), p.LogPath(), p.LogTail(30))
}

type requestBodies struct{ dryRun, soft, hard string }

// writeRequestBodies saves RestartOptions bodies for `kubectl create
// --raw`, which reads a body only from a file.
func writeRequestBodies(dir string) (requestBodies, error) {
	b := requestBodies{
		dryRun: filepath.Join(dir, "restart-dry-run.json"),
		soft:   filepath.Join(dir, "restart-soft.json"),
		hard:   filepath.Join(dir, "restart-hard.json"),
	}
	const head = `{"apiVersion":"` + cluster.Group + `/` + cluster.Version + `","kind":"RestartOptions",`
	for path, body := range map[string]string{
		b.dryRun: head + `"dryRun":["All"],"reason":"demo: would it be allowed?"}`,
		b.soft:   head + `"mode":"soft","reason":"demo"}`,
		b.hard:   head + `"mode":"hard","reason":"demo"}`,
	} {
		if err := os.WriteFile(path, []byte(body+"\n"), 0o644); err != nil {
			return b, err
		}
	}
	return b, nil
}

func printHowTo(c *cluster.Cluster, p *cluster.Product, b requestBodies, took time.Duration) {
	gv := "/apis/" + cluster.Group + "/" + cluster.Version
	restart := func(node, body string) string {
		return fmt.Sprintf("kubectl create --raw %s/nodes/%s/restart -f %s", gv, node, body)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "\nk8s-cloud-node-manager demo is up (%s).\n\n", took.Round(100*time.Millisecond))
	fmt.Fprintf(&s, "  export KUBECONFIG=%s\n", c.Kubeconfig())
	pluginDir, _ := filepath.Abs("bin")
	if kubectl := c.KubectlPath(); filepath.Dir(kubectl) == c.BinDir() {
		fmt.Fprintf(&s, "  export PATH=%s:%s:$PATH   # the kubectl built with this cluster, and kubectl-restart\n", filepath.Dir(kubectl), pluginDir)
	} else {
		fmt.Fprintf(&s, "  export PATH=%s:$PATH   # kubectl-restart\n", pluginDir)
	}
	fmt.Fprintln(&s)
	fmt.Fprintf(&s, "Try:\n")
	for _, cmd := range []string{
		"kubectl get apiservice " + p.APIService.Name(),
		"kubectl get nodes -o wide",
		"kubectl get nodes." + cluster.Group,
		"kubectl get nodes." + cluster.Group + " " + cluster.DemoNodeEKS + " -o yaml",
		restart(cluster.DemoNodeEKS, b.dryRun) + "   # EC2, dry run",
		restart(cluster.DemoNodeEKS, b.soft) + "      # EC2 reboot",
		restart(cluster.DemoNodeTKE, b.hard) + "      # CVM, region from the gz label",
		restart(cluster.DemoNodeACK, b.dryRun) + "   # ECS, ECS's own dry run (ACK's providerID has no scheme)",
		restart(cluster.DemoNodeFargate, b.soft) + "  # Fargate: refused",
		restart(cluster.DemoNodeNoProvider, b.soft) + "  # no providerID: refused",
		"kubectl restart " + cluster.DemoNodeTKE + " --dry-run=server          # the kubectl plugin",
		"kubectl restart " + cluster.DemoNodeTKE + " --mode hard --reason demo -o yaml",
		"kubectl restart -l topology.kubernetes.io/region=us-east-1 --dry-run=server   # several nodes: asks first",
	} {
		fmt.Fprintf(&s, "  %s\n", cmd)
	}
	fmt.Fprintf(&s, "\nLogs: %s (server: %s, fake cloud: %s)\n", c.LogDir(), filepath.Base(p.Server.LogPath()), filepath.Base(p.FakeCloud.LogPath()))
	fmt.Fprintf(&s, "Fake cloud: ec2=%s cvm=%s ecs=%s; cloud config %s\n", p.EC2URL, p.CVMURL, p.ECSURL, p.CloudConfig)
	fmt.Fprintf(&s, "Press Ctrl-C to stop.\n")
	fmt.Print(s.String())
}
