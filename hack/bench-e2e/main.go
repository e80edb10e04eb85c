// Command bench-e2e (make bench-e2e) measures the product behind a real
// kube-apiserver, started by the e2e harness, and prints figures side by
// side in one run:
//
//  1. core node GET, the view's node GET and a restart dry run through the
//     aggregator, interleaved in rounds so machine drift hits each alike:
//     p50, p99, throughput and the ratios to the core GET;
//  2. with -nodes Nodes: core list vs view list (JSON and Table), the time a
//     client-go informer takes to sync on each, and the server's RSS per
//     node above its baseline.
//
// It prints figures; it asserts nothing.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-e2e:", err)
		os.Exit(1)
	}
}

var (
	rounds      = flag.Int("rounds", 5, "rounds of the request benchmark")
	roundTime   = flag.Duration("round-time", 2*time.Second, "time per kind of request per round")
	concurrency = flag.Int("concurrency", 8, "concurrent clients")
	nodeCount   = flag.Int("nodes", 5000, "Nodes for the list, informer and memory figures")
	listRounds  = flag.Int("list-rounds", 7, "rounds of the list and informer benchmark")
	cpuProfile  = flag.String("server-cpuprofile", "", "write the server's CPU profile during the restart dry-run rounds to this file")
)

func run() error {
	flag.Parse()
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	ctx := context.Background()
	begin := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[bench +%5.1fs] %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}
	bins, err := cluster.BinDir(ctx, root, logf)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "k8s-cloud-node-manager-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	c, err := cluster.Start(ctx, cluster.Options{WorkDir: work, BinDir: bins, Logf: logf})
	if err != nil {
		return err
	}
	defer c.Stop()
	p, err := c.StartProduct(ctx, cluster.ProductOptions{
		ServerBinary:    filepath.Join(root, "bin", "k8s-cloud-node-manager"),
		FakeCloudBinary: filepath.Join(root, "bin", "fake-cloud"),
	})
	if err != nil {
		return err
	}
	// The cloud's own rate limit (5/s by default) would measure the cloud
	// config, not the server: lift it.
	if err := liftCloudRateLimit(p.CloudConfig); err != nil {
		return err
	}
	if _, err := p.RestartServer(ctx); err != nil {
		return err
	}

	cfg := c.RESTConfig()
	cfg.QPS = -1
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	base := c.APIServerURL()
	node := cluster.DemoNodeEKS
	kinds := []kind{
		{name: "core node GET", method: http.MethodGet, url: base + "/api/v1/nodes/" + node, code: 200},
		{name: "view node GET", method: http.MethodGet, url: base + "/apis/infraops.michael.io/v1/nodes/" + node, code: 200},
		{name: "restart dry-run", method: http.MethodPost, url: base + "/apis/infraops.michael.io/v1/nodes/" + node + "/restart", body: `{"dryRun":["All"],"reason":"bench"}`, code: 202},
	}
	logf("requests: %d rounds x %s per kind, %d concurrent clients", *rounds, *roundTime, *concurrency)
	results := make([]result, len(kinds))
	if *cpuProfile != "" {
		if err := profileServer(ctx, p, cfg, *cpuProfile, func() error {
			_, err := load(ctx, httpClient, kinds[2], *concurrency, 10*time.Second)
			return err
		}); err != nil {
			return err
		}
		logf("server CPU profile written to %s", *cpuProfile)
	}
	for r := 0; r < *rounds; r++ {
		for i := range kinds {
			k := (i + r) % len(kinds) // rotate the order: no kind always goes first
			res, err := load(ctx, httpClient, kinds[k], *concurrency, *roundTime)
			if err != nil {
				return err
			}
			results[k].add(res)
		}
	}
	pid := p.Server.Pid()
	baseRSS, err := rssKB(pid)
	if err != nil {
		return err
	}

	fmt.Printf("\nRequests through kube-apiserver, %d rounds x %s per kind, %d concurrent clients (%s)\n", *rounds, *roundTime, *concurrency, time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("%-18s %9s %9s %9s %12s %12s\n", "", "p50", "p99", "req/s", "p50 / core", "req/s / core")
	core := results[0]
	for i, k := range kinds {
		r := results[i]
		fmt.Printf("%-18s %9s %9s %9.0f %11.2fx %11.2fx\n", k.name, ms(r.pct(50)), ms(r.pct(99)), r.rate(),
			float64(r.pct(50))/float64(core.pct(50)), r.rate()/core.rate())
	}

	// The bulk phase.
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	logf("creating %d Nodes", *nodeCount)
	t0 := time.Now()
	if err := createNodes(ctx, kube, *nodeCount); err != nil {
		return err
	}
	logf("created in %s", time.Since(t0).Round(time.Millisecond))
	want := *nodeCount + len(cluster.DemoNodes())
	for {
		b, _, err := fetch(ctx, httpClient, base+"/apis/infraops.michael.io/v1/nodes", "application/json")
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		if err == nil && json.Unmarshal(b, &l) == nil && len(l.Items) >= want {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // let the server settle before reading its RSS
	bulkRSS, err := rssKB(pid)
	if err != nil {
		return err
	}

	const table = "application/json;as=Table;v=v1;g=meta.k8s.io"
	lists := []struct{ name, url, accept string }{
		{"core list JSON", base + "/api/v1/nodes", "application/json"},
		{"view list JSON", base + "/apis/infraops.michael.io/v1/nodes", "application/json"},
		{"core list Table", base + "/api/v1/nodes", table},
		{"view list Table", base + "/apis/infraops.michael.io/v1/nodes", table},
	}
	listTimes := make([][]time.Duration, len(lists))
	listBytes := make([]int, len(lists))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	informers := []struct {
		name string
		gvr  schema.GroupVersionResource
	}{
		{"core informer sync", schema.GroupVersionResource{Version: "v1", Resource: "nodes"}},
		{"view informer sync", schema.GroupVersionResource{Group: "infraops.michael.io", Version: "v1", Resource: "nodes"}},
	}
	syncTimes := make([][]time.Duration, len(informers))
	for r := 0; r < *listRounds; r++ {
		for i := range lists {
			l := lists[(i+r)%len(lists)]
			t := time.Now()
			body, _, err := fetch(ctx, httpClient, l.url, l.accept)
			if err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
			listTimes[(i+r)%len(lists)] = append(listTimes[(i+r)%len(lists)], time.Since(t))
			listBytes[(i+r)%len(lists)] = len(body)
		}
		for i := range informers {
			k := (i + r) % len(informers)
			d, err := informerSync(ctx, dyn, informers[k].gvr)
			if err != nil {
				return fmt.Errorf("%s: %w", informers[k].name, err)
			}
			syncTimes[k] = append(syncTimes[k], d)
		}
	}
	afterRSS, err := rssKB(pid)
	if err != nil {
		return err
	}

	fmt.Printf("\nWith %d Nodes (%d rounds, interleaved; median and min)\n", want, *listRounds)
	fmt.Printf("%-20s %9s %9s %11s %9s\n", "", "median", "min", "bytes", "vs core")
	for i, l := range lists {
		coreIdx := i &^ 1
		fmt.Printf("%-20s %9s %9s %11d %8.2fx\n", l.name, ms(median(listTimes[i])), ms(minOf(listTimes[i])), listBytes[i],
			float64(median(listTimes[i]))/float64(median(listTimes[coreIdx])))
	}
	for i, inf := range informers {
		fmt.Printf("%-20s %9s %9s %11s %8.2fx\n", inf.name, ms(median(syncTimes[i])), ms(minOf(syncTimes[i])), "",
			float64(median(syncTimes[i]))/float64(median(syncTimes[0])))
	}
	fmt.Printf("\nServer RSS: %d KB with %d nodes, %d KB with %d (+%.2f KB per node); %d KB after the list and informer rounds (+%.2f KB per node)\n",
		baseRSS, len(cluster.DemoNodes()), bulkRSS, want, float64(bulkRSS-baseRSS)/float64(*nodeCount),
		afterRSS, float64(afterRSS-baseRSS)/float64(*nodeCount))
	return nil
}

type kind struct {
	name, method, url, body string
	code                    int
}

type result struct {
	lat   []time.Duration
	count int
	took  time.Duration
}

func (r *result) add(o result) {
	r.lat = append(r.lat, o.lat...)
	r.count += o.count
	r.took += o.took
}

func (r *result) pct(p int) time.Duration {
	s := append([]time.Duration(nil), r.lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}

func (r *result) rate() float64 { return float64(r.count) / r.took.Seconds() }

// load runs n clients sending k for d and returns every latency.
func load(ctx context.Context, client *http.Client, k kind, n int, d time.Duration) (result, error) {
	var (
		mu       sync.Mutex
		res      result
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Go(func() {
			var lat []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				req, _ := http.NewRequestWithContext(ctx, k.method, k.url, strings.NewReader(k.body))
				req.Header.Set("Accept", "application/json")
				if k.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := client.Do(req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != k.code {
						err = fmt.Errorf("%s: %s %s", k.name, resp.Status, bytes.TrimSpace(b))
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.count, res.took = len(res.lat), time.Since(start)
	return res, firstErr
}

func fetch(ctx context.Context, client *http.Client, url, accept string) ([]byte, int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return b, resp.StatusCode, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, resp.StatusCode, err
}

// informerSync is how long a client-go dynamic informer with default
// settings takes from start to synced.
func informerSync(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	factory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	inf := factory.ForResource(gvr).Informer()
	t := time.Now()
	factory.Start(ctx.Done())
	synced := cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
	d := time.Since(t)
	cancel() // Shutdown waits for the informers to stop
	factory.Shutdown()
	if !synced {
		return 0, fmt.Errorf("never synced")
	}
	return d, nil
}

func createNodes(ctx context.Context, kube kubernetes.Interface, count int) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				n := &corev1.Node{
					ObjectMeta: metav1.ObjectMeta{
						Name: fmt.Sprintf("bench-ip-10-%d-%d.ec2.internal", i/256, i%256),
						Labels: map[string]string{
							"topology.kubernetes.io/region": "us-east-1", "topology.kubernetes.io/zone": "us-east-1a",
							"node.kubernetes.io/instance-type": "m5.large", "kubernetes.io/os": "linux", "bench": "bulk",
						},
					},
					Spec: corev1.NodeSpec{ProviderID: fmt.Sprintf("aws:///us-east-1a/i-0b%015x", i)},
				}
				if _, err := kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < count; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return firstErr
}

func liftCloudRateLimit(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]map[string]map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return err
	}
	for _, p := range cfg["providers"] {
		// Dry runs have a budget of their own; the benchmark measures the
		// server, not the limits, so both are lifted.
		p["rateLimit"] = map[string]any{"qps": 1000000, "burst": 1000000}
		p["dryRunRateLimit"] = map[string]any{"qps": 1000000, "burst": 1000000}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// profileServer runs work while it fetches the server's CPU profile from
// its /debug/pprof (as the admin user, whose certificate the server's
// delegated authentication trusts).
func profileServer(ctx context.Context, p *cluster.Product, cfg *rest.Config, path string, work func() error) error {
	cert, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.APIService.CABundle)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"}}}
	done := make(chan error, 1)
	go func() { done <- work() }()
	b, _, err := fetch(ctx, client, fmt.Sprintf("https://127.0.0.1:%d/debug/pprof/profile?seconds=8", p.ServerPort), "*/*")
	if werr := <-done; werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func minOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
