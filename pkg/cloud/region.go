package cloud

// Node labels that carry the topology, as every cloud controller manager
// writes them.
const (
	LabelRegion       = "topology.kubernetes.io/region"
	LabelZone         = "topology.kubernetes.io/zone"
	LabelRegionLegacy = "failure-domain.beta.kubernetes.io/region"
	LabelZoneLegacy   = "failure-domain.beta.kubernetes.io/zone"
)

// RegionFromLabels returns the first non-empty region label (the current
// one before the legacy one) and its name; ok is false when there is none.
// The cloud checks the value with its own rules.
func RegionFromLabels(labels map[string]string) (label, value string, ok bool) {
	for _, l := range []string{LabelRegion, LabelRegionLegacy} {
		if v := labels[l]; v != "" {
			return l, v, true
		}
	}
	return "", "", false
}

// ZoneFromLabels returns the first non-empty zone label, or fallback (the
// providerID's zone) when there is none.
func ZoneFromLabels(labels map[string]string, fallback string) string {
	for _, l := range []string{LabelZone, LabelZoneLegacy} {
		if v := labels[l]; v != "" {
			return v
		}
	}
	return fallback
}

// RegionInOrder finds a region the way the clouds whose providerIDs carry
// a zone do: the Node's region label (RegionFromLabels), checked and
// expanded by the cloud's region; else zoneRegion, the region the
// providerID's zone tells ("" when it tells none); else the config's
// default; else a NoRegionError. id names the instance in the errors.
func RegionInOrder(provider, id string, labels map[string]string, region func(string) (string, bool), zoneRegion, defaultRegion string) (string, error) {
	if l, v, ok := RegionFromLabels(labels); ok {
		r, ok := region(v)
		if !ok {
			return "", BadRegionLabelError(provider, id, l, v)
		}
		return r, nil
	}
	if zoneRegion != "" {
		return zoneRegion, nil
	}
	if defaultRegion != "" {
		return defaultRegion, nil
	}
	return "", NoRegionError(provider, id)
}
