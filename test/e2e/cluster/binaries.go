package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// ModulePath is the project's Go module.
const ModulePath = "github.com/michael/k8s-cloud-node-manager"

// EnvBinDir names the variable that points at prebuilt binaries, either
// the build script's output folder or its bin/ inside.
const EnvBinDir = "K8S_BIN_DIR"

// RepoRoot finds the project's checkout by walking up from the working
// directory to the go.mod that declares ModulePath.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePathOf(data) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

func modulePathOf(gomod []byte) string {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// BinDir returns the folder holding kube-apiserver, etcd and kubectl: the
// one K8S_BIN_DIR names, else the output of hack/build-k8s-binaries.sh
// (which builds them on first use, minutes when the module cache is cold).
// The script's progress goes to logf.
func BinDir(ctx context.Context, repoRoot string, logf func(string, ...any)) (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		return NormalizeBinDir(dir)
	}
	return BuildBinaries(ctx, repoRoot, logf)
}

// NormalizeBinDir accepts the build script's output folder or its bin/
// and returns the absolute folder holding kube-apiserver.
func NormalizeBinDir(dir string) (string, error) {
	for _, d := range []string{filepath.Join(dir, "bin"), dir} {
		if executable(filepath.Join(d, "kube-apiserver")) == nil {
			return filepath.Abs(d)
		}
	}
	return "", fmt.Errorf("no kube-apiserver in %s or %s/bin", dir, dir)
}

// BuildBinaries runs hack/build-k8s-binaries.sh (a no-op when its output
// exists) and returns the bin/ folder of its output.
func BuildBinaries(ctx context.Context, repoRoot string, logf func(string, ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	script := filepath.Join(repoRoot, "hack", "build-k8s-binaries.sh")
	cmd := exec.CommandContext(ctx, script)
	cmd.Dir = repoRoot
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("running %s: %w", script, err)
	}
	var (
		wg   sync.WaitGroup
		tail []string
	)
	wg.Go(func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logf("%s", sc.Text())
			tail = append(tail, sc.Text())
			if len(tail) > 40 {
				tail = tail[1:]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	})
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", script, err, strings.Join(tail, "\n"))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	out := strings.TrimSpace(lines[len(lines)-1])
	if out == "" {
		return "", errors.New(script + " printed no output folder")
	}
	return NormalizeBinDir(out)
}
