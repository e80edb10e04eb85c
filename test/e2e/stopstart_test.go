package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

func actionPath(node, action string) string {
	return "/apis/infraops.michael.io/v1/nodes/" + node + "/" + action
}

// viewNode reads the view through kube-apiserver.
func viewNode(t *testing.T, node string) *infraopsv1.Node {
	t.Helper()
	v, err := tryViewNode(node)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tryViewNode is viewNode for a node the view may not have yet: a get
// reads the server's cache, which a Node just created reaches a moment
// later.
func tryViewNode(node string) (*infraopsv1.Node, error) {
	raw, err := env.kube.Discovery().RESTClient().Get().AbsPath("/apis/infraops.michael.io/v1/nodes/" + node).DoRaw(context.Background())
	if err != nil {
		return nil, fmt.Errorf("get %s: %w %s", node, err, raw)
	}
	var v infraopsv1.Node
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// waitPhase polls the view until the node's lastAction of action is in
// phase; the deadline only stops a broken test from hanging.
func waitPhase(t *testing.T, node, action string, phase infraopsv1.ActionPhase) *infraopsv1.LastAction {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// A Node created a moment ago may not be in the view yet.
		if v, err := tryViewNode(node); err == nil && v.Status.LastAction != nil && v.Status.LastAction.Action == action && v.Status.LastAction.Phase == phase {
			return v.Status.LastAction
		}
	}
	t.Fatalf("%s: lastAction never became %s %s: %+v", node, action, phase, viewNode(t, node).Status.LastAction)
	return nil
}

// wantNodeLocked fails unless err is the node lock's 409, naming action.
func wantNodeLocked(t *testing.T, what string, err error, action string) {
	t.Helper()
	se, ok := err.(apierrors.APIStatus)
	if !ok || se.Status().Code != http.StatusConflict || se.Status().Details == nil {
		t.Fatalf("%s: want the node lock's 409, got %v", what, err)
	}
	for _, c := range se.Status().Details.Causes {
		if c.Type == infraopsv1.CauseNodeLocked && strings.HasPrefix(c.Message, action+" by ") {
			return
		}
	}
	t.Fatalf("%s: no NodeLocked cause naming %s in %+v", what, action, se.Status())
}

func lastCall(t *testing.T, m machine) fakecloud.Call {
	t.Helper()
	calls := cloudCalls(t, m)
	if len(calls) == 0 {
		t.Fatalf("no cloud call for %s", m.instanceID)
	}
	return calls[len(calls)-1]
}

func calledAction(t *testing.T, m machine, action string) int {
	t.Helper()
	n := 0
	for _, c := range cloudCalls(t, m) {
		if c.Action == action && !c.DryRun && c.Error == "" {
			n++
		}
	}
	return n
}

// stop and start on both clouds through the aggregator with kubectl
// create --raw: one cloud call each, to the right instance and region,
// with the mode in the cloud's own terms; status.lastAction follows each
// to Completed while the test plays the kubelet.
func TestStopAndStartThroughTheAggregator(t *testing.T) {
	timed(t)
	ctx := context.Background()
	for _, tc := range []struct {
		provider string
		mode     func(fakecloud.Call) bool
	}{
		{cloud.ProviderAWS, func(c fakecloud.Call) bool { return c.Force }},
		{cloud.ProviderTencentCloud, func(c fakecloud.Call) bool { return c.StopType == "HARD" && c.StoppedMode == "KEEP_CHARGING" }},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			m := newMachine(t, tc.provider, nil)
			out, err := kubectl(t, "", "", "create", "--raw", actionPath(m.node, "stop"), "-f", writeBody(t, `{"mode":"hard","reason":"e2e: night"}`))
			if err != nil {
				t.Fatalf("stop: %v %s", err, out)
			}
			var a infraopsv1.NodeAction
			if err := json.Unmarshal([]byte(out), &a); err != nil || a.Action != "stop" || a.Mode != "hard" {
				t.Fatalf("answer %s (%v)", out, err)
			}
			// The same again: the stop's cooldown refuses a repeat.
			_, err = act(t, m.node, "stop", `{"mode":"hard"}`)
			wantNodeLocked(t, "a second stop", err, "stop")
			c := lastCall(t, m)
			if calledAction(t, m, "StopInstances") != 1 || c.Action != "StopInstances" || c.InstanceIDs[0] != m.instanceID ||
				c.Region != m.region || !tc.mode(c) || c.RequestID != a.CloudRequestID {
				t.Fatalf("want one hard StopInstances of %s in %s, got %+v", m.instanceID, m.region, cloudCalls(t, m))
			}
			la := waitPhase(t, m.node, "stop", infraopsv1.ActionRequested)
			if la.CloudRequestID != a.CloudRequestID || la.Mode != "hard" || la.Reason != "e2e: night" || la.User == "" {
				t.Fatalf("lastAction %+v", la)
			}
			if err := env.cluster.SetNodeStatus(ctx, m.node, false, "boot-"+m.node); err != nil {
				t.Fatal(err)
			}
			waitPhase(t, m.node, "stop", infraopsv1.ActionCompleted)

			// The stop's cooldown still runs (a dry-run stop meets it), and
			// does not keep the node from being started.
			_, err = act(t, m.node, "stop", `{"dryRun":["All"]}`)
			wantNodeLocked(t, "a dry-run stop in the stop's cooldown", err, "stop")
			out, err = kubectl(t, "", "", "create", "--raw", actionPath(m.node, "start"), "-f", writeBody(t, `{}`))
			if err != nil {
				t.Fatalf("start: %v %s", err, out)
			}
			if c := lastCall(t, m); calledAction(t, m, "StartInstances") != 1 || c.Action != "StartInstances" || c.Region != m.region || c.InstanceIDs[0] != m.instanceID {
				t.Fatalf("want one StartInstances, got %+v", cloudCalls(t, m))
			}
			waitPhase(t, m.node, "start", infraopsv1.ActionRequested)
			if err := env.cluster.SetNodeStatus(ctx, m.node, true, "boot2-"+m.node); err != nil {
				t.Fatal(err)
			}
			waitPhase(t, m.node, "start", infraopsv1.ActionCompleted)
		})
	}
}

