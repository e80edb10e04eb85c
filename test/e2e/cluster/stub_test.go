package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// envStub, when set, makes the test binary act as a stand-in for
// bin/fake-cloud or bin/k8s-cloud-node-manager (told apart by their flags),
// so StartProduct's wiring (flags, files, certificates, environment,
// APIService) is exercised before the real binaries exist. A compiled test
// binary (go test -c) can stand in for both in hack/local-up the same way.
const envStub = "CLUSTER_TEST_STUB"

func TestMain(m *testing.M) {
	if os.Getenv(envStub) != "" {
		if slices.Contains(os.Args[1:], "--ec2-listen") {
			exitOn(runFakeCloudStub(os.Args[1:]))
		}
		exitOn(runServerStub(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "stub:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runFakeCloudStub(args []string) error {
	fs := flag.NewFlagSet("fake-cloud", flag.ContinueOnError)
	ec2Listen := fs.String("ec2-listen", "", "")
	cvmListen := fs.String("cvm-listen", "", "")
	ecsListen := fs.String("ecs-listen", "", "")
	gceListen := fs.String("gce-listen", "", "")
	gceKeyFile := fs.String("gce-key-file", "", "")
	certFile := fs.String("tls-cert-file", "", "")
	keyFile := fs.String("tls-private-key-file", "", "")
	instancesFile := fs.String("instances", "", "")
	azureListen := fs.String("azure-listen", "", "")
	for _, name := range []string{"azure-tenant-id", "azure-client-id", "azure-client-secret"} {
		fs.String(name, "", "")
	}
	// The harness hands the fake the credentials the server signs with.
	secrets := map[string]*string{}
	for _, name := range []string{"aws-access-key-id", "aws-secret-access-key", "tencent-secret-id", "tencent-secret-key",
		"alibaba-access-key-id", "alibaba-access-key-secret"} {
		secrets[name] = fs.String(name, "", "")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	for name, v := range secrets {
		if *v == "" {
			return fmt.Errorf("--%s not given", name)
		}
	}
	data, err := os.ReadFile(*instancesFile)
	if err != nil {
		return err
	}
	var inst struct {
		Instances []FakeInstance `json:"instances"`
	}
	if err := yaml.UnmarshalStrict(data, &inst); err != nil {
		return err
	}
	if len(inst.Instances) == 0 {
		return errors.New("no instances")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	var urls []string
	addrs := []string{*ec2Listen, *cvmListen, *ecsListen, *gceListen}
	if *azureListen != "" {
		addrs = append(addrs, *azureListen)
	}
	for _, addr := range addrs {
		l, err := tls.Listen("tcp", addr, cfg)
		if err != nil {
			return err
		}
		urls = append(urls, "https://"+l.Addr().String())
		go func() {
			_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintln(w, "fake")
			}))
		}()
	}
	// The real fake writes the key file before its line; so does this.
	if *gceKeyFile == "" {
		return errors.New("--gce-key-file not given")
	}
	if err := os.WriteFile(*gceKeyFile, []byte(`{"type":"service_account","token_uri":"`+urls[3]+`/token"}`), 0o600); err != nil {
		return err
	}
	if len(urls) == 5 {
		fmt.Printf("ec2=%s cvm=%s ecs=%s gce=%s azure=%s\n", urls[0], urls[1], urls[2], urls[3], urls[4])
	} else {
		fmt.Printf("ec2=%s cvm=%s ecs=%s gce=%s\n", urls[0], urls[1], urls[2], urls[3])
	}
	select {}
}

func runServerStub(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	port := fs.Int("secure-port", 0, "")
	bind := fs.String("bind-address", "", "")
	certFile := fs.String("tls-cert-file", "", "")
	keyFile := fs.String("tls-private-key-file", "", "")
	for _, name := range []string{"kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig", "lock-namespace"} {
		fs.String(name, "", "")
	}
	cloudConfig := fs.String("cloud-config", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_PROFILE=") || strings.HasPrefix(kv, "AWS_SESSION_TOKEN=") || kv == "AZURE_CLIENT_SECRET=real-secret" {
			return fmt.Errorf("the caller's %s leaked into the server", strings.SplitN(kv, "=", 2)[0])
		}
	}
	if os.Getenv("AWS_EC2_METADATA_DISABLED") != "true" || os.Getenv("TENCENTCLOUD_SECRET_ID") == "" || os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID") == "" ||
		os.Getenv("AZURE_CLIENT_SECRET") == "" || !strings.HasPrefix(os.Getenv("AZURE_AUTHORITY_HOST"), "https://127.0.0.1:") {
		return errors.New("fake credentials missing")
	}
	// ADC must find the key file the fake wrote, and nothing of the caller's.
	if key, err := os.ReadFile(os.Getenv("GOOGLE_APPLICATION_CREDENTIALS")); err != nil || !strings.Contains(string(key), "service_account") {
		return fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS does not name the fake's key file: %v", err)
	}
	// The cloud config must lead to the fake cloud, trusting its CA.
	data, err := os.ReadFile(*cloudConfig)
	if err != nil {
		return err
	}
	var cc struct {
		Providers map[string]cloudProviderConfig `json:"providers"`
	}
	if err := yaml.UnmarshalStrict(data, &cc); err != nil {
		return err
	}
	names := []string{"azure"}
	for _, name := range fakeEndpoints {
		names = append(names, name)
	}
	for _, name := range names {
		pc, ok := cc.Providers[name]
		if !ok {
			return fmt.Errorf("no %s provider", name)
		}
		if err := getWithCA(pc.Endpoint, pc.CAFile); err != nil {
			return fmt.Errorf("%s endpoint: %w", name, err)
		}
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/apis/"+Group+"/"+Version, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"%s/%s","resources":[`+
			`{"name":"nodes","singularName":"node","namespaced":false,"kind":"Node","verbs":["get","list"]}]}`, Group, Version)
	})
	srv := &http.Server{
		Addr:      net.JoinHostPort(*bind, fmt.Sprint(*port)),
		Handler:   mux,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
	}
	return srv.ListenAndServeTLS("", "")
}

func getWithCA(url, caFile string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return errors.New("no certificate in " + caFile)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
