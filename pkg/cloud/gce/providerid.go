package gce

import (
	"fmt"
	"strings"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// providerID is a GCE providerID taken apart.
type providerID struct {
	Project, Zone, Instance string
}

// String gives the providerID as kubernetes/cloud-provider-gcp writes it.
func (p providerID) String() string { return "gce://" + p.Project + "/" + p.Zone + "/" + p.Instance }

// parseProviderID accepts the one form the GCP cloud controller manager
// (and GKE) writes, gce://<project>/<zone>/<instance>, with each part
// checked against GCE's naming rules so that a mangled ID is refused here
// rather than sent to the API as a path.
func parseProviderID(s string) (providerID, error) {
	bad := func(reason string) (providerID, error) {
		return providerID{}, &cloud.InvalidProviderIDError{ProviderID: s, Reason: reason}
	}
	scheme, rest, err := cloud.SplitProviderID(s)
	if err != nil {
		return providerID{}, err
	}
	if scheme != "gce" {
		return bad(fmt.Sprintf("scheme %q is not gce; expected gce://<project>/<zone>/<instance>", scheme))
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return bad("expected gce://<project>/<zone>/<instance>, three parts after gce://")
	}
	p := providerID{Project: parts[0], Zone: parts[1], Instance: parts[2]}
	switch {
	case p.Project == "":
		return bad("the project is empty; expected gce://<project>/<zone>/<instance>")
	case !validProject(p.Project):
		return bad(fmt.Sprintf("project %q is not a GCP project ID (6 to 30 lower-case letters, digits and hyphens, starting with a letter; optionally after a domain and a colon)", p.Project))
	case !validZone(p.Zone):
		return bad(fmt.Sprintf("zone %q is not a GCE zone name (such as us-central1-a)", p.Zone))
	case !validInstanceName(p.Instance):
		return bad(fmt.Sprintf("instance %q is not a GCE instance name (1 to 63 lower-case letters, digits and hyphens, starting with a letter)", p.Instance))
	}
	return p, nil
}

// validProject accepts a project ID, and the legacy domain-scoped form
// example.com:my-project.
func validProject(s string) bool {
	if domain, id, ok := strings.Cut(s, ":"); ok {
		return validDomain(domain) && validProjectID(id)
	}
	return validProjectID(s)
}

// validProjectID: 6 to 30 characters, lower-case letters, digits and
// hyphens, starting with a letter and not ending with a hyphen.
func validProjectID(s string) bool {
	return len(s) >= 6 && len(s) <= 30 && isLabel(s)
}

func validDomain(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !cloud.IsLower(c) && !cloud.IsDigit(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// validInstanceName is RFC 1035's label, which GCE names follow.
func validInstanceName(s string) bool {
	return len(s) >= 1 && len(s) <= 63 && isLabel(s)
}

// isLabel: lower-case letters, digits and hyphens, starting with a letter,
// not ending with a hyphen.
func isLabel(s string) bool {
	if s == "" || !cloud.IsLower(s[0]) || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !cloud.IsLower(c) && !cloud.IsDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

// validRegion accepts GCE region names: words of letters joined by
// hyphens, the last ending in its number (us-central1, europe-west10,
// northamerica-northeast1, me-central2).
func validRegion(s string) bool {
	if len(s) > 63 || !strings.Contains(s, "-") || !isLabel(s) {
		return false
	}
	words := strings.Split(s, "-")
	for i, w := range words {
		if w == "" {
			return false
		}
		last := i == len(words)-1
		j := 0
		for j < len(w) && cloud.IsLower(w[j]) {
			j++
		}
		switch {
		case j == 0:
			return false
		case !last && j != len(w):
			return false
		case last && (j == len(w) || !cloud.AllDigits(w[j:])):
			return false
		}
	}
	return true
}

// validZone accepts <region>-<suffix>, the suffix a short lower-case word
// (a, b, c, … and the newer ai1a-style ones).
func validZone(s string) bool {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return false
	}
	suffix := s[i+1:]
	return validRegion(s[:i]) && len(suffix) >= 1 && len(suffix) <= 8 && isLabel(suffix)
}

// regionOfZone is the zone minus its last -x: us-central1-a → us-central1.
func regionOfZone(zone string) string {
	if !validZone(zone) {
		return ""
	}
	return zone[:strings.LastIndexByte(zone, '-')]
}
