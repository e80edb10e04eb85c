package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestDockerfileBuildsTheSameImage builds the Dockerfile's final stage with
// podman and compares the image with make image's, file by file (paths,
// types, modes, owners, contents) and in its run config (user, entrypoint,
// command, ports, environment, working directory, labels).
//
// The build stage needs the golang image from a registry, so it is not
// run; its outputs are made here the way it makes them: the rootfs by the
// `go run ./hack/image --rootfs` line the Dockerfile holds, the binary
// taken from make image's own image. FROM scratch needs no registry.
func TestDockerfileBuildsTheSameImage(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join(env.repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(dockerfile)
	lastFrom := regexp.MustCompile(`(?m)^FROM\s.*$`).FindAllStringIndex(text, -1)
	if len(lastFrom) < 2 {
		t.Fatalf("the Dockerfile has %d stages, want a build stage and the image", len(lastFrom))
	}
	buildStage, finalStage := text[:lastFrom[len(lastFrom)-1][0]], text[lastFrom[len(lastFrom)-1][0]:]
	if !strings.HasPrefix(finalStage, "FROM scratch\n") {
		t.Fatalf("the final stage should be FROM scratch, is %q", strings.SplitN(finalStage, "\n", 2)[0])
	}
	rootfsLine := regexp.MustCompile(`go run \./hack/image --rootfs (/\S+)`).FindStringSubmatch(buildStage)
	binLine := regexp.MustCompile(`-o (/\S+) \./cmd/k8s-cloud-node-manager`).FindStringSubmatch(buildStage)
	if rootfsLine == nil || binLine == nil {
		t.Fatal("the build stage should write the rootfs with `go run ./hack/image --rootfs DIR` and the binary with `go build … -o PATH ./cmd/k8s-cloud-node-manager`")
	}

	// The build stage's outputs, at their paths, in a build context named
	// like the stage.
	buildCtx := t.TempDir()
	gen := exec.CommandContext(t.Context(), "go", "run", "./hack/image", "--rootfs", filepath.Join(buildCtx, rootfsLine[1]))
	gen.Dir = env.repo
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("go run ./hack/image --rootfs: %v\n%s", err, out)
	}
	want := readArchive(t, env.archive).image(t, hostPlatform())
	binPath := filepath.Join(buildCtx, binLine[1])
	if err := os.MkdirAll(filepath.Dir(binPath), 0o755); err != nil {
		t.Fatal(err)
	}
	// Mode 0600: the Dockerfile's COPY --chmod must set the mode itself.
	if err := os.WriteFile(binPath, want.files["k8s-cloud-node-manager"].data, 0o600); err != nil {
		t.Fatal(err)
	}
	stageFile := filepath.Join(t.TempDir(), "Dockerfile.final")
	if err := os.WriteFile(stageFile, []byte(finalStage), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "localhost/k8s-cloud-node-manager-dockerfile:test"
	env.podman.stdout(t, "build", "--pull=never", "--network=none", "--layers=false",
		"--build-context", "build="+buildCtx, "--build-arg", "VERSION="+env.version,
		"--file", stageFile, "--tag", tag, t.TempDir())
	t.Cleanup(func() { _, _ = env.podman.output(t.Context(), "rmi", "--force", tag) })

	// Run config: both as podman reads them.
	type runConfig struct {
		User         string
		Entrypoint   []string
		Cmd          []string
		ExposedPorts map[string]struct{}
		Env          []string
		WorkingDir   string
		Labels       map[string]string
		StopSignal   string
	}
	inspect := func(ref string) runConfig {
		t.Helper()
		var out []struct{ Config runConfig }
		if err := json.Unmarshal([]byte(env.podman.stdout(t, "image", "inspect", ref)), &out); err != nil || len(out) != 1 {
			t.Fatalf("podman image inspect %s: %v", ref, err)
		}
		// Buildah stamps its own version; not part of the image's contract.
		delete(out[0].Config.Labels, "io.buildah.version")
		return out[0].Config
	}
	made, built := inspect(env.ref), inspect(tag)
	if !reflect.DeepEqual(made, built) {
		t.Errorf("run config differs:\n make image: %+v\n Dockerfile: %+v", made, built)
	}

	// Files: both images mounted as podman assembles them.
	madeFiles, builtFiles := mountedFiles(t, env.ref), mountedFiles(t, tag)
	for name, e := range madeFiles {
		if b, ok := builtFiles[name]; !ok {
			t.Errorf("/%s (%s) only in make image's image", name, e)
		} else if b.String() != e.String() {
			t.Errorf("/%s differs:\n make image: %s\n Dockerfile: %s", name, e, b)
		}
	}
	for name, e := range builtFiles {
		if _, ok := madeFiles[name]; !ok {
			t.Errorf("/%s (%s) only in the Dockerfile's image", name, e)
		}
	}
	if len(madeFiles) < 4 {
		t.Fatalf("make image's image holds only %v", madeFiles)
	}
}

// mountedFiles mounts an image (podman image mount, rootful) and lists its
// file system.
func mountedFiles(t *testing.T, ref string) map[string]fsEntry {
	t.Helper()
	dir := strings.TrimSpace(env.podman.stdout(t, "image", "mount", ref))
	defer env.podman.stdout(t, "image", "unmount", ref)
	files := map[string]fsEntry{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		e := fsEntry{Mode: int64(info.Mode().Perm()), UID: int(st.Uid), GID: int(st.Gid)}
		if info.Mode()&fs.ModeSetuid != 0 || info.Mode()&fs.ModeSetgid != 0 || info.Mode()&fs.ModeSticky != 0 {
			e.Mode |= 0o7000 // flagged, not mapped bit by bit: none is expected
		}
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			e.Type, e.Size, e.SHA256 = tar.TypeReg, info.Size(), hex.EncodeToString(sum[:])
		case info.IsDir():
			e.Type = tar.TypeDir
		default:
			return fmt.Errorf("%s: unexpected %s", path, info.Mode().Type())
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
