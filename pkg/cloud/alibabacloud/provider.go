package alibabacloud

import (
	"context"
	"fmt"
	"strings"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Name is this cloud's config key and provider name.
const Name = "alibabacloud"

// LabelLingjun marks the Lingjun (PAI) nodes of an ACK cluster: they are
// not ECS instances, so no ECS call can act on them.
const LabelLingjun = "alibabacloud.com/lingjun-worker"

// Provider is Alibaba Cloud ECS's entry in the table of pkg/cloud/providers.
var Provider cloud.Provider = provider{}

type provider struct{}

var _ cloud.BareProviderIDs = provider{}

func (provider) Name() string { return Name }

// Schemes: kubernetes/cloud-provider-alibaba-cloud writes alicloud://.
func (provider) Schemes() []string { return []string{"alicloud"} }

func (provider) NewDriver(ctx context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	return New(ctx, cfg)
}

// OwnsBare implements cloud.BareProviderIDs: ACK's kubelets are started
// with --provider-id=<region>.<instance-id>, with no scheme at all. An ID
// is claimed when what comes before its first dot reads as a region and
// what follows starts as an ECS instance ID, so that Resolve can say
// exactly what is wrong with the rest.
func (provider) OwnsBare(providerID string) bool {
	if strings.Contains(providerID, "://") {
		return false
	}
	region, id, ok := strings.Cut(providerID, ".")
	return ok && validRegion(region) && strings.HasPrefix(id, "i-")
}

// Region accepts Alibaba Cloud region IDs (cn-hangzhou,
// cn-shanghai-finance-1, ap-southeast-1); the cloud has no aliases.
func (provider) Region(name string) (string, bool) {
	return name, validRegion(name)
}

// Resolve parses the providerID, which always names the region: it is
// where the cloud controller manager (or ACK's kubelet flag) read the
// instance from the metadata server, so it wins over the labels and the
// config's default. A region label that disagrees is refused rather than
// guessed between: one of them is wrong, and a call to the wrong region
// would answer "no such instance". Lingjun nodes are refused.
func (provider) Resolve(providerID string, labels map[string]string, _ string) (cloud.Instance, error) {
	pid, err := parseProviderID(providerID)
	if err != nil {
		return cloud.Instance{}, err
	}
	if v, ok := labels[LabelLingjun]; ok && v != "false" {
		return cloud.Instance{}, &cloud.InvalidProviderIDError{ProviderID: providerID, Unsupported: true,
			Reason: "this is a Lingjun (PAI) node (label " + LabelLingjun + "), not an ECS instance; it cannot be acted on through ECS"}
	}
	if l, v, ok := cloud.RegionFromLabels(labels); ok && v != pid.Region {
		return cloud.Instance{}, fmt.Errorf("%w of %s: label %s=%q disagrees with the providerID's region %q; fix the label",
			cloud.ErrRegionUnknown, pid.InstanceID, l, v, pid.Region)
	}
	return cloud.Instance{
		Provider: Name,
		ID:       pid.InstanceID,
		Region:   pid.Region,
		Zone:     cloud.ZoneFromLabels(labels, ""),
	}, nil
}

// providerID is an ECS providerID taken apart.
type providerID struct {
	Region     string
	InstanceID string
}

// String gives the canonical providerID.
func (p providerID) String() string { return "alicloud://" + p.Region + "." + p.InstanceID }

// parseProviderID accepts, as kubernetes/cloud-provider-alibaba-cloud and
// ACK write them:
//
//	alicloud://<region>.<instance-id>
//	<region>.<instance-id>              (ACK's kubelet --provider-id)
//
// split at the first dot (region IDs have none, instance IDs neither).
func parseProviderID(s string) (providerID, error) {
	bad := func(reason string) (providerID, error) {
		return providerID{}, &cloud.InvalidProviderIDError{ProviderID: s, Reason: reason}
	}
	rest := s
	if strings.Contains(s, "://") {
		scheme, r, err := cloud.SplitProviderID(s)
		if err != nil {
			return providerID{}, err
		}
		if scheme != "alicloud" {
			return bad(fmt.Sprintf("scheme %q is not alicloud", scheme))
		}
		rest = r
	} else if err := checkBare(s); err != nil {
		return providerID{}, err
	}
	region, id, ok := strings.Cut(rest, ".")
	switch {
	case !ok || strings.Contains(rest, "/"):
		return bad("expected <region>.<instance-id>, such as alicloud://cn-hangzhou.i-bp1a2b3c4d5e6f7g8h9i")
	case !validRegion(region):
		return bad(fmt.Sprintf("region %q is not an Alibaba Cloud region ID", region))
	case !validInstanceID(id):
		return bad(fmt.Sprintf("instance ID %q is not an ECS instance ID (i- and 8 to 30 lower-case letters or digits)", id))
	}
	return providerID{Region: region, InstanceID: id}, nil
}

// checkBare does for a providerID without a scheme the checks that
// cloud.SplitProviderID does for the others.
func checkBare(s string) error {
	bad := func(reason string) error { return &cloud.InvalidProviderIDError{ProviderID: s, Reason: reason} }
	if s == "" {
		return bad("the Node has no spec.providerID (is the cloud controller manager running?)")
	}
	if len(s) > cloud.MaxProviderIDLen {
		return bad(fmt.Sprintf("longer than %d bytes", cloud.MaxProviderIDLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return bad("contains whitespace, control or non-ASCII characters")
		}
	}
	return nil
}

// validRegion: lower-case words of letters and digits joined by single
// hyphens, the first of letters, at least two (cn-hangzhou,
// cn-shanghai-finance-1, cn-north-2-gov-1). A syntax check: it cannot
// know regions opened after this was written.
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 2 || len(r) > 32 || !cloud.AllLower(parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if !cloud.IsLower(p[i]) && !cloud.IsDigit(p[i]) {
				return false
			}
		}
	}
	return true
}

// validInstanceID: i- and lower-case letters or digits (i-bp67acfmxazb4p…,
// 20 today; older ones are shorter).
func validInstanceID(s string) bool {
	rest, ok := strings.CutPrefix(s, "i-")
	if !ok || len(rest) < 8 || len(rest) > 30 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !cloud.IsDigit(c) && !cloud.IsLower(c) {
			return false
		}
	}
	return true
}
