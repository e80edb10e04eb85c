package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/alibabacloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

// ecsCalls are the fake ECS's calls of one action for a machine.
func ecsCalls(t *testing.T, m machine, action string) []fakecloud.Call {
	t.Helper()
	var out []fakecloud.Call
	for _, c := range cloudCalls(t, m) {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Alibaba Cloud ECS nodes through the aggregator, against the fake ECS
// with every ACS3 signature verified: ACK's scheme-less providerID and
// alicloud://, soft and hard restarts, ECS's own dry run, and the
// refusals.
func TestAlibabaCloudThroughTheAggregator(t *testing.T) {
	timed(t)
	ctx := context.Background()

	t.Run("view", func(t *testing.T) {
		m := newMachine(t, alibabacloud.Name, nil)
		raw, err := env.kube.Discovery().RESTClient().Get().AbsPath("/apis/infraops.michael.io/v1/nodes/" + m.node).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var n infraopsv1.Node
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatal(err)
		}
		if c := n.Status.Cloud; c == nil || c.Provider != alibabacloud.Name || c.Region != "cn-hangzhou" || c.InstanceID != m.instanceID {
			t.Fatalf("the view resolves %s as %s", m.node, raw)
		}
	})

	t.Run("soft", func(t *testing.T) {
		m := newMachine(t, alibabacloud.Name, nil)
		a, err := restart(t, m.node, `{"reason":"e2e: kernel update"}`)
		if err != nil {
			t.Fatal(err)
		}
		calls := ecsCalls(t, m, "RebootInstance")
		if len(calls) != 1 || calls[0].ForceStop || calls[0].DryRun || calls[0].Error != "" ||
			calls[0].RequestID != a.CloudRequestID || a.Mode != "soft" || a.Cloud.Provider != alibabacloud.Name || calls[0].AccessKeyID == "" {
			t.Fatalf("want one soft RebootInstance matching %+v; calls %+v", a, calls)
		}
	})

	t.Run("hard", func(t *testing.T) {
		m := newMachine(t, alibabacloud.Name, nil)
		a, err := restart(t, m.node, `{"mode":"hard"}`)
		if err != nil {
			t.Fatal(err)
		}
		calls := ecsCalls(t, m, "RebootInstance")
		if len(calls) != 1 || !calls[0].ForceStop || reboots(t, m) != 1 || a.Mode != "hard" {
			t.Fatalf("want one RebootInstance with ForceStop; answer %+v, calls %+v", a, calls)
		}
	})

	t.Run("dry run", func(t *testing.T) {
		m := newMachine(t, alibabacloud.Name, nil)
		a, err := restart(t, m.node, `{"dryRun":["All"]}`)
		if err != nil {
			t.Fatal(err)
		}
		calls := cloudCalls(t, m)
		if len(calls) != 1 || calls[0].Action != "RebootInstance" || !calls[0].DryRun || calls[0].Error != "DryRunOperation" ||
			!a.DryRun || a.CloudRequestID != calls[0].RequestID || reboots(t, m) != 0 {
			t.Fatalf("want one RebootInstance DryRun answered DryRunOperation and nothing rebooted; answer %+v, calls %+v", a, calls)
		}
	})

	t.Run("alicloud scheme", func(t *testing.T) {
		id := "i-bp1e2ealicloudscheme01"
		fakePost(t, alibabacloud.Name, "/_fake/instances", map[string]string{"id": id, "region": "cn-shanghai"})
		node := "e2e-alicloud-scheme"
		if _, err := env.cluster.CreateNode(ctx, node, "alicloud://cn-shanghai."+id, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.kube.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })
		if err := env.cluster.SetNodeStatus(ctx, node, true, "boot-"+node); err != nil {
			t.Fatal(err)
		}
		a, err := restart(t, node, "")
		if err != nil || a.Cloud.Region != "cn-shanghai" || a.Cloud.InstanceID != id {
			t.Fatalf("restart of an alicloud:// node: %+v, %v", a, err)
		}
	})

	t.Run("unknown instance", func(t *testing.T) {
		node := "e2e-ecs-unknown"
		id := "i-bp1e2enosuchinstance01"
		if _, err := env.cluster.CreateNode(ctx, node, "cn-hangzhou."+id, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.kube.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })
		_, err := restart(t, node, "")
		wantStatus(t, err, 422, metav1.StatusReasonInvalid, "InvalidInstanceId.NotFound")
		if calls := cloudCalls(t, machine{provider: alibabacloud.Name, instanceID: id}); len(calls) != 1 {
			t.Fatalf("want one call, got %+v", calls)
		}
	})

	t.Run("locked", func(t *testing.T) {
		m := newMachine(t, alibabacloud.Name, nil)
		fakePost(t, alibabacloud.Name, "/_fake/faults", map[string]string{"instanceId": m.instanceID, "kind": fakecloud.FaultLocked})
		_, err := restart(t, m.node, "")
		st := wantStatus(t, err, 409, metav1.StatusReasonConflict, "InstanceLockedForSecurity")
		if !strings.Contains(st.Message, "locked") || reboots(t, m) != 0 {
			t.Fatalf("message %q, %d reboots", st.Message, reboots(t, m))
		}
	})

	// stop (hard, and charging stopped) and start through the aggregator:
	// one ECS call each, status.lastAction followed while the test plays
	// the kubelet.
	t.Run("stop and start", func(t *testing.T) {
		m := newMachine(t, alibabacloud.Name, nil)
		out, err := kubectl(t, "", "", "create", "--raw", actionPath(m.node, "stop"), "-f",
			writeBody(t, `{"mode":"hard","stopCharging":true,"reason":"e2e: night"}`))
		if err != nil {
			t.Fatalf("stop: %v %s", err, out)
		}
		var a infraopsv1.NodeAction
		if err := json.Unmarshal([]byte(out), &a); err != nil || a.Action != "stop" || a.Mode != "hard" {
			t.Fatalf("answer %s (%v)", out, err)
		}
		c := lastCall(t, m)
		if calledAction(t, m, "StopInstance") != 1 || c.Action != "StopInstance" || c.InstanceIDs[0] != m.instanceID ||
			!c.ForceStop || c.StoppedMode != alibabacloud.StoppedModeStopCharging || c.RequestID != a.CloudRequestID {
			t.Fatalf("want one hard StopInstance with StopCharging of %s, got %+v", m.instanceID, cloudCalls(t, m))
		}
		waitPhase(t, m.node, "stop", infraopsv1.ActionRequested)
		if err := env.cluster.SetNodeStatus(ctx, m.node, false, "boot-"+m.node); err != nil {
			t.Fatal(err)
		}
		waitPhase(t, m.node, "stop", infraopsv1.ActionCompleted)

		// A restart of the stopped instance (the stop's cooldown refuses
		// only another stop): 409 naming its state.
		_, err = restart(t, m.node, "")
		if st := wantStatus(t, err, 409, metav1.StatusReasonConflict, "IncorrectInstanceStatus"); !strings.Contains(st.Message, "is Stopped") {
			t.Fatalf("message %q", st.Message)
		}

		out, err = kubectl(t, "", "", "create", "--raw", actionPath(m.node, "start"), "-f", writeBody(t, `{}`))
		if err != nil {
			t.Fatalf("start: %v %s", err, out)
		}
		if c := lastCall(t, m); calledAction(t, m, "StartInstance") != 1 || c.Action != "StartInstance" || c.InstanceIDs[0] != m.instanceID {
			t.Fatalf("want one StartInstance, got %+v", cloudCalls(t, m))
		}
		waitPhase(t, m.node, "start", infraopsv1.ActionRequested)
		if err := env.cluster.SetNodeStatus(ctx, m.node, true, "boot2-"+m.node); err != nil {
			t.Fatal(err)
		}
		waitPhase(t, m.node, "start", infraopsv1.ActionCompleted)
	})

	t.Run("lingjun", func(t *testing.T) {
		m := newMachine(t, alibabacloud.Name, map[string]string{alibabacloud.LabelLingjun: "true"})
		_, err := restart(t, m.node, "")
		st := wantStatus(t, err, 422, metav1.StatusReasonInvalid, "")
		if !strings.Contains(st.Message, "Lingjun") || len(cloudCalls(t, m)) != 0 {
			t.Fatalf("message %q, calls %+v", st.Message, cloudCalls(t, m))
		}
	})
}

// wantStatus asserts err is the server's Status with code and reason and,
// when cloudCode is not empty, that cloud error code among its causes.
func wantStatus(t *testing.T, err error, code int32, reason metav1.StatusReason, cloudCode string) metav1.Status {
	t.Helper()
	se, ok := err.(apierrors.APIStatus)
	if !ok {
		t.Fatalf("want a %d Status, got %v", code, err)
	}
	st := se.Status()
	if st.Code != code || st.Reason != reason {
		t.Fatalf("want %d %s, got %d %s: %s", code, reason, st.Code, st.Reason, st.Message)
	}
	if cloudCode != "" {
		found := false
		if st.Details != nil {
			for _, c := range st.Details.Causes {
				found = found || c.Message == cloudCode || strings.Contains(c.Message, cloudCode)
			}
		}
		if !found {
			t.Fatalf("no cause names %s: %s", cloudCode, fmt.Sprint(st.Details))
		}
	}
	return st
}
