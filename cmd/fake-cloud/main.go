// Command fake-cloud serves the wire-level EC2, CVM, ECS, Compute Engine
// and Azure (Entra ID token endpoint and ARM, on one listener:
// --azure-listen, printed as azure=URL) fakes of pkg/cloud/fakecloud over
// TLS, for the local demo and end-to-end tests.
//
//	fake-cloud --ec2-listen 127.0.0.1:0 --cvm-listen 127.0.0.1:0 --ecs-listen 127.0.0.1:0 \
//	  --gce-listen 127.0.0.1:0 --gce-key-file sa.json \
//	  --tls-cert-file tls.crt --tls-private-key-file tls.key --instances instances.yaml
//
// The first line on stdout is "ec2=https://HOST:PORT cvm=https://HOST:PORT
// ecs=https://HOST:PORT gce=https://HOST:PORT" (the endpoints served),
// written once all listen, so a harness can start it on port 0 and read
// the ports. With --gce-listen, the --gce-key-file is written before that
// line: a fresh service-account key whose token_uri is the fake's token
// endpoint, the only key the fake trusts, for
// GOOGLE_APPLICATION_CREDENTIALS. Every API call is logged on stderr in
// one line.
//
// With --kubeconfig it also plays the kubelets of its machines (package
// fakecloud/kubelet): when it reboots, stops or starts an instance, the
// Node whose providerID names it goes NotReady and, once booted
// (--kubelet-delay), comes back Ready with a new boot ID.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/gce"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fake-cloud:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(1)
	}
}

type options struct {
	ec2Listen, cvmListen  string
	ecsListen             string
	gceListen, gceKeyFile string
	azureListen           string
	azureTenant           string
	azureClient           string
	azureSecret           string
	certFile, keyFile     string
	instancesFile         string
	awsKeyID, awsSecret   string
	tencentID, tencentKey string
	aliKeyID, aliSecret   string
	kubeconfig            string
	kubeletDelay          time.Duration
}

// instancesFile is the --instances YAML.
type instancesFile struct {
	Instances []fakecloud.Instance `json:"instances"`
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fake-cloud", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.ec2Listen, "ec2-listen", "", "address of the fake EC2 endpoint, e.g. 127.0.0.1:0 (empty: not served)")
	fs.StringVar(&o.cvmListen, "cvm-listen", "", "address of the fake CVM endpoint, e.g. 127.0.0.1:0 (empty: not served)")
	fs.StringVar(&o.ecsListen, "ecs-listen", "", "address of the fake Alibaba Cloud ECS endpoint, e.g. 127.0.0.1:0 (empty: not served)")
	fs.StringVar(&o.gceListen, "gce-listen", "", "address of the fake Compute Engine endpoint and its OAuth2 token endpoint, e.g. 127.0.0.1:0 (empty: not served)")
	fs.StringVar(&o.gceKeyFile, "gce-key-file", "", "with --gce-listen: write a new service-account key file here whose token_uri is the fake's; the fake trusts only that key")
	fs.StringVar(&o.certFile, "tls-cert-file", "", "PEM certificate served by both endpoints (required)")
	fs.StringVar(&o.keyFile, "tls-private-key-file", "", "PEM private key of --tls-cert-file (required)")
	fs.StringVar(&o.instancesFile, "instances", "", "YAML file: instances: [{provider, region, id, state}] (required)")
	fs.StringVar(&o.awsKeyID, "aws-access-key-id", "", "with --aws-secret-access-key: verify the full SigV4 signature of this key and refuse others")
	fs.StringVar(&o.awsSecret, "aws-secret-access-key", "", "the secret of --aws-access-key-id")
	fs.StringVar(&o.tencentID, "tencent-secret-id", "", "with --tencent-secret-key: verify the full TC3 signature of this SecretId and refuse others")
	fs.StringVar(&o.tencentKey, "tencent-secret-key", "", "the key of --tencent-secret-id")
	fs.StringVar(&o.aliKeyID, "alibaba-access-key-id", "", "with --alibaba-access-key-secret: verify the full ACS3 signature of this AccessKey and refuse others")
	fs.StringVar(&o.aliSecret, "alibaba-access-key-secret", "", "the secret of --alibaba-access-key-id")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "play the kubelets of the instances in this cluster: the Node behind a rebooted, stopped or started instance (matched by spec.providerID) follows, through the status subresource (empty: Nodes are left alone)")
	fs.DurationVar(&o.kubeletDelay, "kubelet-delay", 5*time.Second, "with --kubeconfig: how long an instance takes from the call until its Node is Ready again with a new boot ID")
	fs.StringVar(&o.azureListen, "azure-listen", "", "address of the fake Azure endpoint (Entra ID token endpoint and ARM on one listener; empty: not served)")
	fs.StringVar(&o.azureTenant, "azure-tenant-id", "", "the one tenant the fake Entra ID knows")
	fs.StringVar(&o.azureClient, "azure-client-id", "", "the one client ID the fake Entra ID knows")
	fs.StringVar(&o.azureSecret, "azure-client-secret", "", "its client secret")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.ec2Listen == "" && o.cvmListen == "" && o.ecsListen == "" && o.gceListen == "" && o.azureListen == "":
		return o, errors.New("--ec2-listen, --cvm-listen, --ecs-listen, --gce-listen or --azure-listen is required")
	case o.azureListen != "" && (o.azureTenant == "" || o.azureClient == "" || o.azureSecret == ""):
		return o, errors.New("--azure-listen needs --azure-tenant-id, --azure-client-id and --azure-client-secret: the fake issues tokens to that one client only")
	case (o.gceListen == "") != (o.gceKeyFile == ""):
		return o, errors.New("--gce-listen and --gce-key-file go together")
	case o.certFile == "" || o.keyFile == "":
		return o, errors.New("--tls-cert-file and --tls-private-key-file are required: the fakes only speak TLS, like the clouds")
	case o.instancesFile == "":
		return o, errors.New("--instances is required")
	case (o.awsKeyID == "") != (o.awsSecret == ""):
		return o, errors.New("--aws-access-key-id and --aws-secret-access-key go together")
	case (o.tencentID == "") != (o.tencentKey == ""):
		return o, errors.New("--tencent-secret-id and --tencent-secret-key go together")
	case (o.aliKeyID == "") != (o.aliSecret == ""):
		return o, errors.New("--alibaba-access-key-id and --alibaba-access-key-secret go together")
	case o.kubeletDelay < 0:
		return o, fmt.Errorf("--kubelet-delay must not be negative, got %s", o.kubeletDelay)
	}
	return o, nil
}

