package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Defaults applied to every enabled provider.
const (
	DefaultTimeout = 15 * time.Second
	DefaultQPS     = 5
	DefaultBurst   = 10
	// Dry runs have a budget of their own, so that whoever may dry-run
	// a node cannot hold off real actions with 429s; it is smaller, since
	// a dry run draws on the same cloud-side quota.
	DefaultDryRunQPS   = 2
	DefaultDryRunBurst = 5
)

// Config is the --cloud-config file. It never holds credentials: each
// driver takes them from its cloud's standard chain (environment,
// workload identity, instance role), so the file can live in a ConfigMap.
type Config struct {
	// Providers is keyed by provider name (a cloud's Name).
	Providers map[string]ProviderConfig
}

// LongestTimeout is the longest per-call timeout of the enabled providers:
// no cloud call, credentials included, runs longer (the wrapper in
// pkg/cloud/providers is its one owner). Whatever must outlast a call
// (the node lock's cooldown) is checked against it at start-up.
func (c *Config) LongestTimeout() time.Duration {
	var longest time.Duration
	if c == nil {
		return 0
	}
	for _, pc := range c.Providers {
		if pc.Enabled && pc.Timeout > longest {
			longest = pc.Timeout
		}
	}
	return longest
}

// ProviderConfig configures one cloud.
type ProviderConfig struct {
	// Enabled is true when the provider's block is present, unless it
	// says enabled: false.
	Enabled bool
	// Region is used when neither the Node's labels nor its providerID
	// tell the region.
	Region string
	// Endpoint overrides the API endpoint, as scheme://host[:port] (VPC
	// endpoints, tests). Empty means the SDK's own resolution.
	Endpoint string
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string
	// Timeout bounds each cloud call, from the first token of the rate
	// limit to the answer, credential resolution included. The wrapper in
	// pkg/cloud/providers applies it; drivers do not apply their own.
	Timeout time.Duration
	// RateLimit is our own client-side limit on real (not dry-run) calls
	// to this cloud.
	RateLimit RateLimit
	// DryRunRateLimit is the separate limit of dry runs.
	DryRunRateLimit RateLimit
	// Ownership, when set, has the driver check with the cloud that an
	// instance is this cluster's before every action on it, dry runs
	// included (clouds that implement OwnershipChecks only).
	Ownership Ownership
}

// Ownership names the cluster whose machines this server may act on.
type Ownership struct {
	// ClusterName is the name in the cloud's cluster tag (on EC2,
	// kubernetes.io/cluster/<ClusterName>); empty turns the check off.
	ClusterName string
}

// RateLimit is a token bucket: QPS tokens per second, at most Burst saved.
type RateLimit struct {
	QPS   float64
	Burst int
}

// fileConfig is the on-disk shape. It differs from Config only where the
// file must tell "absent" from "zero" (enabled, timeout).
type fileConfig struct {
	Providers map[string]fileProvider `json:"providers"`
}

type fileProvider struct {
	Enabled   *bool          `json:"enabled,omitempty"`
	Region    string         `json:"region,omitempty"`
	Endpoint  string         `json:"endpoint,omitempty"`
	CAFile    string         `json:"caFile,omitempty"`
	Timeout   *duration      `json:"timeout,omitempty"`
	RateLimit *fileRateLimit `json:"rateLimit,omitempty"`
	// DryRunRateLimit: dryRunRateLimit in the file.
	DryRunRateLimit *fileRateLimit `json:"dryRunRateLimit,omitempty"`
	Ownership       *fileOwnership `json:"ownership,omitempty"`
}

type fileOwnership struct {
	ClusterName string `json:"clusterName"`
}

type fileRateLimit struct {
	QPS   float64 `json:"qps"`
	Burst int     `json:"burst"`
}

// duration reads Go duration strings ("15s"); a bare number is refused
// because its unit would be a guess.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string with a unit, such as \"15s\", not %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

// DefaultProviderConfig is a provider block with every default and no
// region: enabled, DefaultTimeout, the default rate limits.
func DefaultProviderConfig() ProviderConfig {
	return ProviderConfig{
		Enabled:         true,
		Timeout:         DefaultTimeout,
		RateLimit:       RateLimit{QPS: DefaultQPS, Burst: DefaultBurst},
		DryRunRateLimit: RateLimit{QPS: DefaultDryRunQPS, Burst: DefaultDryRunBurst},
	}
}

// DefaultConfig is what runs without --cloud-config: every given cloud
// enabled with DefaultProviderConfig (providers.DefaultConfig gives them
// all).
func DefaultConfig(clouds ...Provider) *Config {
	c := &Config{Providers: map[string]ProviderConfig{}}
	for _, p := range clouds {
		c.Providers[p.Name()] = DefaultProviderConfig()
	}
	return c
}

