package node

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation/field"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Actions are the subresources served under nodes/{name}/. A new action
// is one more entry here, its options kind in pkg/apis/infraops/v1, and a
// capability interface in pkg/cloud that the drivers able to do it
// implement (see the README's "Adding an action", which walks through
// stop).
var Actions = []Action{Restart, Stop, Start}

// modeField checks an action's mode field against the API's modes; the
// cloud's own modes are checked by the driver set (a 422 naming them).
func modeField[M ~string](mode M, modes ...M) field.ErrorList {
	if mode == "" {
		return nil
	}
	for _, m := range modes {
		if mode == m {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(field.NewPath("mode"), mode, modes)}
}

// Restart reboots the machine behind a node: POST nodes/{name}/restart.
var Restart = Action{
	Name:       cloud.ActionRestart,
	NewOptions: func() Options { return &infraopsv1.RestartOptions{} },
	Validate: func(o Options) field.ErrorList {
		return modeField(o.(*infraopsv1.RestartOptions).Mode, infraopsv1.RestartModeSoft, infraopsv1.RestartModeHard)
	},
	// The mode asked for; "" until the cloud says which it used (its
	// default), which the answer then carries.
	Mode: func(o Options) string { return string(o.(*infraopsv1.RestartOptions).Mode) },
	Run: func(ctx context.Context, d cloud.Driver, inst cloud.Instance, o Options) (cloud.Result, error) {
		ro := o.(*infraopsv1.RestartOptions)
		return d.Reboot(ctx, inst, cloud.RebootOptions{
			Mode:   cloud.RebootMode(ro.Mode),
			DryRun: ro.IsDryRun(),
		})
	},
	Done: Rebooted,
}

// Stop stops the machine behind a node, keeping its disks and identity:
// POST nodes/{name}/stop. The Node stays and goes NotReady.
var Stop = Action{
	Name:       cloud.ActionStop,
	NewOptions: func() Options { return &infraopsv1.StopOptions{} },
	Validate: func(o Options) field.ErrorList {
		return modeField(o.(*infraopsv1.StopOptions).Mode, infraopsv1.StopModeSoft, infraopsv1.StopModeHard, infraopsv1.StopModeDeallocate)
	},
	Mode: func(o Options) string { return string(o.(*infraopsv1.StopOptions).Mode) },
	Run: func(ctx context.Context, d cloud.Driver, inst cloud.Instance, o Options) (cloud.Result, error) {
		so := o.(*infraopsv1.StopOptions)
		s, ok := d.(cloud.Stopper)
		if !ok {
			return cloud.Result{}, ErrUnsupported
		}
		return s.Stop(ctx, inst, cloud.StopOptions{Mode: cloud.Mode(so.Mode), StopCharging: so.StopCharging, DryRun: so.IsDryRun()})
	},
	Done: WentDown,
}

// Start starts the stopped machine behind a node: POST nodes/{name}/start.
var Start = Action{
	Name:       cloud.ActionStart,
	NewOptions: func() Options { return &infraopsv1.StartOptions{} },
	Run: func(ctx context.Context, d cloud.Driver, inst cloud.Instance, o Options) (cloud.Result, error) {
		s, ok := d.(cloud.Starter)
		if !ok {
			return cloud.Result{}, ErrUnsupported
		}
		return s.Start(ctx, inst, cloud.StartOptions{DryRun: o.(*infraopsv1.StartOptions).IsDryRun()})
	},
	Done: CameUp,
}
