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
	fakeCloudBin := flag.String("fake-cloud-binary", filepath.Join(root, "bin", "fake-cloud"), "the fake EC2 and CVM endpoints")
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

	d, err := c.StartDemo(ctx, cluster.DemoOptions{
		ServerBinary:    *serverBin,
		FakeCloudBinary: *fakeCloudBin,
		PluginDir:       filepath.Dir(*serverBin),
	})
	if err != nil {
		return err
	}
	p := d.Product
	printHowTo(c, d, time.Since(begin))

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

// printHowTo prints the environment and the Try list: the same steps
// the end-to-end suite runs in order (TestDemoTryList).
func printHowTo(c *cluster.Cluster, d *cluster.Demo, took time.Duration) {
	p := d.Product
	var s strings.Builder
	fmt.Fprintf(&s, "\nk8s-cloud-node-manager demo is up (%s).\n\n", took.Round(100*time.Millisecond))
	for _, kv := range d.Env {
		k, v, _ := strings.Cut(kv, "=")
		if k == "PATH" {
			// Only what the demo adds: kubectl and the plugin.
			v = strings.TrimSuffix(v, os.Getenv("PATH")) + "$PATH"
		}
		fmt.Fprintf(&s, "  export %s=%s\n", k, v)
	}
	fmt.Fprintf(&s, "\nThe fake cloud plays the kubelets: a rebooted machine's node goes NotReady and is Ready\n"+
		"again with a new boot ID after %s. After an accepted restart a node stays locked for\n"+
		"--action-cooldown (%s here, 5m by default): a second restart meets 409 until then.\n"+
		"%s may restart %s only (kubeconfig %s).\n",
		cluster.DemoKubeletDelay, cluster.ShortDuration(cluster.DemoCooldown), cluster.DemoUser, cluster.DemoNodeDev, d.UserKubeconfig)
	fmt.Fprintf(&s, "The server runs with a small safety policy (%s): budget %s lets one node of\n"+
		"pool=ingest per zone be under an action at once; kubectl get budgets.%s shows its use.\n",
		d.PolicyFile, cluster.DemoBudget, cluster.Group)
	fmt.Fprintf(&s, "\nTry, in order:\n")
	for _, st := range d.Steps {
		fmt.Fprintf(&s, "\n  # %s\n  %s\n", st.Comment, st.Command)
	}
	fmt.Fprintf(&s, "\nLogs: %s (server: %s, fake cloud and kubelets: %s)\n", c.LogDir(), filepath.Base(p.Server.LogPath()), filepath.Base(p.FakeCloud.LogPath()))
	fmt.Fprintf(&s, "Fake cloud: ec2=%s cvm=%s ecs=%s gce=%s azure=%s; cloud config %s\n", p.EC2URL, p.CVMURL, p.ECSURL, p.GCEURL, p.AzureURL, p.CloudConfig)
	fmt.Fprintf(&s, "Press Ctrl-C to stop.\n")
	fmt.Print(s.String())
}
