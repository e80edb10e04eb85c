package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --help begins with what the server is, then its own flags, before the
// pages of k8s.io/apiserver's.
func TestHelpDescribesTheServerAndItsOwnFlagsFirst(t *testing.T) {
	cmd := newCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	if !strings.HasPrefix(help, "k8s-cloud-node-manager is the Kubernetes aggregated API server") {
		t.Errorf("--help does not start with the description:\n%.300s", help)
	}
	usage := strings.Index(help, "Usage:")
	if usage < 0 {
		t.Fatalf("no Usage: in --help:\n%s", help)
	}
	help = help[usage:]
	own := strings.Index(help, "--action-cooldown")
	for _, generic := range []string{"--secure-port", "--authentication-kubeconfig", "--audit-log-path", "--logging-format"} {
		if i := strings.Index(help, generic); own < 0 || i < own {
			t.Errorf("%s (at %d) comes before the server's own flags (at %d)", generic, i, own)
		}
	}
}

// Run without a cluster to talk to, the server fails before it writes
// anything: no certificates in the working directory or the cert dir.
func TestMissingKubeconfigFailsBeforeWritingAnything(t *testing.T) {
	work, cache := t.TempDir(), t.TempDir()
	t.Chdir(work)
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", cache)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	cmd := newCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--secure-port=0"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Fatalf("err = %v, want one about the kubeconfig", err)
	}
	for _, dir := range []string{work, cache} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > 0 {
			t.Errorf("%s holds %v after a failed start", dir, entries)
		}
	}
}

// The default cert dir is the user's cache, never relative to the
// working directory.
func TestDefaultCertDirIsOutOfTheWorkingDirectory(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	cmd := newCommand()
	dir := cmd.Flags().Lookup("cert-dir").DefValue
	if want := filepath.Join(cache, "k8s-cloud-node-manager", "certificates"); dir != want {
		t.Errorf("--cert-dir defaults to %q, want %q", dir, want)
	}
}
