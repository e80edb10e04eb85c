package node

// MachineIndex indexes Nodes by the machine their providerID names
// (provider and instance ID), so different spellings of one machine's
// providerID ("aws:///us-east-1a/i-…" and "aws:////i-…") meet. The view's
// Cache keeps it (Cache.ByIndex), from each view's resolved instance.
const MachineIndex = "machine"

func machineKey(provider, instanceID string) string { return provider + "/" + instanceID }
