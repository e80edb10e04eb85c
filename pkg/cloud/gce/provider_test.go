package gce

import (
	"errors"
	"strings"
	"testing"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

func TestProviderIDForms(t *testing.T) {
	good := []struct {
		in                      string
		project, zone, instance string
		region                  string
	}{
		{"gce://my-project-1/us-central1-a/gke-pool-1-abcd", "my-project-1", "us-central1-a", "gke-pool-1-abcd", "us-central1"},
		{"gce://example.com:legacy-proj/europe-west4-b/vm", "example.com:legacy-proj", "europe-west4-b", "vm", "europe-west4"},
		{"gce://p12345/northamerica-northeast1-c/a", "p12345", "northamerica-northeast1-c", "a", "northamerica-northeast1"},
		{"gce://abcdef/europe-west10-a/" + strings.Repeat("x", 63), "abcdef", "europe-west10-a", strings.Repeat("x", 63), "europe-west10"},
		{"gce://my-project-1/us-central1-ai1a/vm-1", "my-project-1", "us-central1-ai1a", "vm-1", "us-central1"},
	}
	for _, tt := range good {
		t.Run(tt.in, func(t *testing.T) {
			inst, err := Provider.Resolve(tt.in, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			want := cloud.Instance{Provider: Name, Project: tt.project, Zone: tt.zone, ID: tt.instance, Region: tt.region, Scope: tt.project + "/" + tt.zone}
			if inst != want {
				t.Fatalf("got %+v, want %+v", inst, want)
			}
			if p, _ := parseProviderID(tt.in); p.String() != tt.in {
				t.Fatalf("String() %q", p.String())
			}
		})
	}
	bad := []string{
		"",
		"gce://",
		"gce:///us-central1-a/vm",           // no project
		"gce://my-project-1//vm",            // no zone
		"gce://my-project-1/us-central1-a/", // no instance
		"gce://my-project-1/us-central1-a",  // two parts
		"gce://my-project-1/us-central1-a/vm/extra",              // four parts
		"gce://My-Project/us-central1-a/vm",                      // upper case
		"gce://short/us-central1-a/vm",                           // project under 6
		"gce://" + strings.Repeat("p", 31) + "/us-central1-a/vm", // over 30
		"gce://1project/us-central1-a/vm",                        // starts with a digit
		"gce://my-project-/us-central1-a/vm",                     // ends with a hyphen
		"gce://my-project-1/us-central1/vm",                      // a region, not a zone
		"gce://my-project-1/uscentral1-a/vm",                     // no region shape
		"gce://my-project-1/us-central-a/vm",                     // region without its number
		"gce://my-project-1/us-central1-a/VM",                    // upper-case instance
		"gce://my-project-1/us-central1-a/1vm",                   // instance starts with a digit
		"gce://my-project-1/us-central1-a/vm-",                   // ends with a hyphen
		"gce://my-project-1/us-central1-a/" + strings.Repeat("x", 64),
		"gce://my-project-1/us-central1-a/vm?x=1",
		"gce://my-project-1/us-central1-a/vm%2Fx",
		"gce://my-project-1/us-central1-a/../../x",
		"gce://my-project-1/us-central1-a/vm name",
		"GCE://my-project-1/us-central1-a/vm",
		"gce:/my-project-1/us-central1-a/vm",
		"aws:///us-east-1a/i-0123456789abcdef0",
		"gce://no-domain:my-project/us-central1-a/vm", // a domain has a dot
	}
	for _, in := range bad {
		t.Run("bad "+in, func(t *testing.T) {
			_, err := Provider.Resolve(in, nil, "")
			var pe *cloud.InvalidProviderIDError
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("%q: got %v, want an *InvalidProviderIDError", in, err)
			}
		})
	}
}

func TestRegionRules(t *testing.T) {
	const pid = "gce://my-project-1/us-central1-a/vm"
	label := func(v string) map[string]string { return map[string]string{cloud.LabelRegion: v} }

	// The zone tells the region; a default region is never used.
	if inst, err := Provider.Resolve(pid, nil, "europe-west1"); err != nil || inst.Region != "us-central1" {
		t.Fatalf("%+v %v", inst, err)
	}
	// A label that agrees is fine.
	if inst, err := Provider.Resolve(pid, label("us-central1"), ""); err != nil || inst.Region != "us-central1" {
		t.Fatalf("%+v %v", inst, err)
	}
	// A label that is not a region, or that names another region than
	// the zone's, is refused as a region problem (fix the label).
	for _, v := range []string{"europe-west1", "gz", "US-CENTRAL1"} {
		if _, err := Provider.Resolve(pid, label(v), ""); !errors.Is(err, cloud.ErrRegionUnknown) {
			t.Errorf("label %q: got %v, want ErrRegionUnknown", v, err)
		}
	}

	for name, want := range map[string]bool{
		"us-central1": true, "europe-west10": true, "northamerica-northeast1": true, "me-central2": true,
		"us-central1-a": false, "us-central": false, "central1": false, "": false, "Us-central1": false, "us--central1": false,
	} {
		if _, ok := Provider.Region(name); ok != want {
			t.Errorf("Region(%q) = %v, want %v", name, ok, want)
		}
	}
	for z, want := range map[string]string{"us-central1-a": "us-central1", "asia-southeast1-c": "asia-southeast1", "us-central1": "", "bogus": ""} {
		if got := regionOfZone(z); got != want {
			t.Errorf("regionOfZone(%q) = %q, want %q", z, got, want)
		}
	}
}
