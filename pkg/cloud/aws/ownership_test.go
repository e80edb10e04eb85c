package aws

import (
	"context"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

// actions runs each action of the driver once on the instance.
var actions = map[string]func(d *Driver, inst cloud.Instance, dryRun bool) (cloud.Result, error){
	"RebootInstances": func(d *Driver, inst cloud.Instance, dryRun bool) (cloud.Result, error) {
		return d.Reboot(context.Background(), inst, cloud.RebootOptions{DryRun: dryRun})
	},
	"StopInstances": func(d *Driver, inst cloud.Instance, dryRun bool) (cloud.Result, error) {
		return d.Stop(context.Background(), inst, cloud.StopOptions{DryRun: dryRun})
	},
}

// With ownership.clusterName set, every action (dry runs too) is preceded
// by one signed DescribeInstances of the instance, and goes out only if
// the instance carries kubernetes.io/cluster/<name>.
func TestOwnershipCheck(t *testing.T) {
	for action, run := range actions {
		for _, dryRun := range []bool{false, true} {
			t.Run(action, func(t *testing.T) {
				e := setup(t)
				e.cfg.Ownership.ClusterName = "prod"
				if _, err := run(e.driver(t), inst(ownedID, "us-east-1"), dryRun); err != nil {
					t.Fatalf("the cluster's own instance (dry run %v): %v", dryRun, err)
				}
				calls := e.fake.Calls()
				if len(calls) != 2 || calls[0].Action != "DescribeInstances" || calls[0].InstanceIDs[0] != ownedID ||
					calls[0].AccessKeyID != testKey || calls[0].Error != "" || calls[1].Action != action || calls[1].DryRun != dryRun {
					t.Fatalf("want DescribeInstances of %s, then %s: %+v", ownedID, action, calls)
				}

				// An instance without the tag: refused, and nothing but the
				// check was sent.
				e.fake.Reset()
				_, err := run(e.driver(t), inst(runningID, "us-east-1"), dryRun)
				ce := fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrNotOwned, "ClusterTagMissing")
				if !ce.NotSent || ce.RequestID == "" {
					t.Fatalf("want a refusal that says nothing was sent, with the check's request ID: %+v", ce)
				}
				if c := fakecloud.OneCall(t, e.fake); c.Action != "DescribeInstances" {
					t.Fatalf("only the check may go out, got %+v", c)
				}
				if in, _ := e.fake.Instance(runningID); in.Reboots != 0 || in.State != "running" {
					t.Fatalf("an instance not the cluster's was acted on: %+v", in)
				}

				// Another cluster's tag is not this one's.
				e.fake.Reset()
				e.cfg.Ownership.ClusterName = "staging"
				_, err = run(e.driver(t), inst(ownedID, "us-east-1"), dryRun)
				fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrNotOwned, "ClusterTagMissing")
			})
		}
	}
}

// Without ownership.clusterName, no DescribeInstances goes out.
func TestNoOwnershipCheckByDefault(t *testing.T) {
	e := setup(t)
	if _, err := e.driver(t).Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := fakecloud.OneCall(t, e.fake); c.Action != "RebootInstances" {
		t.Fatalf("want the reboot alone, got %+v", c)
	}
}

// A check that fails (unknown instance, throttled, no answer in time) sends
// no action and says so, so the lock is released.
func TestOwnershipCheckFailures(t *testing.T) {
	e := setup(t)
	e.cfg.Ownership.ClusterName = "prod"
	_, err := e.driver(t).Reboot(context.Background(), inst("i-0aaaaaaaaaaaaaaa9", "us-east-1"), cloud.RebootOptions{})
	if ce := fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrNotFound, "InvalidInstanceID.NotFound"); !ce.NotSent {
		t.Fatalf("unknown instance: %+v", ce)
	}
	e.fake.Reset()
	e.fake.SetFault(ownedID, fakecloud.Fault{Kind: fakecloud.FaultThrottle})
	_, err = e.driver(t).Reboot(context.Background(), inst(ownedID, "us-east-1"), cloud.RebootOptions{})
	if ce := fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrThrottled, "RequestLimitExceeded"); !ce.NotSent {
		t.Fatalf("throttled check: %+v", ce)
	}
	e.fake.Reset()
	e.fake.SetFault(ownedID, fakecloud.Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = e.driver(t).Reboot(ctx, inst(ownedID, "us-east-1"), cloud.RebootOptions{})
	if ce := fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrUnavailable, ""); !ce.NotSent {
		t.Fatalf("a check with no answer in time: %+v", ce)
	}
	for _, c := range e.fake.Calls() {
		if c.Action != "DescribeInstances" {
			t.Fatalf("an action went out after a failed check: %+v", c)
		}
	}
}

func TestValidClusterName(t *testing.T) {
	for name, ok := range map[string]bool{
		"prod": true, "eks-prod_1": true, "team@a:b/c.d=e+f": true,
		"": false, " prod": false, "prod*": false, "prød": false,
		string(make([]byte, 107)): false,
	} {
		if err := (provider{}).ValidClusterName(name); (err == nil) != ok {
			t.Errorf("ValidClusterName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}
