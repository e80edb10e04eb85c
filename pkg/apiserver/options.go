package apiserver

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	cliflag "k8s.io/component-base/cli/flag"
	netutils "k8s.io/utils/net"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
	"github.com/michael/k8s-cloud-node-manager/pkg/policy"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// Options are the server's flags. Like metrics-server, it takes only the
// parts of RecommendedOptions an API server without etcd needs: serving,
// delegated authentication and authorization, audit and features.
type Options struct {
	SecureServing  *genericoptions.SecureServingOptionsWithLoopback
	Authentication *genericoptions.DelegatingAuthenticationOptions
	Authorization  *genericoptions.DelegatingAuthorizationOptions
	Audit          *genericoptions.AuditOptions
	Features       *genericoptions.FeatureOptions

	// Kubeconfig reaches kube-apiserver for Nodes, Events and Leases;
	// empty means the in-cluster config.
	Kubeconfig string
	// CloudConfig is the --cloud-config file.
	CloudConfig string
	// NodeName is the node this server runs on.
	NodeName string
	// LockNamespace holds the per-node lock Leases.
	LockNamespace string
	// ActionCooldown is how long a node stays locked after an action.
	ActionCooldown time.Duration
	// CompletionTimeout bounds how long an action's lastAction stays
	// Requested.
	CompletionTimeout time.Duration
	// KubeAPIQPS and KubeAPIBurst are the client-side rate limit of this
	// server's own calls to kube-apiserver (Node reads, Leases, Events,
	// the view's list and watch).
	KubeAPIQPS   float32
	KubeAPIBurst int
	// PolicyConfig is the --policy-config file; empty: no policy.
	PolicyConfig string
}

// The kube client's default rate limit. One action costs one Node read
// (a dry run) to four calls (Node, Lease read and write, Event); client-go's
// default of 5 QPS made a dry run wait 200 ms for its token under load. The
// benchmark (make bench-e2e) serves 300-550 dry runs/s on 2 cores, so
// these leave the limiter out of the way of any load the server can serve,
// while still bounding a runaway loop; kube-apiserver's priority and
// fairness is the real protection of the control plane.
const (
	DefaultKubeAPIQPS   = 1000
	DefaultKubeAPIBurst = 2000
)

// NewOptions returns the defaults.
func NewOptions() *Options {
	o := &Options{
		SecureServing:  genericoptions.NewSecureServingOptions().WithLoopback(),
		Authentication: genericoptions.NewDelegatingAuthenticationOptions(),
		Authorization:  genericoptions.NewDelegatingAuthorizationOptions(),
		Audit:          genericoptions.NewAuditOptions(),
		Features:       genericoptions.NewFeatureOptions(),

		NodeName:          os.Getenv("NODE_NAME"),
		LockNamespace:     defaultNamespace(),
		ActionCooldown:    5 * time.Minute,
		CompletionTimeout: node.DefaultCompletionTimeout,
		KubeAPIQPS:        DefaultKubeAPIQPS,
		KubeAPIBurst:      DefaultKubeAPIBurst,
	}
	o.SecureServing.BindPort = 6443
	// Self-signed certificates (no --tls-cert-file) go to the user's cache,
	// not the working directory, where they would end up in a checkout.
	o.SecureServing.ServerCert.CertDirectory = defaultCertDir()
	o.SecureServing.ServerCert.PairName = "apiserver"
	// API priority and fairness needs informers on flowcontrol objects this
	// small server does not want; kube-apiserver in front of it already
	// applies fairness to the requests it proxies.
	o.Features.EnablePriorityAndFairness = false
	return o
}

// defaultCertDir is $XDG_CACHE_HOME (or ~/.cache)/k8s-cloud-node-manager/certificates,
// else the same under the temp dir.
func defaultCertDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "k8s-cloud-node-manager", "certificates")
}

// defaultNamespace is the pod's namespace in cluster, else kube-system.
func defaultNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "kube-system"
}

