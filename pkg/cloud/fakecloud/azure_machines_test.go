package fakecloud

import "testing"

// The fake kubelets follow Azure's restarts, power-offs, deallocations
// and starts of a VM or a scale-set instance as they do the other clouds';
// reads (instance view, operation polls) change no machine.
func TestAzureMachineEvents(t *testing.T) {
	id := "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"
	for _, tc := range []struct {
		action string
		want   string
	}{
		{AzureVMAction + "restart", MachineRebooted},
		{AzureVMAction + "powerOff", MachineStopped},
		{AzureVMAction + "deallocate", MachineStopped},
		{AzureVMAction + "start", MachineStarted},
		{AzureVMSSVMAction + "restart", MachineRebooted},
		{AzureVMSSVMAction + "start", MachineStarted},
		{AzureInstanceView, ""},
		{AzureGetOperation, ""},
	} {
		evs := Call{Provider: ProviderAzure, Action: tc.action, InstanceIDs: []string{id}}.MachineEvents()
		got := ""
		if len(evs) == 1 {
			got = evs[0].Kind
		}
		if got != tc.want || len(evs) > 1 {
			t.Errorf("%s: events %+v, want %q", tc.action, evs, tc.want)
		}
	}
}
