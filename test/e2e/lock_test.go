package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// The guarantees of README "Nothing reboots twice by accident" that need a
// real kube-apiserver (Leases, the aggregator, a process that dies).

// replicaHostNode is the node the e2e server is told it runs on.
const replicaHostNode = "e2e-replica-host"

// e2eCooldown is the server's --action-cooldown in this suite (TestMain).
const e2eCooldown = 20 * time.Second

func setDelay(t *testing.T, m machine, d time.Duration) {
	t.Helper()
	fakePost(t, m.provider, "/_fake/faults", map[string]string{"instanceId": m.instanceID, "delay": d.String()})
	t.Cleanup(func() { clearFaults(t, m) })
}

func clearFaults(t *testing.T, m machine) {
	req, _ := http.NewRequest(http.MethodDelete, fakeURL(m.provider)+"/_fake/faults?instanceId="+m.instanceID, nil)
	resp, err := env.fakeHTTP.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
}

// waitCloudCall waits until the fake cloud has received a reboot of m.
func waitCloudCall(t *testing.T, m machine) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, c := range cloudCalls(t, m) {
			if c.Action == "RebootInstances" && !c.DryRun {
				return
			}
		}
	}
	t.Fatalf("the cloud never received the reboot of %s", m.instanceID)
}

// Issue 9 item 1: the cooldown counts from the end of the cloud call. A
// call that takes 8s, then a request 22s after the first was sent (past a
// cooldown counted from its start, inside one counted from its end): 409.
func TestCooldownCountsFromTheEndOfTheCall(t *testing.T) {
	timed(t)
	m := newMachine(t, cloud.ProviderAWS, nil)
	setDelay(t, m, 8*time.Second)
	start := time.Now()
	if _, err := restart(t, m.node, `{"reason":"slow cloud"}`); err != nil {
		t.Fatalf("restart: %v", err)
	}
	end := time.Now()
	clearFaults(t, m)
	time.Sleep(time.Until(start.Add(e2eCooldown + 2*time.Second)))
	if left := e2eCooldown - time.Since(end); left < 3*time.Second {
		t.Fatalf("the machine is too slow for this test: the call ended only %s before", time.Since(end))
	}
	_, err := restart(t, m.node, `{"reason":"too soon"}`)
	if !apierrors.IsConflict(err) {
		t.Fatalf("want 409 %s after the call ended (%s after it started), got %v", time.Since(end).Round(time.Second), time.Since(start).Round(time.Second), err)
	}
	if n := reboots(t, m); n != 1 {
		t.Fatalf("want one reboot, got %d", n)
	}
}

// Issue 9 item 1: a cooldown shorter than a cloud call may take is refused
// at start-up, naming both values.
func TestServerRefusesACooldownShorterThanTheCall(t *testing.T) {
	timed(t)
	cmd := exec.Command(filepath.Join(env.binDir, "k8s-cloud-node-manager"),
		"--kubeconfig", env.cluster.Kubeconfig(),
		"--authentication-kubeconfig", env.cluster.Kubeconfig(),
		"--authorization-kubeconfig", env.cluster.Kubeconfig(),
		"--cloud-config", env.product.CloudConfig,
		"--cert-dir", t.TempDir(), "--secure-port", "0",
		"--action-cooldown", "1s")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the server started with --action-cooldown=1s:\n%s", out)
	}
	if !strings.Contains(string(out), "--action-cooldown (1s)") || !strings.Contains(string(out), ".timeout (15s)") {
		t.Fatalf("want a message naming 1s and 15s, got:\n%s", out)
	}
}

// Issue 9 item 3: the server is killed (SIGKILL) while the cloud is still
// answering, and started again: a retry meets the Lease the dead process
// took, never a second reboot.
func TestKilledMidCallThenRestarted(t *testing.T) {
	timed(t)
	m := newMachine(t, cloud.ProviderAWS, nil)
	setDelay(t, m, 10*time.Second)
	first := make(chan error, 1)
	go func() {
		_, err := restart(t, m.node, `{"reason":"killed mid-call"}`)
		first <- err
	}()
	waitCloudCall(t, m)
	if err := env.product.KillServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("the interrupted request ended with: %v", <-first)
	clearFaults(t, m)
	_, err := restart(t, m.node, `{"reason":"retry after the crash"}`)
	if !apierrors.IsConflict(err) {
		t.Fatalf("want 409 from the restarted server, got %v", err)
	}
	if n := reboots(t, m); n != 1 {
		t.Fatalf("want one reboot, got %d", n)
	}
}

// Issue 9 item 9: the node this replica runs on is restarted through the
// API by the replica itself, with the lock and a "requested" Event written
// before the cloud call.
func TestRestartTheReplicasOwnNode(t *testing.T) {
	timed(t)
	m := newNamedMachine(t, cloud.ProviderAWS, replicaHostNode, nil)
	a, err := restart(t, m.node, `{"reason":"kernel update of the replica's host"}`)
	if err != nil {
		t.Fatalf("restart of the replica's own node: %v", err)
	}
	if reboots(t, m) != 1 || a.CloudRequestID == "" {
		t.Fatalf("want one reboot, got %d (%+v)", reboots(t, m), a)
	}
	events, err := env.kube.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + m.node})
	if err != nil {
		t.Fatal(err)
	}
	var called time.Time
	for _, c := range cloudCalls(t, m) {
		if c.Action == "RebootInstances" && !c.DryRun {
			called = c.Time
		}
	}
	// Event times have whole seconds; the strict order (Event, then the
	// call) is TestSelfNodeRecordsBeforeTheCall's to prove.
	found := false
	for _, e := range events.Items {
		found = found || e.Reason == "RestartRequested" && strings.Contains(e.Message, "runs on the node") && !e.FirstTimestamp.Time.After(called)
	}
	if !found {
		t.Fatalf("no RestartRequested Event written before the call: %+v", events.Items)
	}
	if _, err := restart(t, m.node, ""); !apierrors.IsConflict(err) {
		t.Fatalf("want 409 in the cooldown, got %v", err)
	}
}

// Issue 9 item 10: a replica is not ready before it can authenticate the
// aggregator: at its first ready answer, a request as the aggregator sends
// it (front-proxy client certificate, X-Remote-User) is served as that
// user, not as system:anonymous.
func TestReadyOnlyOnceItCanAuthenticateTheAggregator(t *testing.T) {
	timed(t)
	proc, port, err := env.product.StartReplica(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = proc.Stop() }()
	cert, err := env.cluster.FrontProxyClientCert()
	if err != nil {
		t.Fatal(err)
	}
	probe := env.product.ServerHTTPClient()
	aggregator := env.product.ServerHTTPClient(cert)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the replica never became ready%s", proc.LogTail(20))
		}
		resp, err := probe.Get(base + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/apis/infraops.michael.io/v1/nodes", nil)
	req.Header.Set("X-Remote-User", "e2e-admin")
	req.Header.Set("X-Remote-Group", "system:masters")
	resp, err := aggregator.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the first request after ready was refused: %d %s", resp.StatusCode, body)
	}
}
