package fakecloud

import "time"

// What an accepted call does to a machine.
const (
	MachineRebooted = "Rebooted"
	MachineStopped  = "Stopped"
	MachineStarted  = "Started"
)

// MachineEvent is what an accepted call did to one machine. The parts of
// a cloud that live beside its API, such as the kubelet on the machine
// (see package kubelet), follow these.
type MachineEvent struct {
	Provider   string
	Region     string
	InstanceID string
	// Kind is MachineRebooted, MachineStopped or MachineStarted.
	Kind string
	Time time.Time
}

// machineActions are the API actions that change a machine; EC2 and CVM
// name them alike, ECS in the singular, GCE by its REST method names,
// Azure by its operation names (a VM or a scale-set instance alike).
var machineActions = map[string]string{
	"RebootInstances": MachineRebooted,
	"StopInstances":   MachineStopped,
	"StartInstances":  MachineStarted,
	"RebootInstance":  MachineRebooted,
	"StopInstance":    MachineStopped,
	"StartInstance":   MachineStarted,
	GCEMethodReset:    MachineRebooted,
	GCEMethodStop:     MachineStopped,
	GCEMethodStart:    MachineStarted,

	AzureVMAction + "restart":        MachineRebooted,
	AzureVMAction + "powerOff":       MachineStopped,
	AzureVMAction + "deallocate":     MachineStopped,
	AzureVMAction + "start":          MachineStarted,
	AzureVMSSVMAction + "restart":    MachineRebooted,
	AzureVMSSVMAction + "powerOff":   MachineStopped,
	AzureVMSSVMAction + "deallocate": MachineStopped,
	AzureVMSSVMAction + "start":      MachineStarted,
}

// MachineEvents is what the call did to machines: nothing for a refused
// call, a dry run or an action that changes no machine.
func (c Call) MachineEvents() []MachineEvent {
	kind, ok := machineActions[c.Action]
	// A replayed GCE requestId did nothing again.
	if !ok || c.Error != "" || c.DryRun || c.Replay {
		return nil
	}
	out := make([]MachineEvent, 0, len(c.InstanceIDs))
	for _, id := range c.InstanceIDs {
		out = append(out, MachineEvent{Provider: c.Provider, Region: c.Region, InstanceID: id, Kind: kind, Time: c.Time})
	}
	return out
}

// ObserveMachines returns an Options.OnCall that passes every call to
// next (when not nil) and each machine event to observe.
func ObserveMachines(next func(Call), observe func(MachineEvent)) func(Call) {
	return func(c Call) {
		if next != nil {
			next(c)
		}
		for _, e := range c.MachineEvents() {
			observe(e)
		}
	}
}
