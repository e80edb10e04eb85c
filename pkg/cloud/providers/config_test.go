package providers

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/alibabacloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/azure"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/gce"
)

func TestLoadConfigEmptyPath(t *testing.T) {
	c, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cloud.ProviderAWS, cloud.ProviderTencentCloud, alibabacloud.Name, gce.Name, azure.Name} {
		pc, ok := c.Providers[p]
		if !ok || !pc.Enabled || pc.Region != "" || pc.Timeout != cloud.DefaultTimeout ||
			pc.RateLimit != (cloud.RateLimit{QPS: cloud.DefaultQPS, Burst: cloud.DefaultBurst}) {
			t.Errorf("%s: %+v (present %v)", p, pc, ok)
		}
	}
	if len(c.Providers) != len(All) {
		t.Errorf("providers: %v", c.Providers)
	}
	if err := c.Validate(All...); err != nil {
		t.Errorf("default config does not validate: %v", err)
	}
}

func TestLoadConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cloud.yaml")
	data := `
providers:
  aws:
    region: us-east-1
    endpoint: https://127.0.0.1:18443
    caFile: /etc/ca.crt
    timeout: 3s
    rateLimit: {qps: 2.5, burst: 4}
    dryRunRateLimit: {qps: 1, burst: 2}
  tencentcloud:
    enabled: false
    region: gz
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &cloud.Config{Providers: map[string]cloud.ProviderConfig{
		cloud.ProviderAWS: {
			Enabled: true, Region: "us-east-1", Endpoint: "https://127.0.0.1:18443", CAFile: "/etc/ca.crt",
			Timeout: 3 * time.Second, RateLimit: cloud.RateLimit{QPS: 2.5, Burst: 4},
			DryRunRateLimit: cloud.RateLimit{QPS: 1, Burst: 2},
		},
		cloud.ProviderTencentCloud: {
			Enabled: false, Region: "ap-guangzhou", Timeout: cloud.DefaultTimeout,
			RateLimit:       cloud.RateLimit{QPS: cloud.DefaultQPS, Burst: cloud.DefaultBurst},
			DryRunRateLimit: cloud.RateLimit{QPS: cloud.DefaultDryRunQPS, Burst: cloud.DefaultDryRunBurst},
		},
	}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte("providers:\n  tencentcloud: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Providers[cloud.ProviderAWS]; ok {
		t.Errorf("aws is configured although the file has no aws block: %+v", c.Providers)
	}
	pc := c.Providers[cloud.ProviderTencentCloud]
	if !pc.Enabled || pc.Timeout != cloud.DefaultTimeout || pc.RateLimit.QPS != cloud.DefaultQPS || pc.RateLimit.Burst != cloud.DefaultBurst {
		t.Errorf("tencentcloud: %+v", pc)
	}

	c, err = ParseConfig([]byte("providers:\n  aws:\n    rateLimit: {qps: 2.5}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Providers[cloud.ProviderAWS].RateLimit; got != (cloud.RateLimit{QPS: 2.5, Burst: 3}) {
		t.Errorf("burst from qps: %+v", got)
	}
}

func TestParseConfigOwnership(t *testing.T) {
	c, err := ParseConfig([]byte("providers:\n  aws:\n    ownership: {clusterName: prod-eks}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Providers["aws"].Ownership.ClusterName; got != "prod-eks" {
		t.Fatalf("ownership.clusterName %q", got)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, mention string
	}{
		{"unknown provider", "providers:\n  openstack: {}\n", "unknown provider"},
		{"upper-case provider", "providers:\n  AWS: {}\n", "unknown provider"},
		{"unknown field", "providers:\n  aws:\n    regoin: us-east-1\n", "unknown field"},
		{"credentials", "providers:\n  aws:\n    secretAccessKey: abc\n", "credentials never go"},
		{"unknown top-level", "provider:\n  aws: {}\n", "unknown field"},
		{"duplicate key", "providers:\n  aws:\n    region: us-east-1\n    region: us-west-2\n", "already set"},
		{"endpoint with path", "providers:\n  aws:\n    endpoint: https://h:1/x\n", "path"},
		{"endpoint with slash", "providers:\n  aws:\n    endpoint: https://h:1/\n", "path"},
		{"endpoint with query", "providers:\n  aws:\n    endpoint: https://h?x=1\n", "query"},
		{"endpoint with empty query", "providers:\n  aws:\n    endpoint: https://h?\n", "query"},
		{"endpoint with fragment", "providers:\n  aws:\n    endpoint: https://h#f\n", "fragment"},
		{"endpoint http", "providers:\n  aws:\n    endpoint: http://h:1\n", "https"},
		{"endpoint no scheme", "providers:\n  aws:\n    endpoint: h:1\n", "https"},
		{"endpoint no host", "providers:\n  aws:\n    endpoint: https://\n", "no host"},
		{"endpoint port only", "providers:\n  aws:\n    endpoint: https://:443\n", "no host"},
		{"endpoint user", "providers:\n  aws:\n    endpoint: https://u:p@h\n", "user info"},
		{"endpoint bad port", "providers:\n  aws:\n    endpoint: https://h:99999\n", "port"},
		{"negative timeout", "providers:\n  aws:\n    timeout: -1s\n", "timeout"},
		{"zero timeout", "providers:\n  aws:\n    timeout: 0s\n", "timeout"},
		{"numeric timeout", "providers:\n  aws:\n    timeout: 15\n", "unit"},
		{"bad timeout", "providers:\n  aws:\n    timeout: soon\n", "duration"},
		{"negative qps", "providers:\n  aws:\n    rateLimit: {qps: -1, burst: 1}\n", "qps"},
		{"zero qps", "providers:\n  aws:\n    rateLimit: {qps: 0, burst: 1}\n", "qps"},
		{"negative burst", "providers:\n  aws:\n    rateLimit: {qps: 1, burst: -1}\n", "burst"},
		{"zero dry-run qps", "providers:\n  aws:\n    dryRunRateLimit: {qps: 0, burst: 1}\n", "dryRunRateLimit.qps"},
		{"negative dry-run burst", "providers:\n  aws:\n    dryRunRateLimit: {qps: 1, burst: -1}\n", "dryRunRateLimit.burst"},
		{"bad aws region", "providers:\n  aws:\n    region: us-east-1a\n", "region"},
		{"bad tencent region", "providers:\n  tencentcloud:\n    region: zz\n", "region"},
		{"nothing enabled", "providers:\n  aws: {enabled: false}\n", "no provider is enabled"},
		{"no providers", "{}\n", "no provider is enabled"},
		{"not yaml", "providers: [\n", "yaml"},
		{"ownership without a name", "providers:\n  aws:\n    ownership: {}\n", "ownership.clusterName: must be set"},
		{"ownership with a bad name", "providers:\n  aws:\n    ownership: {clusterName: \"prod*\"}\n", "ownership.clusterName"},
		{"ownership on a cloud without the check", "providers:\n  tencentcloud:\n    ownership: {clusterName: prod}\n", "tencentcloud has no ownership check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("got %+v, want an error", c)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "absent.yaml"))
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := DefaultConfig()
	pc := c.Providers[cloud.ProviderAWS]
	pc.Timeout = -time.Second
	c.Providers[cloud.ProviderAWS] = pc
	c.Providers["openstack"] = cloud.ProviderConfig{Enabled: true}
	err := c.Validate(All...)
	if err == nil || !strings.Contains(err.Error(), "aws.timeout") || !strings.Contains(err.Error(), "openstack") {
		t.Fatalf("got %v, want both the timeout and the unknown provider reported", err)
	}
	var nilConfig *cloud.Config
	if nilConfig.Validate(All...) == nil {
		t.Fatal("a nil config validated")
	}
}

// The server checks what must outlast a cloud call (the lock's cooldown)
// against the longest timeout of an enabled cloud.
func TestLongestTimeout(t *testing.T) {
	c, err := ParseConfig([]byte("providers:\n  aws: {timeout: 40s}\n  tencentcloud: {timeout: 2m, enabled: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LongestTimeout(); got != 40*time.Second {
		t.Errorf("LongestTimeout() = %s, want 40s (the disabled cloud's 2m does not count)", got)
	}
	if got := DefaultConfig().LongestTimeout(); got != cloud.DefaultTimeout {
		t.Errorf("default LongestTimeout() = %s", got)
	}
	var nilConfig *cloud.Config
	if nilConfig.LongestTimeout() != 0 {
		t.Error("a nil config has a timeout")
	}
}

// Without the clouds, ParseConfig checks only what every cloud shares;
// the server always passes them.
func TestParseConfigWithoutClouds(t *testing.T) {
	if _, err := cloud.ParseConfig([]byte("providers:\n  someday: {region: anything}\n")); err != nil {
		t.Errorf("shape-only parse refused: %v", err)
	}
	if _, err := cloud.ParseConfig([]byte("providers:\n  someday: {timeout: 0s}\n")); err == nil {
		t.Error("a zero timeout passed the shared checks")
	}
}
