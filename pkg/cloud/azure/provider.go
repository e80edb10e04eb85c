package azure

import (
	"context"
	"fmt"
	"strings"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Name is this cloud's config key and provider name.
const Name = "azure"

// Provider is Azure's entry in the table of pkg/cloud/providers.
var Provider cloud.Provider = provider{}

type provider struct{}

func (provider) Name() string      { return Name }
func (provider) Schemes() []string { return []string{"azure"} }

func (provider) NewDriver(ctx context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	return New(ctx, cfg)
}

// Region accepts Azure location names as ARM and the cloud controller
// manager write them (eastus, westeurope, chinaeast2, usgovvirginia, an
// Azure Stack Hub's "local"): lower-case letters and digits. Display names
// ("East US") are not location names.
func (provider) Region(name string) (string, bool) {
	return name, validLocation(name)
}

// Resolve parses the providerID and takes the region from the region label
// (the legacy one second) or the config's default. The providerID carries
// no location, and none is needed to act: the ARM endpoint is global and
// the resource ID names the machine. So a node with neither resolves with
// no region (the view shows <none>) rather than being refused.
func (provider) Resolve(providerID string, labels map[string]string, defaultRegion string) (cloud.Instance, error) {
	id, err := parseProviderID(providerID)
	if err != nil {
		return cloud.Instance{}, err
	}
	inst := cloud.Instance{Provider: Name, ID: id.String(), Project: id.Subscription, Zone: cloud.ZoneFromLabels(labels, "")}
	if l, v, ok := cloud.RegionFromLabels(labels); ok {
		if !validLocation(v) {
			return cloud.Instance{}, cloud.BadRegionLabelError(Name, inst.ID, l, v)
		}
		inst.Region = v
		return inst, nil
	}
	inst.Region = defaultRegion
	return inst, nil
}

// resourceID is a VM or a VMSS Uniform instance taken apart.
type resourceID struct {
	// Subscription is the subscription ID, lower case.
	Subscription string
	// ResourceGroup is the resource group, lower case: ARM compares
	// resource group names case-insensitively and the cloud controller
	// manager writes them lower-cased, so one machine has one ID whatever
	// the case it was written in.
	ResourceGroup string
	// VM is the virtual machine's name (availability set, standalone or
	// VMSS Flex), empty for a scale-set instance.
	VM string
	// ScaleSet and InstanceID name a VMSS Uniform instance.
	ScaleSet   string
	InstanceID string
}

func (r resourceID) isScaleSetVM() bool { return r.ScaleSet != "" }

// String is the canonical ARM resource ID, which is also the instance ID
// the view shows and `az vm … --ids` takes.
func (r resourceID) String() string {
	s := "/subscriptions/" + r.Subscription + "/resourceGroups/" + r.ResourceGroup + "/providers/Microsoft.Compute/"
	if r.isScaleSetVM() {
		return s + "virtualMachineScaleSets/" + r.ScaleSet + "/virtualMachines/" + r.InstanceID
	}
	return s + "virtualMachines/" + r.VM
}

// parseProviderID accepts the forms of kubernetes-sigs/cloud-provider-azure:
//
//	azure:///subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>
//	azure:///subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachineScaleSets/<vmss>/virtualMachines/<instance ID>
//
// The first is a VM in an availability set, a standalone VM or a VMSS Flex
// VM; the second a VMSS Uniform instance (the AKS default). The fixed words
// compare case-insensitively, as ARM's do. Anything else, a scale-set
// instance without its instance ID above all, is refused: acting on a scale
// set rather than on one of its instances would act on every instance.
func parseProviderID(s string) (resourceID, error) {
	bad := func(reason string) (resourceID, error) {
		return resourceID{}, &cloud.InvalidProviderIDError{ProviderID: s, Reason: reason}
	}
	scheme, rest, err := cloud.SplitProviderID(s)
	if err != nil {
		return resourceID{}, err
	}
	if scheme != "azure" {
		return bad(fmt.Sprintf("scheme %q is not azure", scheme))
	}
	const form = "azure:///subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<vm> (or …/virtualMachineScaleSets/<scale set>/virtualMachines/<instance ID>)"
	if !strings.HasPrefix(rest, "/") {
		return bad("a host is not allowed after azure://; expected " + form)
	}
	parts := strings.Split(rest[1:], "/")
	if len(parts) < 8 || !strings.EqualFold(parts[0], "subscriptions") || !strings.EqualFold(parts[2], "resourceGroups") ||
		!strings.EqualFold(parts[4], "providers") {
		return bad("expected " + form)
	}
	if !strings.EqualFold(parts[5], "Microsoft.Compute") {
		return bad(fmt.Sprintf("resource provider %q is not Microsoft.Compute", parts[5]))
	}
	id := resourceID{Subscription: strings.ToLower(parts[1]), ResourceGroup: strings.ToLower(parts[3])}
	if !validSubscription(id.Subscription) {
		return bad(fmt.Sprintf("subscription %q is not a subscription ID (a GUID)", parts[1]))
	}
	if !validResourceGroup(parts[3]) {
		return bad(fmt.Sprintf("resource group %q is not a resource group name", parts[3]))
	}
	switch {
	case strings.EqualFold(parts[6], "virtualMachines") && len(parts) == 8:
		if !validName(parts[7]) {
			return bad(fmt.Sprintf("virtual machine name %q is not an Azure VM name", parts[7]))
		}
		id.VM = parts[7]
	case strings.EqualFold(parts[6], "virtualMachineScaleSets"):
		if len(parts) != 10 || !strings.EqualFold(parts[8], "virtualMachines") || parts[9] == "" {
			return bad("a scale set's node must name its instance: …/virtualMachineScaleSets/<scale set>/virtualMachines/<instance ID>; the scale set itself is never acted on")
		}
		if !validName(parts[7]) {
			return bad(fmt.Sprintf("scale set name %q is not an Azure scale set name", parts[7]))
		}
		if !cloud.AllDigits(parts[9]) || len(parts[9]) > 10 {
			return bad(fmt.Sprintf("instance ID %q is not a scale-set instance ID (a number)", parts[9]))
		}
		id.ScaleSet, id.InstanceID = parts[7], parts[9]
	default:
		return bad("expected " + form)
	}
	return id, nil
}

// validSubscription: a GUID, lower case (parseProviderID lowers it).
func validSubscription(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !cloud.IsDigit(c) && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// validResourceGroup follows ARM's rule: 1-90 letters, digits,
// underscores, hyphens, periods and parentheses, not ending in a period.
func validResourceGroup(s string) bool {
	if s == "" || len(s) > 90 || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !cloud.IsLetter(c) && !cloud.IsDigit(c) && !strings.ContainsRune("_-.()", rune(c)) {
			return false
		}
	}
	return true
}

// validName is what Compute allows in VM and scale-set names: 1-80
// letters, digits, underscores, hyphens and periods, starting with a letter,
// digit or underscore, not ending in a period or hyphen. Anything that
// could change the request's path (%, ?, #, ..) is outside it.
func validName(s string) bool {
	if s == "" || len(s) > 80 || s[0] == '.' || s[0] == '-' || s[len(s)-1] == '.' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !cloud.IsLetter(c) && !cloud.IsDigit(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func validLocation(s string) bool {
	if len(s) < 2 || len(s) > 40 || !cloud.IsLower(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !cloud.IsLower(s[i]) && !cloud.IsDigit(s[i]) {
			return false
		}
	}
	return true
}
