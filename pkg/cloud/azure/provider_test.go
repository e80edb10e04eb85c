package azure

import (
	"errors"
	"strings"
	"testing"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

func TestParseProviderID(t *testing.T) {
	const s = "0a1b2c3d-0000-1111-2222-333344445555"
	pre := "azure:///subscriptions/" + s + "/resourceGroups/"
	for _, tc := range []struct {
		in, id string
	}{
		// Availability set or standalone VM.
		{pre + "rg/providers/Microsoft.Compute/virtualMachines/vm-1", "/subscriptions/" + s + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"},
		// A VMSS Flex VM has the VM form (its name is the scale set's
		// prefix and a suffix).
		{pre + "mc_rg_aks_westeurope/providers/Microsoft.Compute/virtualMachines/aks-flex-12345678-vmss_0a1b2c3d", "/subscriptions/" + s + "/resourceGroups/mc_rg_aks_westeurope/providers/Microsoft.Compute/virtualMachines/aks-flex-12345678-vmss_0a1b2c3d"},
		// VMSS Uniform (the AKS default).
		{pre + "mc_rg_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-123-vmss/virtualMachines/12", "/subscriptions/" + s + "/resourceGroups/mc_rg_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-123-vmss/virtualMachines/12"},
		// The resource group and subscription in any case, the fixed
		// words too: one canonical ID.
		{"azure:///subscriptions/" + strings.ToUpper(s) + "/resourcegroups/MC_RG_AKS/providers/microsoft.compute/virtualmachines/VM-1", "/subscriptions/" + s + "/resourceGroups/mc_rg_aks/providers/Microsoft.Compute/virtualMachines/VM-1"},
		{pre + "rg.(x)_y-z/providers/Microsoft.Compute/virtualMachines/vm", "/subscriptions/" + s + "/resourceGroups/rg.(x)_y-z/providers/Microsoft.Compute/virtualMachines/vm"},
	} {
		inst, err := Provider.Resolve(tc.in, nil, "")
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if inst.ID != tc.id || inst.Project != s || inst.Provider != Name {
			t.Errorf("%s: %+v, want ID %s", tc.in, inst, tc.id)
		}
		// The ID is a providerID of its own again.
		if again, err := Provider.Resolve("azure://"+inst.ID, nil, ""); err != nil || again != inst {
			t.Errorf("%s: not stable: %+v %v", tc.in, again, err)
		}
	}
	for _, bad := range []string{
		"",
		"azure://",
		"azure:///",
		"azure://host/subscriptions/" + s + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		"azure://subscriptions/" + s + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		"Azure:///subscriptions/" + s + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		"azure:////subscriptions/" + s + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		pre + "rg/providers/Microsoft.Compute/virtualMachines/vm/",
		pre + "rg/providers/Microsoft.Compute/virtualMachines/",
		pre + "rg/providers/Microsoft.Compute/virtualMachines",
		pre + "rg/providers/Microsoft.Network/virtualMachines/vm",
		pre + "rg/providers/Microsoft.Compute/disks/d1",
		// A scale set without its instance: never.
		pre + "rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss",
		pre + "rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines",
		pre + "rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/",
		pre + "rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/x1",
		pre + "rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/1/extra",
		pre + "rg/providers/Microsoft.Compute/virtualMachineScaleSets//virtualMachines/1",
		"azure:///subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		"azure:///subscriptions//resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		pre + "/providers/Microsoft.Compute/virtualMachines/vm",
		pre + "rg./providers/Microsoft.Compute/virtualMachines/vm",
		pre + "rg/providers/Microsoft.Compute/virtualMachines/..",
		pre + "rg/providers/Microsoft.Compute/virtualMachines/vm%2F..",
		pre + "rg/providers/Microsoft.Compute/virtualMachines/vm?x=1",
		pre + "rg/providers/Microsoft.Compute/virtualMachines/vm#f",
		pre + "rg/providers/Microsoft.Compute/virtualMachines/-vm",
	} {
		inst, err := Provider.Resolve(bad, nil, "")
		var ie *cloud.InvalidProviderIDError
		if !errors.As(err, &ie) || ie.Reason == "" {
			t.Errorf("%q: got %+v, %v; want an InvalidProviderIDError", bad, inst, err)
		}
	}
}

func TestRegion(t *testing.T) {
	id := "azure:///subscriptions/0a1b2c3d-0000-1111-2222-333344445555/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
	inst, err := Provider.Resolve(id, map[string]string{cloud.LabelRegion: "westeurope", cloud.LabelZone: "westeurope-2"}, "eastus")
	if err != nil || inst.Region != "westeurope" || inst.Zone != "westeurope-2" {
		t.Fatalf("label: %+v %v", inst, err)
	}
	if inst, _ := Provider.Resolve(id, nil, "chinaeast2"); inst.Region != "chinaeast2" {
		t.Fatalf("default: %+v", inst)
	}
	// No label and no default: the ARM endpoint is global, the node is
	// still acted on.
	if inst, err := Provider.Resolve(id, nil, ""); err != nil || inst.Region != "" {
		t.Fatalf("none: %+v %v", inst, err)
	}
	_, err = Provider.Resolve(id, map[string]string{cloud.LabelRegion: "East US"}, "")
	if !errors.Is(err, cloud.ErrRegionUnknown) {
		t.Fatalf("display name as label: %v", err)
	}
	for _, r := range []string{"eastus", "usgovvirginia", "chinanorth3", "local", "eastus2euap"} {
		if _, ok := Provider.Region(r); !ok {
			t.Errorf("%s refused", r)
		}
	}
	for _, r := range []string{"", "e", "East US", "east-us", "EASTUS", "1eastus"} {
		if _, ok := Provider.Region(r); ok {
			t.Errorf("%q accepted", r)
		}
	}
}

func TestEnvironment(t *testing.T) {
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		endpoint, authorityEnv      string
		arm, audience, authority    string
		disableDiscovery, wantError bool
	}{
		{"", "", "https://management.azure.com", "https://management.core.windows.net/", "https://login.microsoftonline.com/", false, false},
		{"https://management.chinacloudapi.cn", "", "https://management.chinacloudapi.cn", "https://management.core.chinacloudapi.cn/", "https://login.chinacloudapi.cn/", false, false},
		{"https://management.usgovcloudapi.net", "", "https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net/", "https://login.microsoftonline.us/", false, false},
		// A private endpoint in front of public ARM keeps its audience.
		{"https://arm-proxy.corp.example:8443", "", "https://arm-proxy.corp.example:8443", "https://management.core.windows.net/", "https://login.microsoftonline.com/", false, false},
		// Azure Stack Hub or a fake: a custom authority, no discovery.
		{"https://management.local.azurestack.external", "https://adfs.local.azurestack.external/adfs/", "https://management.local.azurestack.external", "https://management.local.azurestack.external", "https://adfs.local.azurestack.external/adfs/", true, false},
		{"", "https://login.microsoftonline.us", "https://management.azure.com", "https://management.core.windows.net/", "https://login.microsoftonline.us/", false, false},
		{"", "http://login.example", "", "", "", false, true},
		{"http://management.azure.com", "", "", "", "", false, true},
	} {
		e, err := environmentFor(tc.endpoint, get(map[string]string{"AZURE_AUTHORITY_HOST": tc.authorityEnv}))
		if (err != nil) != tc.wantError {
			t.Errorf("%s %s: err %v", tc.endpoint, tc.authorityEnv, err)
			continue
		}
		if err != nil {
			continue
		}
		rm := e.cloud.Services["resourceManager"]
		if rm.Endpoint != tc.arm || rm.Audience != tc.audience || e.cloud.ActiveDirectoryAuthorityHost != tc.authority || e.disableInstanceDiscovery != tc.disableDiscovery {
			t.Errorf("%s %s: %+v", tc.endpoint, tc.authorityEnv, e)
		}
	}
}
