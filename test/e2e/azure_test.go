package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/azure"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

// newAzureMachine creates a Node whose VM (scaleSet false) or VMSS Uniform
// instance the fake ARM knows, running. The providerID carries the
// resource group upper-cased: ARM and the server compare it
// case-insensitively.
func newAzureMachine(t *testing.T, scaleSet bool, known bool) machine {
	t.Helper()
	n := nodeSeq.Add(1)
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/e2e-rg/providers/Microsoft.Compute/virtualMachines/e2e-vm-%d", cluster.FakeAzureSubscription, n)
	if scaleSet {
		id = fmt.Sprintf("/subscriptions/%s/resourceGroups/e2e-rg/providers/Microsoft.Compute/virtualMachineScaleSets/e2e-vmss/virtualMachines/%d", cluster.FakeAzureSubscription, n)
	}
	m := machine{provider: azure.Name, instanceID: id, region: "eastus"}
	m.node = strings.NewReplacer("/", "-", "_", "-").Replace(fmt.Sprintf("e2e-%s-%d", strings.ToLower(t.Name()[:min(len(t.Name()), 30)]), n))
	if known {
		azurePost(t, "/_fake/instances", map[string]string{"id": id, "region": m.region})
	}
	pid := "azure://" + strings.Replace(id, "e2e-rg", "E2E-RG", 1)
	if _, err := env.cluster.CreateNode(t.Context(), m.node, pid, map[string]string{"topology.kubernetes.io/region": "eastus"}); err != nil {
		t.Fatal(err)
	}
	if err := env.cluster.SetNodeStatus(t.Context(), m.node, true, "boot-"+m.node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.kube.CoreV1().Nodes().Delete(context.Background(), m.node, metav1.DeleteOptions{}) })
	return m
}

func azurePost(t *testing.T, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := env.fakeHTTP.Post(env.product.AzureURL+path, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("fake azure %s: %s", path, resp.Status)
	}
}

