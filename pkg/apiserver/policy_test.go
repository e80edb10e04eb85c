package apiserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A policy the server cannot read stops it at start, naming the flag and
// the mistake; a good one reaches the server's config.
func TestStartupReadsThePolicy(t *testing.T) {
	run := func(policy string) (*Config, error) {
		path := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		o := NewOptions()
		o.SecureServing.ServerCert.CertDirectory = t.TempDir()
		o.Kubeconfig = writeKubeconfig(t)
		o.Authentication.RemoteKubeConfigFile = o.Kubeconfig
		o.Authentication.TolerateInClusterLookupFailure = true
		o.Authorization.RemoteKubeConfigFile = o.Kubeconfig
		o.PolicyConfig = path
		return o.Config()
	}
	_, err := run("budgets: [{name: zones, groupBy: topology.kubernetes.io/zone, maxUnderAction: 1, maxUnavailable: 2}]")
	if err == nil || !strings.Contains(err.Error(), "--policy-config") || !strings.Contains(err.Error(), "maxUnavailable") {
		t.Fatalf("want a refusal naming --policy-config and the unknown key, got %v", err)
	}
	_, err = run("windows: [{name: w, schedule: ['Mon-Fri 02:00-05:00 Europe/Berlinn']}]")
	if err == nil || !strings.Contains(err.Error(), "unknown time zone") {
		t.Fatalf("want a refusal naming the time zone, got %v", err)
	}
	cfg, err := run("budgets: [{name: zones, groupBy: topology.kubernetes.io/zone, maxUnderAction: 1}]")
	if err != nil || cfg.Extra.Policy == nil {
		t.Fatalf("a good policy: %v", err)
	}
}
