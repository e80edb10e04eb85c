package aws

import (
	"context"
	"testing"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

// Stop is StopInstances (Force for hard) and leaves the instance stopped;
// the stopped instance then refuses a reboot with EC2's state error, and
// Start brings it back to running.
func TestStopThenStart(t *testing.T) {
	for mode, force := range map[cloud.Mode]bool{cloud.ModeSoft: false, cloud.ModeHard: true, "": false} {
		t.Run(string(mode), func(t *testing.T) {
			e := setup(t)
			d := e.driver(t)
			res, err := d.Stop(context.Background(), inst(runningID, "us-east-1"), cloud.StopOptions{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			c := fakecloud.OneCall(t, e.fake)
			if c.Action != "StopInstances" || c.Region != "us-east-1" || len(c.InstanceIDs) != 1 || c.InstanceIDs[0] != runningID ||
				c.Force != force || c.DryRun || c.Error != "" {
				t.Fatalf("recorded call %+v, want Force=%v", c, force)
			}
			if res.RequestID != c.RequestID || res.Mode != map[bool]cloud.Mode{false: cloud.ModeSoft, true: cloud.ModeHard}[force] {
				t.Fatalf("result %+v, the fake answered %q", res, c.RequestID)
			}
			if in, _ := e.fake.Instance(runningID); in.State != "stopped" {
				t.Fatalf("state %q after a stop", in.State)
			}
			e.fake.ClearCalls()
			_, err = d.Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{})
			fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrInvalidState, "IncorrectInstanceState")
			e.fake.ClearCalls()
			res, err = d.Start(context.Background(), inst(runningID, "us-east-1"), cloud.StartOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c = fakecloud.OneCall(t, e.fake)
			if c.Action != "StartInstances" || c.InstanceIDs[0] != runningID || c.Region != "us-east-1" || res.RequestID != c.RequestID || res.Mode != "" {
				t.Fatalf("recorded call %+v, result %+v", c, res)
			}
			if in, _ := e.fake.Instance(runningID); in.State != "running" {
				t.Fatalf("state %q after a start", in.State)
			}
		})
	}
}

// EC2 answers a stop of a stopped instance, and a start of a running one,
// with success and no change: that is a state error here, with EC2's code.
func TestStopStartAlreadyThere(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	_, err := d.Stop(context.Background(), inst(stoppedID, "us-east-1"), cloud.StopOptions{})
	ce := fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrInvalidState, "IncorrectInstanceState")
	if c := fakecloud.OneCall(t, e.fake); c.Error != "" || ce.RequestID != c.RequestID {
		t.Fatalf("call %+v, error %+v", c, ce)
	}
	e.fake.ClearCalls()
	_, err = d.Start(context.Background(), inst(runningID, "us-east-1"), cloud.StartOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrInvalidState, "IncorrectInstanceState")
	fakecloud.OneCall(t, e.fake)
	e.fake.ClearCalls()
	e.fake.SetFault(runningID, fakecloud.Fault{Kind: fakecloud.FaultNotFound})
	_, err = d.Stop(context.Background(), inst(runningID, "us-east-1"), cloud.StopOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrNotFound, "InvalidInstanceID.NotFound")
}

// A dry run is EC2's DryRun: DryRunOperation, nothing changes.
func TestStopStartDryRun(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	if _, err := d.Stop(context.Background(), inst(runningID, "us-east-1"), cloud.StopOptions{Mode: cloud.ModeHard, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if c := fakecloud.OneCall(t, e.fake); c.Action != "StopInstances" || !c.DryRun || !c.Force || c.Error != "DryRunOperation" {
		t.Fatalf("recorded call %+v", c)
	}
	e.fake.ClearCalls()
	if _, err := d.Start(context.Background(), inst(stoppedID, "us-east-1"), cloud.StartOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if c := fakecloud.OneCall(t, e.fake); c.Action != "StartInstances" || !c.DryRun || c.Error != "DryRunOperation" {
		t.Fatalf("recorded call %+v", c)
	}
	if a, _ := e.fake.Instance(runningID); a.State != "running" {
		t.Fatalf("a dry run changed %s to %s", runningID, a.State)
	}
	if b, _ := e.fake.Instance(stoppedID); b.State != "stopped" {
		t.Fatalf("a dry run changed %s to %s", stoppedID, b.State)
	}
}

// A 200 that is not EC2's is never a stop.
func TestStopMalformedAnswer(t *testing.T) {
	e := setup(t)
	e.fake.SetFault(runningID, fakecloud.Fault{Kind: fakecloud.FaultMalformed})
	_, err := e.driver(t).Stop(context.Background(), inst(runningID, "us-east-1"), cloud.StopOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrBadAnswer, "")
}
