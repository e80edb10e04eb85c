package apiserver

import (
	"context"
	"fmt"
	"sort"
	"time"

	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	utilcompatibility "k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/kubernetes"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
	generatedopenapi "github.com/michael/k8s-cloud-node-manager/pkg/generated/openapi"
	"github.com/michael/k8s-cloud-node-manager/pkg/policy"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
	"github.com/michael/k8s-cloud-node-manager/pkg/version"
)

// Config is the server's configuration: the generic API server's and ours.
type Config struct {
	Generic *genericapiserver.RecommendedConfig
	Extra   ExtraConfig
}

// ExtraConfig is what this server adds to a generic API server.
type ExtraConfig struct {
	// Kube reads Nodes and writes Events and lock Leases.
	Kube        kubernetes.Interface
	CloudConfig *cloud.Config
	// Drivers, when set, replaces the drivers built from CloudConfig (tests).
	Drivers        node.Drivers
	NodeName       string
	LockNamespace  string
	ActionCooldown time.Duration
	// CompletionTimeout is how long an accepted action may take to show
	// on its Node before its lastAction is TimedOut; 0 is
	// node.DefaultCompletionTimeout.
	CompletionTimeout time.Duration
	// Identity names this replica in lock Leases.
	Identity string
	// BookmarkInterval is how often idle watches of nodes get a bookmark;
	// 0 is node.DefaultBookmarkInterval.
	BookmarkInterval time.Duration
	// Policy is the safety policy (--policy-config); nil: none.
	Policy *policy.Policy
}

type completedConfig struct {
	Generic genericapiserver.CompletedConfig
	Extra   ExtraConfig
}

// CompletedConfig is a Config with every default filled in.
type CompletedConfig struct {
	*completedConfig
}

// setOpenAPIConfig publishes OpenAPI v2 and v3 from the generated
// definitions; InstallAPIGroup needs both, and kubectl explain reads them.
func setOpenAPIConfig(c *genericapiserver.RecommendedConfig) {
	namer := openapinamer.NewDefinitionNamer(Scheme)
	c.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(generatedopenapi.GetOpenAPIDefinitions, namer)
	c.OpenAPIConfig.Info.Title = "k8s-cloud-node-manager"
	c.OpenAPIConfig.Info.Version = version.Version
	c.OpenAPIConfig.PostProcessSpec = publishActionOptionsV2
	c.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, namer)
	c.OpenAPIV3Config.Info.Title = "k8s-cloud-node-manager"
	c.OpenAPIV3Config.Info.Version = version.Version
	c.OpenAPIV3Config.PostProcessSpec = publishActionOptionsV3
}

// Complete fills in the defaults.
func (c *Config) Complete() CompletedConfig {
	if c.Generic.EffectiveVersion == nil {
		c.Generic.EffectiveVersion = utilcompatibility.DefaultBuildEffectiveVersion()
	}
	if c.Generic.OpenAPIConfig == nil || c.Generic.OpenAPIV3Config == nil {
		setOpenAPIConfig(c.Generic)
	}
	return CompletedConfig{&completedConfig{
		Generic: c.Generic.Complete(),
		Extra:   c.Extra,
	}}
}

// drivers builds the cloud drivers of the enabled providers once.
func (c *completedConfig) drivers(ctx context.Context) (node.Drivers, error) {
	if c.Extra.Drivers != nil {
		return c.Extra.Drivers, nil
	}
	set, err := providers.New(ctx, c.Extra.CloudConfig)
	if err != nil {
		return nil, fmt.Errorf("building the cloud drivers: %w", err)
	}
	return set, nil
}

// defaultRegion is the cloud config's default region of a provider.
func (c *completedConfig) defaultRegion(provider string) string {
	if c.Extra.CloudConfig == nil {
		return ""
	}
	return c.Extra.CloudConfig.Providers[provider].Region
}

// CheckLockCoversCall refuses a cooldown shorter than a cloud call may
// take. The node lock is taken for the cooldown before the cloud call and
// renewed while it runs; if kube-apiserver cannot be reached meanwhile the
// renewals fail, and only a hold at least as long as the call's time limit
// (owned by each provider's timeout in the cloud config) still covers the
// whole call, so a second request cannot get in while the first runs.
func CheckLockCoversCall(cooldown time.Duration, cfg *cloud.Config) error {
	if cfg == nil {
		cfg = providers.DefaultConfig()
	}
	names := make([]string, 0, len(cfg.Providers))
	for name := range cfg.Providers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pc := cfg.Providers[name]
		if pc.Enabled && pc.Timeout > cooldown {
			return fmt.Errorf("--action-cooldown (%s) is shorter than providers.%s.timeout (%s) in the cloud config: the node lock could lapse while a cloud call still runs, letting a second reboot in; make --action-cooldown at least %s or the timeout at most %s",
				cooldown, name, pc.Timeout, pc.Timeout, cooldown)
		}
	}
	return nil
}