// LoadConfig reads, defaults and validates the file at path against the
// given clouds (see ParseConfig). An empty path gives DefaultConfig.
func LoadConfig(path string, clouds ...Provider) (*Config, error) {
	if path == "" {
		return DefaultConfig(clouds...), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cloud config: %w", err)
	}
	c, err := ParseConfig(data, clouds...)
	if err != nil {
		return nil, fmt.Errorf("cloud config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a cloud config strictly (unknown or duplicate keys
// are errors), applies defaults and validates it. With clouds given (the
// server passes providers.All), a provider block must name one of them
// and each cloud checks its own fields (the region, with its aliases
// expanded); without, only what every cloud shares is checked.
func ParseConfig(data []byte, clouds ...Provider) (*Config, error) {
	var f fileConfig
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "unknown field") {
			// The likeliest unknown field is a credential someone tried to
			// add; say where they go instead.
			msg += " (credentials never go in the cloud config: they come from the cloud's standard chain, e.g. environment, IRSA or TKE OIDC)"
		}
		return nil, errors.New(msg)
	}
	c := &Config{Providers: map[string]ProviderConfig{}}
	for name, fp := range f.Providers {
		pc := DefaultProviderConfig()
		pc.Enabled = fp.Enabled == nil || *fp.Enabled
		pc.Region, pc.Endpoint, pc.CAFile = fp.Region, fp.Endpoint, fp.CAFile
		if p := find(clouds, name); p != nil && pc.Region != "" {
			if r, ok := p.Region(pc.Region); ok {
				pc.Region = r
			}
		}
		if fp.Timeout != nil {
			pc.Timeout = time.Duration(*fp.Timeout)
		}
		if fp.RateLimit != nil {
			pc.RateLimit = fp.RateLimit.limit()
		}
		if fp.DryRunRateLimit != nil {
			pc.DryRunRateLimit = fp.DryRunRateLimit.limit()
		}
		if fp.Ownership != nil {
			pc.Ownership.ClusterName = fp.Ownership.ClusterName
			if pc.Ownership.ClusterName == "" {
				return nil, fmt.Errorf("providers.%s.ownership.clusterName: must be set (leave out ownership to turn the check off)", name)
			}
		}
		c.Providers[name] = pc
	}
	if err := c.Validate(clouds...); err != nil {
		return nil, err
	}
	return c, nil
}

func (rl *fileRateLimit) limit() RateLimit {
	l := RateLimit{QPS: rl.QPS, Burst: rl.Burst}
	if rl.QPS > 0 && rl.Burst == 0 {
		// A bucket must hold at least one token to let anything through.
		l.Burst = max(1, int(math.Ceil(rl.QPS)))
	}
	return l
}

func find(clouds []Provider, name string) Provider {
	for _, p := range clouds {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// Validate checks a Config, whether loaded or built in code, against the
// given clouds as ParseConfig does.
func (c *Config) Validate(clouds ...Provider) error {
	if c == nil {
		return errors.New("no cloud config")
	}
	var errs []error
	names := make([]string, 0, len(c.Providers))
	for n := range c.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	enabled := 0
	for _, name := range names {
		pc := c.Providers[name]
		p := find(clouds, name)
		if p == nil && len(clouds) > 0 {
			known := make([]string, len(clouds))
			for i, k := range clouds {
				known[i] = k.Name()
			}
			errs = append(errs, fmt.Errorf("providers.%s: unknown provider (known: %s)", name, strings.Join(known, ", ")))
			continue
		}
		if pc.Enabled {
			enabled++
		}
		if p != nil && pc.Region != "" {
			if r, ok := p.Region(pc.Region); !ok || r != pc.Region {
				errs = append(errs, fmt.Errorf("providers.%s.region: %q is not a %s region name", name, pc.Region, name))
			}
		}
		if pc.Endpoint != "" {
			if err := validateEndpoint(pc.Endpoint); err != nil {
				errs = append(errs, fmt.Errorf("providers.%s.endpoint: %w", name, err))
			}
		}
		if pc.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("providers.%s.timeout: must be positive, got %s", name, pc.Timeout))
		}
		if n := pc.Ownership.ClusterName; n != "" && p != nil {
			if oc, ok := p.(OwnershipChecks); !ok {
				errs = append(errs, fmt.Errorf("providers.%s.ownership: %s has no ownership check", name, name))
			} else if err := oc.ValidClusterName(n); err != nil {
				errs = append(errs, fmt.Errorf("providers.%s.ownership.clusterName: %w", name, err))
			}
		}
		limits := []struct {
			field string
			rl    RateLimit
		}{{"rateLimit", pc.RateLimit}}
		if pc.DryRunRateLimit != (RateLimit{}) {
			// Zero in a config built in code means the default.
			limits = append(limits, struct {
				field string
				rl    RateLimit
			}{"dryRunRateLimit", pc.DryRunRateLimit})
		}
		for _, l := range limits {
			field, rl := l.field, l.rl
			switch {
			case rl.QPS <= 0 || math.IsInf(rl.QPS, 0) || math.IsNaN(rl.QPS):
				errs = append(errs, fmt.Errorf("providers.%s.%s.qps: must be a positive number, got %v", name, field, rl.QPS))
			case rl.Burst < 1:
				errs = append(errs, fmt.Errorf("providers.%s.%s.burst: must be at least 1, got %d", name, field, rl.Burst))
			}
		}
	}
	if len(errs) == 0 && enabled == 0 {
		errs = append(errs, errors.New("no provider is enabled"))
	}
	return errors.Join(errs...)
}

// validateEndpoint accepts https://host[:port] and nothing more: a path or
// query would be silently dropped or mangled by one SDK or the other.
// Plain http is refused because the server would send signed requests,
// and trust decisions, over an unverified channel.
func validateEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("%q: the scheme must be https", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q: no host", s)
	case u.User != nil:
		return fmt.Errorf("%q: user info is not allowed", s)
	case u.Path != "" || u.RawPath != "":
		return fmt.Errorf("%q: a path is not allowed, only https://host[:port]", s)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("%q: a query is not allowed", s)
	case u.Fragment != "":
		return fmt.Errorf("%q: a fragment is not allowed", s)
	case u.Opaque != "":
		return fmt.Errorf("%q: not a URL of the form https://host[:port]", s)
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 || fmt.Sprint(n) != p {
			return fmt.Errorf("%q: bad port %q", s, p)
		}
	}
	return nil
}
