package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

// settleTimeout bounds how long a Settles step or a background command is
// given to print what it should: a person would look again after a moment.
const settleTimeout = 30 * time.Second

// TestDemoTryList runs the Try list `make demo` prints, top to bottom,
// against a demo started the way hack/local-up starts it, and checks each
// command does what its comment says.
func TestDemoTryList(t *testing.T) {
	timed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{WorkDir: filepath.Join(t.TempDir(), "demo"), BinDir: env.cluster.BinDir(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	d, err := c.StartDemo(ctx, cluster.DemoOptions{
		ServerBinary:    filepath.Join(env.binDir, "k8s-cloud-node-manager"),
		FakeCloudBinary: filepath.Join(env.binDir, "fake-cloud"),
		PluginDir:       env.binDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s\nfake cloud log:\n%s", d.Product.Server.LogTail(30), d.Product.FakeCloud.LogTail(30))
		}
	}()

	var background []*demoCommand
	defer func() {
		for _, b := range background {
			b.stop()
		}
	}()
	for i, st := range d.Steps {
		name := fmt.Sprintf("%02d %s", i+1, st.Command)
		if st.Background {
			b := startDemoCommand(t, d, st)
			background = append(background, b)
			if err := b.waitFor(ctx, regexp.MustCompile(regexp.QuoteMeta(st.Started))); err != nil {
				t.Fatalf("step %s: %v", name, err)
			}
			continue
		}
		out, err := runDemoStep(ctx, d, st)
		if err != nil {
			t.Fatalf("step %s (%s): %v\n%s", name, st.Comment, err, out)
		}
		t.Logf("step %s:\n%s", name, out)
	}
	for _, b := range background {
		for _, w := range b.step.Want {
			if err := b.waitFor(ctx, regexp.MustCompile(w)); err != nil {
				t.Errorf("background %q (%s): %v", b.step.Command, b.step.Comment, err)
			}
		}
	}

	// The 409 in its cooldown reached no cloud: the EC2 machine rebooted
	// once, though the list asked twice.
	if n := demoReboots(t, d, cluster.DemoEC2InstanceID); n != 1 {
		t.Errorf("%s rebooted %d times, want 1", cluster.DemoEC2InstanceID, n)
	}
	// The developer's 403 reached no cloud either.
	if n := demoReboots(t, d, cluster.DemoEC2InstanceID2); n != 1 {
		t.Errorf("%s rebooted %d times, want 1", cluster.DemoEC2InstanceID2, n)
	}
}

// demoEnv is the test's environment with the demo's KUBECONFIG and PATH.
func demoEnv(d *cluster.Demo) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return append(out, d.Env...)
}

// runDemoStep runs one command as a shell would and checks its exit
// status and output, again until settleTimeout for a Settles step.
func runDemoStep(ctx context.Context, d *cluster.Demo, st cluster.DemoStep) (string, error) {
	deadline := time.Now().Add(settleTimeout)
	for {
		stepCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		cmd := exec.CommandContext(stepCtx, "bash", "-c", st.Command)
		cmd.Env = demoEnv(d)
		cmd.Stdin = strings.NewReader("")
		out, runErr := cmd.CombinedOutput()
		cancel()
		err := checkDemoOutput(st, string(out), runErr)
		if err == nil || !st.Settles || time.Now().After(deadline) {
			return string(out), err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func checkDemoOutput(st cluster.DemoStep, out string, runErr error) error {
	if _, exited := runErr.(*exec.ExitError); runErr != nil && !exited {
		return runErr
	}
	if failed := runErr != nil; failed != st.Fails {
		return fmt.Errorf("exit status %v, want failure %v", runErr, st.Fails)
	}
	for _, w := range st.Want {
		if !regexp.MustCompile(w).MatchString(out) {
			return fmt.Errorf("output does not match %q", w)
		}
	}
	return nil
}

// demoCommand is a background step, as in a second terminal.
type demoCommand struct {
	step cluster.DemoStep
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (b *demoCommand) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

func (b *demoCommand) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

func startDemoCommand(t *testing.T, d *cluster.Demo, st cluster.DemoStep) *demoCommand {
	t.Helper()
	b := &demoCommand{step: st, done: make(chan struct{})}
	// exec, so that stopping the shell stops the command it runs.
	b.cmd = exec.Command("bash", "-c", "exec "+st.Command)
	b.cmd.Env = demoEnv(d)
	b.cmd.Stdout, b.cmd.Stderr = b, b
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	return b
}

// waitFor waits until the command has printed something matching re.
func (b *demoCommand) waitFor(ctx context.Context, re *regexp.Regexp) error {
	deadline := time.After(settleTimeout)
	for {
		if re.MatchString(b.output()) {
			return nil
		}
		select {
		case <-b.done:
			if re.MatchString(b.output()) {
				return nil
			}
			return fmt.Errorf("exited (%v) without printing %q:\n%s", b.cmd.ProcessState, re, b.output())
		case <-deadline:
			return fmt.Errorf("did not print %q within %s:\n%s", re, settleTimeout, b.output())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (b *demoCommand) stop() {
	_ = b.cmd.Process.Kill()
	<-b.done
}

// demoReboots is the number of reboots the demo's fake EC2 accepted for
// an instance.
func demoReboots(t *testing.T, d *cluster.Demo, id string) int {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(d.Product.APIService.CABundle)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get(d.Product.EC2URL + "/_fake/instances")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var instances []fakecloud.Instance
	if err := json.NewDecoder(resp.Body).Decode(&instances); err != nil {
		t.Fatal(err)
	}
	for _, in := range instances {
		if in.ID == id {
			return in.Reboots
		}
	}
	t.Fatalf("the fake EC2 does not know %s", id)
	return 0
}
