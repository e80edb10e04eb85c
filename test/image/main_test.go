// Package image tests the server's container image as `make image` builds
// it (hack/image, an OCI archive with one image per platform):
//
//   - the archive: a multi-arch index of linux/amd64 and linux/arm64, each
//     image a static binary of its architecture, the non-root user and a
//     CA bundle Go reads (archive_test.go);
//   - the Dockerfile: its final stage, built with podman from the same
//     inputs, gives the same files, user and entrypoint (dockerfile_test.go);
//   - the image run with podman exactly as the chart's Deployment says
//     (security context, volumes, env, args), against a real
//     kube-apiserver on the host network, restarting a node through the
//     aggregator against the fake clouds; and its --version (chart_test.go);
//   - the documented push, skopeo copy --all, into a loopback registry
//     (push_test.go).
//
// It needs podman, runc, skopeo and docker-registry (Debian's; .ci/run
// installs them) and the
// variables `make image-test` sets: IMAGE_ARCHIVE, IMAGE_REF,
// IMAGE_VERSION, PRODUCT_BIN_DIR, and K8S_BIN_DIR / HELM_BIN (built when
// unset). Podman keeps its images in a private folder removed afterwards,
// so runs in parallel do not meet and nothing is left in the host's store.
package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

var env struct {
	repo string
	// archive is the OCI archive make image wrote; ref is the reference
	// recorded in it (and the name podman loads it under); version is the
	// build's version (the Makefile's VERSION).
	archive, ref, version string
	// binDir holds the product's binaries (bin/): fake-cloud, and the
	// server built by make build, whose --version the image must match.
	binDir string
	podman *podman
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "image: "+format+"\n", args...)
		return 1
	}
	var err error
	if env.repo, err = cluster.RepoRoot(); err != nil {
		return fail("%v", err)
	}
	for _, v := range []struct {
		dst  *string
		name string
	}{{&env.archive, "IMAGE_ARCHIVE"}, {&env.ref, "IMAGE_REF"}, {&env.version, "IMAGE_VERSION"}, {&env.binDir, "PRODUCT_BIN_DIR"}} {
		if *v.dst = os.Getenv(v.name); *v.dst == "" {
			return fail("%s is not set: run these tests with `make image-test` (it builds the image first)", v.name)
		}
	}
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fail("%s not found: apt-get install podman runc (.ci/run does)", tool)
		}
	}
	work, err := os.MkdirTemp("", "k8s-cloud-node-manager-image-")
	if err != nil {
		return fail("%v", err)
	}
	env.podman = newPodman(work)
	defer func() {
		env.podman.reset()
		if err := os.RemoveAll(work); err != nil {
			fmt.Fprintf(os.Stderr, "image: %v\n", err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	out, err := env.podman.output(ctx, "load", "--input", env.archive)
	if err != nil {
		return fail("podman load %s: %v\n%s", env.archive, err, out)
	}
	if !strings.Contains(out, "Loaded image: "+env.ref) {
		return fail("podman load did not name the image %s:\n%s", env.ref, out)
	}
	fmt.Printf("image: figures: podman load of %s took %s\n", filepath.Base(env.archive), time.Since(begin).Round(time.Millisecond))
	return m.Run()
}

// podman runs podman against a store of its own. Containers run with runc
// and cgroupfs: crun refuses this kind of machine's hybrid cgroups, and
// there is no systemd to manage cgroups.
type podman struct {
	global []string
}

func newPodman(dir string) *podman {
	return &podman{global: []string{
		"--root", filepath.Join(dir, "storage"),
		"--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"),
		"--network-config-dir", filepath.Join(dir, "networks"),
		"--storage-driver", "overlay",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
		"--runtime", "runc",
	}}
}

func (p *podman) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "podman", append(append([]string(nil), p.global...), args...)...)
	// Stopped with the context: a podman that does not finish in time is
	// interrupted, not left running.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

// output runs podman and returns stdout and stderr together.
func (p *podman) output(ctx context.Context, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := p.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// stdout runs podman and returns its stdout, failing the test on error.
func (p *podman) stdout(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := p.command(t.Context(), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// reset removes every container and image of the private store, which
// unmounts their layers, so that the folder can be deleted. (Not `podman
// system reset`: it also deletes networks, which are not all in the store.)
func (p *podman) reset() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"rm", "--all", "--force", "--time", "5"}, {"rmi", "--all", "--force"}} {
		if out, err := p.output(ctx, args...); err != nil {
			fmt.Fprintf(os.Stderr, "image: podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// ulimits are the container's limits: podman's defaults (nofile 1048576)
// exceed what this kind of machine allows its processes, and runc then
// fails to start the container.
func ulimits() []string {
	nofile := uint64(65536)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Max < nofile {
		nofile = lim.Max
	}
	return []string{
		fmt.Sprintf("--ulimit=nofile=%d:%d", nofile, nofile),
		"--ulimit=nproc=4096:4096",
	}
}

// hostPlatform is the platform of the image podman loads and runs here.
func hostPlatform() string { return "linux/" + runtime.GOARCH }