// create on nodes/stop is its own grant: a restarter cannot stop, a
// stopper cannot restart.
func TestRBACStopApartFromRestart(t *testing.T) {
	timed(t)
	m := newMachine(t, cloud.ProviderAWS, nil)
	restarter := serviceAccountKubeconfig(t, "only-restarts", []rbacv1.PolicyRule{{
		APIGroups: []string{"infraops.michael.io"}, Resources: []string{"nodes/restart"}, Verbs: []string{"create"},
	}})
	stopper := serviceAccountKubeconfig(t, "only-stops", []rbacv1.PolicyRule{{
		APIGroups: []string{"infraops.michael.io"}, Resources: []string{"nodes/stop"}, Verbs: []string{"create"},
	}})
	body := writeBody(t, `{"dryRun":["All"]}`)
	forbidden := func(out string, err error) bool {
		return err != nil && strings.Contains(strings.ToLower(out), "forbidden")
	}
	if out, err := kubectl(t, restarter, "", "create", "--raw", actionPath(m.node, "stop"), "-f", body); !forbidden(out, err) {
		t.Fatalf("a restarter stopped: %v %s", err, out)
	}
	if out, err := kubectl(t, stopper, "", "create", "--raw", actionPath(m.node, "restart"), "-f", body); !forbidden(out, err) {
		t.Fatalf("a stopper restarted: %v %s", err, out)
	}
	if out, err := kubectl(t, stopper, "", "create", "--raw", actionPath(m.node, "start"), "-f", body); !forbidden(out, err) {
		t.Fatalf("a stopper started: %v %s", err, out)
	}
	if out, err := kubectl(t, stopper, "", "create", "--raw", actionPath(m.node, "stop"), "-f", body); err != nil {
		t.Fatalf("a stopper's stop: %v %s", err, out)
	}
	if out, err := kubectl(t, restarter, "", "create", "--raw", actionPath(m.node, "restart"), "-f", body); err != nil {
		t.Fatalf("a restarter's restart: %v %s", err, out)
	}
}

