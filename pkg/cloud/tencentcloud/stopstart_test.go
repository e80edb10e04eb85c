package tencentcloud

import (
	"context"
	"testing"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

// Stop is StopInstances with StopType and StoppedMode KEEP_CHARGING unless
// STOP_CHARGING is asked; the stopped instance refuses a reboot with CVM's
// state error, and Start brings it back.
func TestStopThenStart(t *testing.T) {
	tests := []struct {
		mode                  cloud.Mode
		stopCharging          bool
		stopType, stoppedMode string
	}{
		{"", false, "SOFT", "KEEP_CHARGING"},
		{cloud.ModeSoft, true, "SOFT", "STOP_CHARGING"},
		{cloud.ModeHard, false, "HARD", "KEEP_CHARGING"},
	}
	for _, tt := range tests {
		t.Run(tt.stopType+"-"+tt.stoppedMode, func(t *testing.T) {
			e := setup(t)
			d := e.driver(t)
			res, err := d.Stop(context.Background(), inst(runningID, "ap-guangzhou"), cloud.StopOptions{Mode: tt.mode, StopCharging: tt.stopCharging})
			if err != nil {
				t.Fatal(err)
			}
			c := fakecloud.OneCall(t, e.fake)
			if c.Action != "StopInstances" || c.Region != "ap-guangzhou" || len(c.InstanceIDs) != 1 || c.InstanceIDs[0] != runningID ||
				c.StopType != tt.stopType || c.StoppedMode != tt.stoppedMode || c.Error != "" {
				t.Fatalf("recorded call %+v", c)
			}
			if res.RequestID != c.RequestID || string(res.Mode) != map[string]string{"SOFT": "soft", "HARD": "hard"}[tt.stopType] {
				t.Fatalf("result %+v, the fake answered %q", res, c.RequestID)
			}
			if in, _ := e.fake.Instance(runningID); in.State != "STOPPED" {
				t.Fatalf("state %q after a stop", in.State)
			}
			e.fake.ClearCalls()
			_, err = d.Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{})
			fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrInvalidState, "UnsupportedOperation.InstanceStateStopped")
			e.fake.ClearCalls()
			res, err = d.Start(context.Background(), inst(runningID, "ap-guangzhou"), cloud.StartOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c = fakecloud.OneCall(t, e.fake)
			if c.Action != "StartInstances" || c.InstanceIDs[0] != runningID || res.RequestID != c.RequestID {
				t.Fatalf("recorded call %+v, result %+v", c, res)
			}
			if in, _ := e.fake.Instance(runningID); in.State != "RUNNING" {
				t.Fatalf("state %q after a start", in.State)
			}
		})
	}
}

func TestStopStartStateErrors(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	_, err := d.Stop(context.Background(), inst(stoppedID, "ap-guangzhou"), cloud.StopOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrInvalidState, "UnsupportedOperation.InstanceStateStopped")
	fakecloud.OneCall(t, e.fake)
	e.fake.ClearCalls()
	_, err = d.Start(context.Background(), inst(runningID, "ap-guangzhou"), cloud.StartOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrInvalidState, "UnsupportedOperation.InstanceStateRunning")
	fakecloud.OneCall(t, e.fake)
	e.fake.ClearCalls()
	_, err = d.Start(context.Background(), inst(shanghaiID, "ap-guangzhou"), cloud.StartOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrNotFound, "InvalidInstanceId.NotFound")
}

// CVM has no dry run: DescribeInstances checks the state each action
// needs, and changes nothing.
func TestStopStartDryRun(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	if _, err := d.Stop(context.Background(), inst(runningID, "ap-guangzhou"), cloud.StopOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if c := fakecloud.OneCall(t, e.fake); c.Action != "DescribeInstances" {
		t.Fatalf("recorded call %+v", c)
	}
	e.fake.ClearCalls()
	_, err := d.Stop(context.Background(), inst(stoppedID, "ap-guangzhou"), cloud.StopOptions{DryRun: true})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrInvalidState, "UnsupportedOperation.InstanceStateStopped")
	e.fake.ClearCalls()
	if _, err := d.Start(context.Background(), inst(stoppedID, "ap-guangzhou"), cloud.StartOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	e.fake.ClearCalls()
	_, err = d.Start(context.Background(), inst(runningID, "ap-guangzhou"), cloud.StartOptions{DryRun: true})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrInvalidState, "UnsupportedOperation.InstanceStateRunning")
	if a, _ := e.fake.Instance(runningID); a.State != "RUNNING" {
		t.Fatalf("a dry run changed the state to %s", a.State)
	}
}

func TestStopMalformedAnswers(t *testing.T) {
	for _, kind := range []string{fakecloud.FaultMalformed, fakecloud.FaultNoRequestID} {
		e := setup(t)
		e.fake.SetFault(runningID, fakecloud.Fault{Kind: kind})
		_, err := e.driver(t).Stop(context.Background(), inst(runningID, "ap-guangzhou"), cloud.StopOptions{})
		fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrBadAnswer, "")
	}
}
