package node

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation/field"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Actions are the subresources served under nodes/{name}/. A new action
// (stop, start, …) is one more entry here, its options kind in
// pkg/apis/infraops/v1, and a capability interface in pkg/cloud that the
// drivers able to do it implement.
var Actions = []Action{Restart}

// Restart reboots the machine behind a node: POST nodes/{name}/restart.
var Restart = Action{
	Name:       "restart",
	NewOptions: func() Options { return &infraopsv1.RestartOptions{} },
	Validate: func(o Options) field.ErrorList {
		mode := o.(*infraopsv1.RestartOptions).Mode
		switch mode {
		case "", infraopsv1.RestartModeSoft, infraopsv1.RestartModeHard:
			return nil
		}
		return field.ErrorList{field.NotSupported(field.NewPath("mode"), mode,
			[]infraopsv1.RestartMode{infraopsv1.RestartModeSoft, infraopsv1.RestartModeHard})}
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
}