// A restart followed to Completed while the test plays the kubelet
// (NotReady with the old boot ID is not it; a new boot ID and Ready is),
// read the same through a second replica; a cloud refusal is Failed.
func TestLastActionOfARestartAndARefusal(t *testing.T) {
	timed(t)
	ctx := context.Background()
	m := newMachine(t, cloud.ProviderAWS, nil)
	if _, err := restart(t, m.node, `{"reason":"e2e: follow me"}`); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, m.node, "restart", infraopsv1.ActionRequested)
	if err := env.cluster.SetNodeStatus(ctx, m.node, false, "boot-"+m.node); err != nil {
		t.Fatal(err)
	}
	if err := env.cluster.SetNodeStatus(ctx, m.node, false, "boot-new-"+m.node); err != nil {
		t.Fatal(err)
	}
	if la := viewNode(t, m.node).Status.LastAction; la.Phase != infraopsv1.ActionRequested {
		t.Fatalf("completed before Ready: %+v", la)
	}
	if err := env.cluster.SetNodeStatus(ctx, m.node, true, "boot-new-"+m.node); err != nil {
		t.Fatal(err)
	}
	la := waitPhase(t, m.node, "restart", infraopsv1.ActionCompleted)
	if la.BootIDAtRequest != "boot-"+m.node || la.BootID != "boot-new-"+m.node || la.Ready != "True" {
		t.Fatalf("lastAction %+v", la)
	}

	// A second replica, started now, reads the same record from the
	// Lease: it survives a server's restart and is one on every replica.
	proc, port, err := env.product.StartReplica(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = proc.Stop() }()
	if other := replicaNode(t, port, m.node).Status.LastAction; !reflect.DeepEqual(other, la) {
		t.Fatalf("replicas disagree:\n%+v\n%+v", la, other)
	}

	// A refusal by the cloud.
	f := newMachine(t, cloud.ProviderTencentCloud, nil)
	fakePost(t, f.provider, "/_fake/faults", map[string]string{"instanceId": f.instanceID, "kind": fakecloud.FaultAuth})
	defer clearFaults(t, f)
	if _, err := restartAction(t, f.node, "stop", `{}`); err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Fatalf("stop refused by the cloud: %v", err)
	}
	failed := waitPhase(t, f.node, "stop", infraopsv1.ActionFailed)
	if !strings.Contains(failed.Message, "UnauthorizedOperation") || failed.CompletedAt == nil {
		t.Fatalf("failed lastAction %+v", failed)
	}
	if other := replicaNode(t, port, f.node).Status.LastAction; !reflect.DeepEqual(other, failed) {
		t.Fatalf("replicas disagree:\n%+v\n%+v", failed, other)
	}
}

// restartAction POSTs any action through kube-apiserver as admin.
func restartAction(t *testing.T, node, action, body string) ([]byte, error) {
	t.Helper()
	raw, err := env.kube.Discovery().RESTClient().Post().AbsPath(actionPath(node, action)).
		SetHeader("Content-Type", "application/json").Body([]byte(body)).DoRaw(context.Background())
	if err != nil {
		return raw, fmt.Errorf("%w: %s", err, raw)
	}
	return raw, nil
}

// replicaNode reads the view from one replica directly, as the aggregator
// would (front-proxy certificate and user headers), once it is ready.
func replicaNode(t *testing.T, port int, node string) *infraopsv1.Node {
	t.Helper()
	cert, err := env.cluster.FrontProxyClientCert()
	if err != nil {
		t.Fatal(err)
	}
	client := env.product.ServerHTTPClient(cert)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/apis/infraops.michael.io/v1/nodes/%s", port, node), nil)
		req.Header.Set("X-Remote-User", "e2e-admin")
		req.Header.Set("X-Remote-Group", "system:masters")
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		var v infraopsv1.Node
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		if v.Status.LastAction != nil {
			return &v
		}
	}
	t.Fatalf("the replica on port %d never showed %s with a lastAction", port, node)
	return nil
}