// loadInstances reads the instances file, by provider.
func loadInstances(path string) (map[string][]fakecloud.Instance, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f instancesFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string][]fakecloud.Instance{}
	seen := map[string]bool{}
	for i, in := range f.Instances {
		if in.ID == "" || (in.Region == "" && in.Provider != gce.Name) {
			return nil, fmt.Errorf("%s: instance %d needs an id and a region", path, i)
		}
		if seen[in.ID] {
			return nil, fmt.Errorf("%s: instance %s listed twice", path, in.ID)
		}
		seen[in.ID] = true
		// Check IDs with the server's own parser, so that the demo cannot
		// list an instance the server would refuse to resolve.
		var pid string
		switch in.Provider {
		case cloud.ProviderAWS:
			pid = "aws:////" + in.ID
		case cloud.ProviderTencentCloud:
			pid = "tencentcloud:////" + in.ID
		case fakecloud.ProviderAzure:
			// An ARM resource ID is an Azure providerID after "azure://".
			pid = "azure://" + in.ID
		case fakecloud.ProviderAlibabaCloud:
			pid = "alicloud://" + in.Region + "." + in.ID
		case gce.Name:
			// A GCE instance is placed by project and zone.
			pid = "gce://" + in.Project + "/" + in.Zone + "/" + in.ID
		default:
			return nil, fmt.Errorf("%s: instance %s: provider %q is not aws, tencentcloud, %s, gce or azure", path, in.ID, in.Provider, fakecloud.ProviderAlibabaCloud)
		}
		inst, err := providers.Resolve(pid, nil, func(string) string { return in.Region })
		if err != nil {
			return nil, fmt.Errorf("%s: instance %s: %w", path, in.ID, err)
		}
		if in.Region != "" && in.Region != inst.Region {
			return nil, fmt.Errorf("%s: instance %s: region %s is not zone %s's (%s)", path, in.ID, in.Region, in.Zone, inst.Region)
		}
		out[in.Provider] = append(out[in.Provider], in)
	}
	return out, nil
}

// The service account of the --gce-key-file: the fake makes its key, so
// nothing about it is secret.
const (
	gceServiceAccount = "k8s-cloud-node-manager@fake-project.iam.gserviceaccount.com"
	gceKeyProject     = "fake-project"
)

