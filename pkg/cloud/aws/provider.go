package aws

import (
	"context"
	"fmt"
	"strings"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Name is this cloud's config key and provider name.
const Name = "aws"

// Provider is EC2's entry in the table of pkg/cloud/providers.
var Provider cloud.Provider = provider{}

type provider struct{}

func (provider) Name() string      { return Name }
func (provider) Schemes() []string { return []string{"aws"} }

func (provider) NewDriver(ctx context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	return New(ctx, cfg)
}

var _ cloud.OwnershipChecks = provider{}

// ClusterTagPrefix starts the tag that EKS, eksctl, kops, Karpenter and
// the AWS cloud provider put on a cluster's instances
// (kubernetes.io/cluster/<name>, value owned or shared): the ownership
// check looks for it.
const ClusterTagPrefix = "kubernetes.io/cluster/"

// ValidClusterName implements cloud.OwnershipChecks: the tag key it makes
// must be a valid EC2 tag key (at most 128 characters of letters, digits,
// spaces and + - = . _ : / @).
func (provider) ValidClusterName(name string) error {
	if n := len(ClusterTagPrefix + name); n > 128 {
		return fmt.Errorf("the tag key %s%s would be %d characters, over EC2's 128", ClusterTagPrefix, name, n)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" +-=._:/@", r)) {
			return fmt.Errorf("%q has %q, which an EC2 tag key cannot", name, r)
		}
	}
	if strings.TrimSpace(name) != name || name == "" {
		return fmt.Errorf("%q must not be empty or start or end with a space", name)
	}
	return nil
}

// Region accepts AWS region names only; AWS has no aliases.
func (provider) Region(name string) (string, bool) {
	return name, validRegion(name)
}

// Resolve parses the providerID, then finds the region from, in order:
// the region label (the legacy one second), the availability zone, the
// config's default.
func (p provider) Resolve(providerID string, labels map[string]string, defaultRegion string) (cloud.Instance, error) {
	pid, err := parseProviderID(providerID)
	if err != nil {
		return cloud.Instance{}, err
	}
	inst := cloud.Instance{Provider: Name, ID: pid.InstanceID, Zone: cloud.ZoneFromLabels(labels, pid.Zone)}
	if inst.Region, err = cloud.RegionInOrder(Name, inst.ID, labels, p.Region, regionFromAZ(pid.Zone), defaultRegion); err != nil {
		return cloud.Instance{}, err
	}
	return inst, nil
}

// providerID is an EC2 providerID taken apart.
type providerID struct {
	// Zone is the availability zone as written; may be empty.
	Zone string
	// InstanceID is the EC2 instance ID.
	InstanceID string
}

// String gives the canonical providerID.
func (p providerID) String() string { return "aws:///" + p.Zone + "/" + p.InstanceID }

// parseProviderID accepts, as the AWS cloud controller manager writes them:
//
//	aws:///<az>/i-<8 or 17 hex>      aws:////i-<…>  (no zone)
//
// and refuses EKS Fargate's aws:///<az>/<hex>/fargate-… (no machine).
func parseProviderID(s string) (providerID, error) {
	bad := func(reason string) (providerID, error) {
		return providerID{}, &cloud.InvalidProviderIDError{ProviderID: s, Reason: reason}
	}
	scheme, rest, err := cloud.SplitProviderID(s)
	if err != nil {
		return providerID{}, err
	}
	if scheme != "aws" {
		return bad(fmt.Sprintf("scheme %q is not aws", scheme))
	}
	// The authority (between "//" and the next "/") must be empty: a host
	// there would be ignored by the cloud controller manager's own parser
	// and is a sign of a forged or mangled ID.
	if !strings.HasPrefix(rest, "/") {
		return bad("a host is not allowed after aws://; expected aws:///<zone>/<instance-id>")
	}
	path := rest[1:]
	slashes := strings.Count(path, "/")
	if slashes >= 1 && strings.HasPrefix(path[strings.LastIndexByte(path, '/')+1:], "fargate-") {
		return providerID{}, &cloud.InvalidProviderIDError{ProviderID: s, Unsupported: true,
			Reason: "this is an EKS Fargate pod, not an EC2 machine; it has no instance to reboot"}
	}
	if slashes != 1 {
		return bad("expected exactly two path segments, <zone>/<instance-id>")
	}
	zone, id, _ := strings.Cut(path, "/")
	if zone != "" && !validZoneName(zone) {
		return bad(fmt.Sprintf("zone %q is not an AWS availability zone name", zone))
	}
	if !validInstanceID(id) {
		return bad(fmt.Sprintf("instance ID %q is not an EC2 instance ID (i- and 8 or 17 lower-case hex digits)", id))
	}
	return providerID{Zone: zone, InstanceID: id}, nil
}

// validZoneName accepts lower-case words of letters and digits joined by
// single hyphens, starting with a letter: us-east-1a, us-west-2-lax-1a,
// us-east-1-wl1-bos-wlz-1.
func validZoneName(s string) bool {
	if len(s) > 64 || s == "" || !cloud.IsLower(s[0]) || s[len(s)-1] == '-' || !strings.Contains(s, "-") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case cloud.IsLower(c), cloud.IsDigit(c):
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

func validInstanceID(s string) bool {
	hex, ok := strings.CutPrefix(s, "i-")
	if !ok || (len(hex) != 8 && len(hex) != 17) {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !cloud.IsDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// regionFromAZ reads the <geo>-<direction>-<n> prefix of an AZ name.
// Cutting the last letter is wrong for Local Zones (us-west-2-lax-1a) and
// Wavelength zones (us-east-1-wl1-bos-wlz-1), whose names extend the
// region's. An AZ ID (use1-az1) or anything else unexpected gives "".
func regionFromAZ(az string) string {
	parts := strings.Split(az, "-")
	words := 0
	for words < len(parts) && cloud.AllLower(parts[words]) {
		words++
	}
	if words < 2 || words == len(parts) {
		return ""
	}
	tok := parts[words]
	n := 0
	for n < len(tok) && cloud.IsDigit(tok[n]) {
		n++
	}
	suffix := tok[n:]
	switch {
	case n == 0:
		return ""
	case suffix == "" && words+1 == len(parts):
		// "us-east-1" is a region, not a zone.
		return ""
	case len(suffix) > 1 || (suffix != "" && words+1 != len(parts)):
		return ""
	}
	return strings.Join(parts[:words], "-") + "-" + tok[:n]
}

// validRegion: two or more words of letters, then a number (us-east-1,
// us-gov-west-1, eu-isoe-west-1). A syntax check: it cannot know regions
// opened after this was written.
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 3 || len(r) > 32 {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if !cloud.AllLower(p) {
			return false
		}
	}
	return cloud.AllDigits(parts[len(parts)-1])
}
