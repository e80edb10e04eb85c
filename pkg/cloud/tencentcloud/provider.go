package tencentcloud

import (
	"context"
	"fmt"
	"strings"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Name is this cloud's config key and provider name.
const Name = "tencentcloud"

// Provider is Tencent Cloud CVM's entry in the table of pkg/cloud/providers.
var Provider cloud.Provider = provider{}

type provider struct{}

func (provider) Name() string { return Name }

// Schemes: TKE writes qcloud:///, Tencent's open-source cloud controller
// manager tencentcloud:///.
func (provider) Schemes() []string { return []string{"qcloud", "tencentcloud"} }

func (provider) NewDriver(ctx context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	return New(ctx, cfg)
}

// Region accepts a full region name or one of TKE's short aliases, which
// it expands.
func (provider) Region(name string) (string, bool) {
	if r, ok := regionAliases[name]; ok {
		return r, true
	}
	return name, validRegion(name)
}

// Resolve parses the providerID, then finds the region from, in order:
// the region label (the legacy one second; short aliases such as "gz"
// expanded), a zone name in the providerID (ap-guangzhou-3), the config's
// default. A numeric TKE zone ID gives no region: the mapping is not
// published, and a guessed region would send the call to the wrong place.
func (p provider) Resolve(providerID string, labels map[string]string, defaultRegion string) (cloud.Instance, error) {
	pid, err := parseProviderID(providerID)
	if err != nil {
		return cloud.Instance{}, err
	}
	inst := cloud.Instance{Provider: Name, ID: pid.InstanceID, Zone: cloud.ZoneFromLabels(labels, pid.Zone)}
	if inst.Region, err = cloud.RegionInOrder(Name, inst.ID, labels, p.Region, regionFromZone(pid.Zone), defaultRegion); err != nil {
		return cloud.Instance{}, err
	}
	return inst, nil
}

// providerID is a CVM providerID taken apart.
type providerID struct {
	// Zone is the zone segment as written: a zone name or TKE's numeric
	// zone ID. It may be empty.
	Zone string
	// InstanceID is the CVM instance ID.
	InstanceID string
}

// String gives the canonical providerID. For a TKE "qcloud:///" ID it
// uses the "tencentcloud" scheme, which parses back to the same value.
func (p providerID) String() string { return "tencentcloud:///" + p.Zone + "/" + p.InstanceID }

// parseProviderID accepts:
//
//	qcloud:///<numeric zone id>/ins-<8 alnum>       (TKE)
//	tencentcloud:///<zone>/ins-<8 alnum>            (Tencent's open-source CCM)
func parseProviderID(s string) (providerID, error) {
	bad := func(reason string) (providerID, error) {
		return providerID{}, &cloud.InvalidProviderIDError{ProviderID: s, Reason: reason}
	}
	scheme, rest, err := cloud.SplitProviderID(s)
	if err != nil {
		return providerID{}, err
	}
	if scheme != "qcloud" && scheme != "tencentcloud" {
		return bad(fmt.Sprintf("scheme %q is not qcloud or tencentcloud", scheme))
	}
	if !strings.HasPrefix(rest, "/") {
		return bad("a host is not allowed after " + scheme + "://; expected " + scheme + ":///<zone>/<instance-id>")
	}
	path := rest[1:]
	if strings.Count(path, "/") != 1 {
		return bad("expected exactly two path segments, <zone>/<instance-id>")
	}
	zone, id, _ := strings.Cut(path, "/")
	// TKE writes the numeric zone ID; the open-source CCM writes either.
	if scheme == "qcloud" && zone != "" && !cloud.AllDigits(zone) {
		return bad(fmt.Sprintf("zone %q is not a numeric TKE zone ID", zone))
	}
	if zone != "" && !cloud.AllDigits(zone) && !validZoneName(zone) {
		return bad(fmt.Sprintf("zone %q is neither a Tencent Cloud zone name nor a numeric zone ID", zone))
	}
	if !validInstanceID(id) {
		return bad(fmt.Sprintf("instance ID %q is not a CVM instance ID (ins- and 8 lower-case letters or digits)", id))
	}
	return providerID{Zone: zone, InstanceID: id}, nil
}

// validZoneName accepts lower-case words of letters and digits joined by
// single hyphens, starting with a letter: ap-guangzhou-3.
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
	rest, ok := strings.CutPrefix(s, "ins-")
	if !ok || len(rest) != 8 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !cloud.IsDigit(c) && !cloud.IsLower(c) {
			return false
		}
	}
	return true
}

// regionFromZone drops the zone number: ap-guangzhou-3 → ap-guangzhou,
// ap-shanghai-fsi-1 → ap-shanghai-fsi.
func regionFromZone(zone string) string {
	i := strings.LastIndexByte(zone, '-')
	if i <= 0 || !cloud.AllDigits(zone[i+1:]) {
		return ""
	}
	if r := zone[:i]; validRegion(r) {
		return r
	}
	return ""
}

// validRegion: two to three words of letters (ap-guangzhou,
// ap-shenzhen-fsi, ap-jinan-ec).
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 2 || len(parts) > 3 || len(r) > 32 {
		return false
	}
	for _, p := range parts {
		if !cloud.AllLower(p) {
			return false
		}
	}
	return true
}