func azureGet(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := env.fakeHTTP.Get(env.product.AzureURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// azureCalls are the fake ARM's calls on one machine (polls included), and
// every scale-set-wide call, whatever its machine.
func azureCalls(t *testing.T, m machine) (mine []fakecloud.Call, scaleSetWide []fakecloud.Call) {
	t.Helper()
	var all []fakecloud.Call
	azureGet(t, "/_fake/calls", &all)
	for _, c := range all {
		if strings.HasPrefix(c.Action, fakecloud.ActionScaleSetWide) {
			scaleSetWide = append(scaleSetWide, c)
		}
		for _, id := range c.InstanceIDs {
			if strings.EqualFold(id, m.instanceID) {
				mine = append(mine, c)
			}
		}
	}
	return mine, scaleSetWide
}

func azureReboots(t *testing.T, m machine) int {
	t.Helper()
	var all []fakecloud.Instance
	azureGet(t, "/_fake/instances", &all)
	for _, in := range all {
		if strings.EqualFold(in.ID, m.instanceID) {
			return in.Reboots
		}
	}
	t.Fatalf("the fake has no instance %s", m.instanceID)
	return 0
}

// actions counts the calls that are neither polls nor reads.
func actions(calls []fakecloud.Call) []fakecloud.Call {
	var out []fakecloud.Call
	for _, c := range calls {
		if c.Action != fakecloud.AzureGetOperation && c.Action != fakecloud.AzureInstanceView {
			out = append(out, c)
		}
	}
	return out
}

func TestAzureThroughTheAggregator(t *testing.T) {
	timed(t)
	for _, tc := range []struct {
		scaleSet bool
		action   string
	}{
		{false, fakecloud.AzureVMAction + "restart"},
		{true, fakecloud.AzureVMSSVMAction + "restart"},
	} {
		m := newAzureMachine(t, tc.scaleSet, true)

		// A dry run reads the instance view and nothing else.
		a, err := restart(t, m.node, `{"dryRun":["All"]}`)
		if err != nil {
			t.Fatalf("dry run of %s: %v", m.node, err)
		}
		calls, _ := azureCalls(t, m)
		if !a.DryRun || len(calls) != 1 || calls[0].Action != fakecloud.AzureInstanceView || azureReboots(t, m) != 0 {
			t.Fatalf("dry run: answer %+v, calls %+v", a, calls)
		}

		// hard: Azure has none; a 422 naming soft, nothing sent.
		_, err = restart(t, m.node, `{"mode":"hard"}`)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "soft") {
			t.Fatalf("hard on %s: %v, want a 422 naming soft", m.node, err)
		}

		a, err = restart(t, m.node, `{"reason":"e2e azure"}`)
		if err != nil {
			t.Fatalf("restart of %s: %v", m.node, err)
		}
		calls, wide := azureCalls(t, m)
		acts := actions(calls)
		if len(acts) != 1 || acts[0].Action != tc.action || acts[0].AccessKeyID != cluster.FakeAzureClientID || len(calls) < 3 {
			t.Fatalf("want one %s with the fake's client's token, then its polls; got %+v", tc.action, calls)
		}
		if len(wide) != 0 {
			t.Fatalf("scale-set-wide calls were sent: %+v", wide)
		}
		if azureReboots(t, m) != 1 || a.Cloud.Provider != azure.Name || a.Mode != "soft" || a.CloudRequestID == "" ||
			!strings.EqualFold(a.Cloud.InstanceID, m.instanceID) || a.Cloud.Region != "eastus" {
			t.Fatalf("answer %+v, reboots %d", a, azureReboots(t, m))
		}
	}

	// A VM ARM does not know: 422.
	unknown := newAzureMachine(t, false, false)
	if _, err := restart(t, unknown.node, ""); !apierrors.IsInvalid(err) {
		t.Fatalf("unknown VM: %v, want 422", err)
	}

	// An operation that ARM accepts and then fails is a failure (502 with
	// the operation's code), never done, and the node stays locked.
	failing := newAzureMachine(t, true, true)
	azurePost(t, "/_fake/faults", map[string]string{"instanceId": failing.instanceID, "kind": fakecloud.FaultOpFailed})
	_, err := restart(t, failing.node, "")
	var se *apierrors.StatusError
	if !errors.As(err, &se) || se.ErrStatus.Code != 502 || !strings.Contains(se.ErrStatus.Message, "operation failed") {
		t.Fatalf("failed operation: %v, want a 502 saying the operation failed", err)
	}
	if azureReboots(t, failing) != 0 {
		t.Fatal("a failed operation rebooted")
	}
	if _, err := restart(t, failing.node, ""); !apierrors.IsConflict(err) {
		t.Fatalf("retry after a failed operation: %v, want 409 (the node stays locked)", err)
	}

	// The demo's nodes resolve, the AKS one with its scale-set instance.
	out, err := kubectl(t, "", "", "get", "nodes.infraops.michael.io", cluster.DemoNodeAKS, cluster.DemoNodeAzureVM, "--no-headers")
	if err != nil || !strings.Contains(out, "azure") || !strings.Contains(out, "virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/0") {
		t.Fatalf("table: %v\n%s", err, out)
	}
}

// azureState is the fake's power state of the machine.
func azureState(t *testing.T, m machine) string {
	t.Helper()
	var all []fakecloud.Instance
	azureGet(t, "/_fake/instances", &all)
	for _, in := range all {
		if strings.EqualFold(in.ID, m.instanceID) {
			return in.State
		}
	}
	t.Fatalf("the fake has no instance %s", m.instanceID)
	return ""
}

// stop and start of an Azure VM (deallocate) and a scale-set instance
// (hard: powerOff with skipShutdown) through the aggregator: one ARM call
// each on that one machine, waited to its end; a second stop meets the
// stop's cooldown, a start does not.
func TestAzureStopAndStartThroughTheAggregator(t *testing.T) {
	timed(t)
	for _, tc := range []struct {
		scaleSet             bool
		mode, stopCall, skip string
		stopped              string
		prefix               string
	}{
		{false, "deallocate", "deallocate", "", "deallocated", fakecloud.AzureVMAction},
		{true, "hard", "powerOff", "skipShutdown", "stopped", fakecloud.AzureVMSSVMAction},
	} {
		m := newAzureMachine(t, tc.scaleSet, true)
		a, err := act(t, m.node, "stop", `{"mode":"`+tc.mode+`","reason":"e2e azure night"}`)
		if err != nil {
			t.Fatalf("stop of %s: %v", m.node, err)
		}
		if a.Action != "stop" || a.Mode != tc.mode || a.CloudRequestID == "" || a.Cloud.Provider != azure.Name {
			t.Fatalf("stop answer %+v", a)
		}
		calls, wide := azureCalls(t, m)
		acts := actions(calls)
		if len(acts) != 1 || acts[0].Action != tc.prefix+tc.stopCall || acts[0].StopType != tc.skip || len(wide) != 0 {
			t.Fatalf("want one %s%s (%q) and nothing scale-set-wide, got %+v / %+v", tc.prefix, tc.stopCall, tc.skip, calls, wide)
		}
		if st := azureState(t, m); st != tc.stopped {
			t.Fatalf("state after the stop %q, want %q (the operation was waited for)", st, tc.stopped)
		}

		_, err = act(t, m.node, "stop", `{"mode":"`+tc.mode+`"}`)
		wantNodeLocked(t, "a second stop", err, "stop")

		a, err = act(t, m.node, "start", `{}`)
		if err != nil {
			t.Fatalf("start of %s in the stop's cooldown: %v", m.node, err)
		}
		calls, _ = azureCalls(t, m)
		acts = actions(calls)
		if a.Action != "start" || len(acts) != 2 || acts[1].Action != tc.prefix+"start" || azureState(t, m) != "running" {
			t.Fatalf("want one %sstart after the stop, got %+v (answer %+v)", tc.prefix, acts, a)
		}
	}

	// deallocate is Azure's: EC2 refuses it with a 422 naming its modes,
	// and nothing is sent.
	ec2 := newMachine(t, cloud.ProviderAWS, nil)
	if _, err := act(t, ec2.node, "stop", `{"mode":"deallocate"}`); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "hard") {
		t.Fatalf("deallocate on EC2: %v, want a 422 naming EC2's modes", err)
	}
	if calls := cloudCalls(t, ec2); len(calls) != 0 {
		t.Fatalf("calls were sent: %+v", calls)
	}
}
