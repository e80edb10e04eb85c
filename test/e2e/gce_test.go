package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/gce"
	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

// gceGrants are the tokens the fake's OAuth2 endpoint issued.
func gceGrants(t *testing.T) []fakecloud.TokenGrant {
	t.Helper()
	resp, err := env.fakeHTTP.Get(env.product.GCEURL + "/_fake/tokens")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var g []fakecloud.TokenGrant
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		t.Fatal(err)
	}
	return g
}

// gceCallsOf filters a machine's calls by method.
func gceCallsOf(t *testing.T, m machine, method string) []fakecloud.Call {
	t.Helper()
	var out []fakecloud.Call
	for _, c := range cloudCalls(t, m) {
		if c.Action == method {
			out = append(out, c)
		}
	}
	return out
}

// wantIssuedToken checks that a call carried a bearer token the fake's
// token endpoint issued to the key file's service account: the server
// went through ADC and the JWT-bearer grant, not around them.
func wantIssuedToken(t *testing.T, c fakecloud.Call) {
	t.Helper()
	for _, g := range gceGrants(t) {
		if g.Token == c.Token && g.Email == c.AccessKeyID && strings.Contains(g.Scope, "auth/compute") {
			return
		}
	}
	t.Fatalf("call %+v carried no token the fake issued (grants %+v)", c, gceGrants(t))
}

func TestGCEThroughTheAggregator(t *testing.T) {
	timed(t)

	t.Run("dry run asks TestIamPermissions", func(t *testing.T) {
		m := newMachine(t, gce.Name, nil)
		a, err := restart(t, m.node, `{"dryRun":["All"]}`)
		if err != nil || !a.DryRun || a.Cloud.Provider != gce.Name || a.Cloud.InstanceID != m.instanceID {
			t.Fatalf("dry run: %+v %v", a, err)
		}
		calls := cloudCalls(t, m)
		if len(calls) != 1 || calls[0].Action != fakecloud.GCEMethodTestPermissions ||
			!slices.Equal(calls[0].Permissions, []string{"compute.instances.reset"}) {
			t.Fatalf("want one testIamPermissions for compute.instances.reset, got %+v", calls)
		}
		wantIssuedToken(t, calls[0])
	})

	t.Run("restart is one reset, in the cloud's own mode", func(t *testing.T) {
		m := newMachine(t, gce.Name, nil)
		a, err := restart(t, m.node, `{"reason":"e2e: gce"}`)
		if err != nil {
			t.Fatal(err)
		}
		resets := gceCallsOf(t, m, fakecloud.GCEMethodReset)
		if len(resets) != 1 {
			t.Fatalf("want one reset, got %+v", cloudCalls(t, m))
		}
		c := resets[0]
		if c.Project != gceE2EProject || c.Zone != gceE2EZone || c.InstanceIDs[0] != m.instanceID || c.Error != "" || c.Replay {
			t.Fatalf("reset %+v", c)
		}
		wantIssuedToken(t, c)
		// The answer says which mode was used, and names the operation.
		if a.Mode != "hard" || a.CloudRequestID != c.RequestID || a.Cloud.Region != "europe-west4" || a.Cloud.Zone != gceE2EZone {
			t.Fatalf("answer %+v, call %+v", a, c)
		}
		if len(gceCallsOf(t, m, fakecloud.GCEMethodOperationWait)) == 0 {
			t.Fatalf("the operation was not followed: %+v", cloudCalls(t, m))
		}
	})

	t.Run("soft is refused naming the modes", func(t *testing.T) {
		m := newMachine(t, gce.Name, nil)
		_, err := restart(t, m.node, `{"mode":"soft"}`)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "hard") {
			t.Fatalf("want 422 naming hard, got %v", err)
		}
		if calls := cloudCalls(t, m); len(calls) != 0 {
			t.Fatalf("a refused mode reached the cloud: %+v", calls)
		}
		// Nothing was done, so nothing is locked.
		if _, err := restart(t, m.node, `{"mode":"hard"}`); err != nil {
			t.Fatalf("hard after a refused soft: %v", err)
		}
	})

	t.Run("unknown instance is 422", func(t *testing.T) {
		n := "e2e-gce-ghost"
		if _, err := env.cluster.CreateNode(t.Context(), n, "gce://"+gceE2EProject+"/"+gceE2EZone+"/no-such-vm", nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.kube.CoreV1().Nodes().Delete(t.Context(), n, deleteNow) })
		_, err := restart(t, n, "")
		if s, ok := err.(apierrors.APIStatus); !ok || s.Status().Code != 422 || !strings.Contains(err.Error(), "no such instance") {
			t.Fatalf("want 422 no such instance, got %v", err)
		}
	})

	t.Run("a missing permission is 502 naming it", func(t *testing.T) {
		m := newMachine(t, gce.Name, nil)
		fakePost(t, gce.Name, "/_fake/faults", map[string]string{"instanceId": m.instanceID, "kind": fakecloud.FaultAuth})
		for _, body := range []string{`{"dryRun":["All"]}`, ""} {
			_, err := restart(t, m.node, body)
			if s, ok := err.(apierrors.APIStatus); !ok || s.Status().Code != 502 || !strings.Contains(err.Error(), "compute.instances.reset") {
				t.Fatalf("body %q: want 502 naming compute.instances.reset, got %v", body, err)
			}
		}
		if n := len(gceCallsOf(t, m, fakecloud.GCEMethodReset)); n != 1 {
			t.Fatalf("%d reset calls, want the one refused", n)
		}
	})

	t.Run("the demo GKE node is in the view", func(t *testing.T) {
		out, err := kubectl(t, "", "", "get", "nodes.infraops.michael.io", cluster.DemoNodeGKE)
		if err != nil || !strings.Contains(out, "gce") || !strings.Contains(out, "us-central1") || !strings.Contains(out, cluster.DemoGCEZone) {
			t.Fatalf("%v\n%s", err, out)
		}
	})
}
