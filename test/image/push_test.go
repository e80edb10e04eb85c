package image

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPushToRegistry runs the push command the docs give (skopeo copy
// --all from the OCI archive) against a registry on loopback (Debian's
// docker-registry, the CNCF distribution registry), then reads the result
// back as a node's runtime would: the index under the tag, with the digest
// make image printed, and each platform's manifest.
func TestPushToRegistry(t *testing.T) {
	for _, tool := range []string{"skopeo", "docker-registry"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install skopeo docker-registry (.ci/run does)", tool)
		}
	}
	dir := t.TempDir()
	port := freePort(t)
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: 127.0.0.1:%d
`, filepath.Join(dir, "data"), port)
	writeFile(t, filepath.Join(dir, "config.yml"), []byte(config), 0o644)
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	reg := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	reg.Stdout, reg.Stderr = logFile, logFile
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = reg.Process.Signal(syscall.SIGTERM)
		_ = reg.Wait()
		if t.Failed() {
			data, _ := os.ReadFile(logFile.Name())
			t.Logf("--- registry log ---\n%s", data)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the registry never answered on %s: %v", base, err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	_, tag, _ := cutLast(env.ref, ":")
	repo := fmt.Sprintf("127.0.0.1:%d/k8s-cloud-node-manager", port)
	// The documented command; the loopback registry speaks plain HTTP.
	push := exec.CommandContext(t.Context(), "skopeo", "copy", "--all", "--dest-tls-verify=false",
		"oci-archive:"+env.archive, "docker://"+repo+":"+tag)
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}

	a := readArchive(t, env.archive)
	digestOf := func(ref, accept string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, base+"/v2/k8s-cloud-node-manager/manifests/"+ref, nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != accept {
			t.Fatalf("manifest %s: %s, %s", ref, resp.Status, resp.Header.Get("Content-Type"))
		}
		return resp.Header.Get("Docker-Content-Digest")
	}
	indexDigest := digestOf(tag, "application/vnd.oci.image.index.v1+json")
	if indexDigest != a.indexDigest {
		t.Fatalf("the registry has index %s under %s, make image wrote %s", indexDigest, tag, a.indexDigest)
	}
	var pushed []string
	for _, d := range a.index.Manifests {
		if got := digestOf(d.Digest, "application/vnd.oci.image.manifest.v1+json"); got != d.Digest {
			t.Fatalf("%s/%s manifest: registry has %s", d.Platform.OS, d.Platform.Architecture, got)
		}
		pushed = append(pushed, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	t.Logf("pushed %s (%s) with %s", repo+":"+tag, indexDigest, strings.Join(pushed, ", "))
}