// Flags returns the flags in named sets, for cobra's usage output.
func (o *Options) Flags() cliflag.NamedFlagSets {
	var fss cliflag.NamedFlagSets
	// Created first, so --help shows the server's own flags first.
	fs := fss.FlagSet("k8s-cloud-node-manager")
	o.SecureServing.AddFlags(fss.FlagSet("secure serving"))
	o.Authentication.AddFlags(fss.FlagSet("authentication"))
	o.Authorization.AddFlags(fss.FlagSet("authorization"))
	o.Audit.AddFlags(fss.FlagSet("auditing"))
	o.Features.AddFlags(fss.FlagSet("features"))

	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the cluster whose Nodes are served; empty means the in-cluster config.")
	fs.StringVar(&o.CloudConfig, "cloud-config", o.CloudConfig, "YAML file with per-cloud settings (enabled, region, endpoint, caFile, timeout, rateLimit); see the README. Never credentials.")
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "Name of the node this server runs on (the downward API's spec.nodeName); an action on it writes its lock and Event before the cloud call, since the server may go down before the answer. Defaults to $NODE_NAME.")
	fs.StringVar(&o.LockNamespace, "lock-namespace", o.LockNamespace, "Namespace of the Leases that keep one action at a time per node across replicas. Defaults to $POD_NAMESPACE, the in-cluster namespace, or kube-system.")
	fs.DurationVar(&o.ActionCooldown, "action-cooldown", o.ActionCooldown, "How long a node stays locked after the cloud call of an accepted action, or of one whose outcome is unknown, returned, so a repeated request does not reboot it twice. At least every enabled provider's timeout in the cloud config.")
	fs.DurationVar(&o.CompletionTimeout, "action-completion-timeout", o.CompletionTimeout, "How long an accepted action may take to show on its Node (a restart: a new boot ID and Ready; a stop: NotReady; a start: Ready) before the node's status.lastAction is TimedOut.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Client-side rate limit (queries per second) of this server's own calls to kube-apiserver; a negative value disables the limit.")
	fs.StringVar(&o.PolicyConfig, "policy-config", o.PolicyConfig, "YAML file of the safety policy (budgets, minReady, maintenance windows, opt-outs) applied to every action before the cloud call; see the README. Empty: no policy.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of this server's own calls to kube-apiserver above --kube-api-qps.")
	return fss
}

// Validate checks the flags.
func (o *Options) Validate() []error {
	var errs []error
	errs = append(errs, o.SecureServing.Validate()...)
	errs = append(errs, o.Authentication.Validate()...)
	errs = append(errs, o.Authorization.Validate()...)
	errs = append(errs, o.Audit.Validate()...)
	errs = append(errs, o.Features.Validate()...)
	if o.CompletionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--action-completion-timeout must be positive, got %s", o.CompletionTimeout))
	}
	if o.ActionCooldown < time.Second {
		errs = append(errs, fmt.Errorf("--action-cooldown must be at least 1s, got %s", o.ActionCooldown))
	}
	if o.KubeAPIQPS == 0 {
		errs = append(errs, fmt.Errorf("--kube-api-qps must not be 0 (a negative value disables the limit)"))
	}
	if o.KubeAPIQPS > 0 && o.KubeAPIBurst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-burst must be at least 1 when --kube-api-qps is set, got %d", o.KubeAPIBurst))
	}
	if o.LockNamespace == "" {
		errs = append(errs, fmt.Errorf("--lock-namespace must not be empty"))
	}
	return errs
}

// Config turns the flags into a server configuration.
func (o *Options) Config() (*Config, error) {
	// The kubeconfig first: a server that cannot reach its cluster must
	// fail before it writes anything (self-signed certificates).
	restConfig, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	// One clientset, so one transport and one rate limiter, for every
	// call of this server's own: the view's reflector, Node reads, Leases
	// and Events.
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	cloudConfig, err := providers.LoadConfig(o.CloudConfig)
	if err != nil {
		return nil, fmt.Errorf("--cloud-config: %w", err)
	}
	pol, err := policy.Load(o.PolicyConfig)
	if err != nil {
		return nil, fmt.Errorf("--policy-config: %w", err)
	}
	if err := CheckLockCoversCall(o.ActionCooldown, cloudConfig); err != nil {
		return nil, err
	}
	if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{netutils.ParseIPSloppy("127.0.0.1")}); err != nil {
		return nil, fmt.Errorf("creating self-signed certificates: %w", err)
	}

	generic := genericapiserver.NewRecommendedConfig(Codecs)
	if err := o.SecureServing.ApplyTo(&generic.SecureServing, &generic.LoopbackClientConfig); err != nil {
		return nil, err
	}
	setOpenAPIConfig(generic)
	if err := o.Authentication.ApplyTo(&generic.Authentication, generic.SecureServing, generic.OpenAPIConfig); err != nil {
		return nil, err
	}
	if err := o.Authorization.ApplyTo(&generic.Authorization); err != nil {
		return nil, err
	}
	if err := o.Audit.ApplyTo(&generic.Config); err != nil {
		return nil, err
	}
	if err := o.Features.ApplyTo(&generic.Config, kube, nil); err != nil {
		return nil, err
	}

	identity, _ := os.Hostname()
	return &Config{
		Generic: generic,
		Extra: ExtraConfig{
			Kube:              kube,
			CloudConfig:       cloudConfig,
			NodeName:          o.NodeName,
			LockNamespace:     o.LockNamespace,
			ActionCooldown:    o.ActionCooldown,
			CompletionTimeout: o.CompletionTimeout,
			Identity:          identity,
			Policy:            pol,
		},
	}, nil
}

func (o *Options) restConfig() (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "k8s-cloud-node-manager"
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	// Every call is to built-in types (Nodes, Leases, Events), which
	// kube-apiserver serves as protobuf: smaller and cheaper to decode.
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return cfg, nil
}
