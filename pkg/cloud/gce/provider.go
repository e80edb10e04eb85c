package gce

import (
	"context"
	"fmt"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Name is this cloud's config key and provider name.
const Name = "gce"

// Provider is Compute Engine's entry in the table of pkg/cloud/providers.
var Provider cloud.Provider = provider{}

type provider struct{}

func (provider) Name() string      { return Name }
func (provider) Schemes() []string { return []string{"gce"} }

func (provider) NewDriver(ctx context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	return New(ctx, cfg)
}

// Region accepts GCE region names; GCE has no aliases.
func (provider) Region(name string) (string, bool) {
	return name, validRegion(name)
}

// Resolve parses the providerID. The region is the zone's (us-central1-a
// is in us-central1): GCE's calls are zonal, so the providerID's zone is
// what the call uses, and a region label may only agree with it. The
// config's default region is never needed: every GCE providerID has a
// zone.
func (provider) Resolve(providerID string, labels map[string]string, _ string) (cloud.Instance, error) {
	pid, err := parseProviderID(providerID)
	if err != nil {
		return cloud.Instance{}, err
	}
	inst := cloud.Instance{
		Provider: Name, ID: pid.Instance, Zone: pid.Zone, Project: pid.Project,
		Scope:  pid.Project + "/" + pid.Zone,
		Region: regionOfZone(pid.Zone),
	}
	if l, v, ok := cloud.RegionFromLabels(labels); ok {
		if !validRegion(v) {
			return cloud.Instance{}, cloud.BadRegionLabelError(Name, inst.ID, l, v)
		}
		if v != inst.Region {
			return cloud.Instance{}, fmt.Errorf("%w of %s: label %s=%q disagrees with the providerID's zone %s (region %s); fix the label or the providerID",
				cloud.ErrRegionUnknown, inst.ID, l, v, pid.Zone, inst.Region)
		}
	}
	return inst, nil
}