func secrets(id, secret string) map[string]string {
	if id == "" {
		return nil
	}
	return map[string]string{id: secret}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
	if err != nil {
		return err
	}
	instances, err := loadInstances(o.instancesFile)
	if err != nil {
		return err
	}
	logger := log.New(stderr, "", log.LstdFlags|log.Lmicroseconds)
	logCall := func(c fakecloud.Call) {
		outcome := "ok"
		if c.Error != "" {
			outcome = c.Error
		}
		extra := ""
		if c.StopType != "" {
			extra += " stopType=" + c.StopType
		}
		if c.ForceStop {
			extra += " forceStop=true"
		}
		if c.StoppedMode != "" {
			extra += " stoppedMode=" + c.StoppedMode
		}
		if c.DryRun {
			extra += " dryRun=true"
		}
		if c.Project != "" {
			extra += " project=" + c.Project + " zone=" + c.Zone
		}
		if c.ClientRequestID != "" {
			extra += " requestId=" + c.ClientRequestID
		}
		if c.Replay {
			extra += " replay=true"
		}
		if c.NoGracefulShutdown {
			extra += " noGracefulShutdown=true"
		}
		if len(c.Permissions) > 0 {
			extra += " permissions=" + strings.Join(c.Permissions, ",")
		}
		logger.Printf("%s %s region=%s instances=%s%s key=%s request=%s -> %s",
			c.Provider, c.Action, c.Region, strings.Join(c.InstanceIDs, ","), extra, c.AccessKeyID, c.RequestID, outcome)
	}
	onCall := logCall
	if o.kubeconfig != "" {
		sim, err := newKubelets(o.kubeconfig, o.kubeletDelay, logger.Printf)
		if err != nil {
			return err
		}
		defer sim.Close()
		onCall = fakecloud.ObserveMachines(logCall, sim.Observe)
	}

	type endpoint struct {
		name string
		addr string
		h    http.Handler
		// listening, if set, runs once the endpoint's URL is known.
		listening func(url string) error
	}
	var eps []endpoint
	if o.ec2Listen != "" {
		eps = append(eps, endpoint{name: "ec2", addr: o.ec2Listen, h: fakecloud.NewEC2(fakecloud.Options{
			Instances: instances[cloud.ProviderAWS], Secrets: secrets(o.awsKeyID, o.awsSecret), OnCall: onCall,
		})})
	}
	if o.cvmListen != "" {
		eps = append(eps, endpoint{name: "cvm", addr: o.cvmListen, h: fakecloud.NewCVM(fakecloud.Options{
			Instances: instances[cloud.ProviderTencentCloud], Secrets: secrets(o.tencentID, o.tencentKey), OnCall: onCall,
		})})
	}
	if o.ecsListen != "" {
		eps = append(eps, endpoint{name: "ecs", addr: o.ecsListen, h: fakecloud.NewECS(fakecloud.Options{
			Instances: instances[fakecloud.ProviderAlibabaCloud], Secrets: secrets(o.aliKeyID, o.aliSecret), OnCall: onCall,
		})})
	}
	if o.gceListen != "" {
		sa, err := fakecloud.NewServiceAccount(gceServiceAccount)
		if err != nil {
			return err
		}
		eps = append(eps, endpoint{
			name: "gce", addr: o.gceListen,
			h: fakecloud.NewGCE(fakecloud.Options{Instances: instances[gce.Name], OnCall: onCall}, sa),
			listening: func(url string) error {
				// The token_uri must be this listener's: only now is the
				// port known.
				return sa.WriteKeyFile(o.gceKeyFile, gceKeyProject, url+fakecloud.TokenPath)
			},
		})
	}
	if o.azureListen != "" {
		eps = append(eps, endpoint{name: "azure", addr: o.azureListen, h: fakecloud.NewAzure(fakecloud.AzureOptions{
			Instances: instances[fakecloud.ProviderAzure], TenantID: o.azureTenant, ClientID: o.azureClient, ClientSecret: o.azureSecret, OnCall: onCall,
		})})
	}

	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	var servers []*http.Server
	var urls []string
	errc := make(chan error, len(eps))
	for _, ep := range eps {
		ln, err := net.Listen("tcp", ep.addr)
		if err != nil {
			for _, s := range servers {
				_ = s.Close()
			}
			return fmt.Errorf("%s: %w", ep.name, err)
		}
		srv := &http.Server{
			Handler: ep.h,
			// Each server its own copy: ServeTLS writes its protocols into it.
			TLSConfig:         tlsCfg.Clone(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          logger,
		}
		servers = append(servers, srv)
		u := "https://" + ln.Addr().String()
		urls = append(urls, ep.name+"="+u)
		if ep.listening != nil {
			if err := ep.listening(u); err != nil {
				for _, s := range servers {
					_ = s.Close()
				}
				_ = ln.Close()
				return fmt.Errorf("%s: %w", ep.name, err)
			}
		}
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	}
	if _, err := fmt.Fprintln(stdout, strings.Join(urls, " ")); err != nil {
		return err
	}
	logger.Printf("serving %s (%d aws, %d tencentcloud, %d %s, %d gce and %d azure instances)", strings.Join(urls, " "),
		len(instances[cloud.ProviderAWS]), len(instances[cloud.ProviderTencentCloud]),
		len(instances[fakecloud.ProviderAlibabaCloud]), fakecloud.ProviderAlibabaCloud, len(instances[gce.Name]), len(instances[fakecloud.ProviderAzure]))

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Close, not Shutdown: a fake holding a delayed answer should not
	// hold up the harness that stops it.
	for _, s := range servers {
		_ = s.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
