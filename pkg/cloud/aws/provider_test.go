package aws

import (
	"errors"
	"strings"
	"testing"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

func TestParseProviderIDValid(t *testing.T) {
	tests := []struct {
		in   string
		want providerID
	}{
		{"aws:///us-east-1a/i-0123456789abcdef0", providerID{"us-east-1a", "i-0123456789abcdef0"}},
		{"aws:///eu-west-3c/i-0a1b2c3d", providerID{"eu-west-3c", "i-0a1b2c3d"}},
		{"aws:////i-0123456789abcdef0", providerID{"", "i-0123456789abcdef0"}},
		{"aws:///us-west-2-lax-1a/i-0123456789abcdef0", providerID{"us-west-2-lax-1a", "i-0123456789abcdef0"}},
		{"aws:///us-east-1-wl1-bos-wlz-1/i-0123456789abcdef0", providerID{"us-east-1-wl1-bos-wlz-1", "i-0123456789abcdef0"}},
		{"aws:///us-gov-west-1a/i-0123456789abcdef0", providerID{"us-gov-west-1a", "i-0123456789abcdef0"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseProviderID(tt.in)
			if err != nil {
				t.Fatalf("parseProviderID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("parseProviderID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			again, err := parseProviderID(got.String())
			if err != nil || again != got || got.String() != tt.in {
				t.Fatalf("String() %q does not parse back: %+v, %v", got.String(), again, err)
			}
		})
	}
}

// The providerIDs this cloud refuses; pkg/cloud/providers runs them again
// through its dispatch, with every other cloud's.
var invalidProviderIDs = []struct {
	Name        string
	In          string
	Unsupported bool
	Reason      string // a substring of the reason
}{
	{"scheme only", "aws://", false, "host"},
	{"one segment", "aws:///i-0123456789abcdef0", false, "two path segments"},
	{"no segments", "aws:///", false, "two path segments"},
	{"trailing slash", "aws:///us-east-1a/i-0123456789abcdef0/", false, "two path segments"},
	{"extra segment", "aws:///us-east-1a/extra/i-0123456789abcdef0", false, "two path segments"},
	{"extra leading slash", "aws://///i-0123456789abcdef0", false, "two path segments"},
	{"host", "aws://evil.example.com/us-east-1a/i-0123456789abcdef0", false, "host"},
	{"host only", "aws://us-east-1a/i-0123456789abcdef0", false, "host"},
	{"trailing space", "aws:///us-east-1a/i-0123456789abcdef0 ", false, "whitespace"},
	{"newline", "aws:///us-east-1a/i-0123456789abcdef0\n", false, "whitespace"},
	{"tab inside", "aws:///us-east-1a/\ti-0123456789abcdef0", false, "whitespace"},
	{"nul", "aws:///us-east-1a/i-0123456789abcdef0\x00", false, "control"},
	{"non-ascii", "aws:///us-east-1a/i-0123456789abcdéf0", false, "non-ASCII"},
	{"too long", "aws:///" + strings.Repeat("a", 300) + "/i-0123456789abcdef0", false, "longer than"},
	{"aws short id", "aws:///us-east-1a/i-0123456", false, "EC2 instance ID"},
	{"aws 9 hex", "aws:///us-east-1a/i-0123456789", false, "EC2 instance ID"},
	{"aws 18 hex", "aws:///us-east-1a/i-0123456789abcdef01", false, "EC2 instance ID"},
	{"aws upper hex", "aws:///us-east-1a/i-0123456789ABCDEF0", false, "EC2 instance ID"},
	{"aws non-hex", "aws:///us-east-1a/i-0123456789abcdefg", false, "EC2 instance ID"},
	{"aws no prefix", "aws:///us-east-1a/0123456789abcdef0", false, "EC2 instance ID"},
	{"aws cvm id", "aws:///us-east-1a/ins-abcd1234", false, "EC2 instance ID"},
	{"aws empty id", "aws:///us-east-1a/", false, "EC2 instance ID"},
	{"aws upper zone", "aws:///US-EAST-1A/i-0123456789abcdef0", false, "availability zone"},
	{"aws zone double hyphen", "aws:///us--east-1a/i-0123456789abcdef0", false, "availability zone"},
	{"aws zone dots", "aws:///../i-0123456789abcdef0", false, "availability zone"},
	{"aws zone query", "aws:///us-east-1a?x=1/i-0123456789abcdef0", false, "availability zone"},
	{"aws numeric zone", "aws:///100003/i-0123456789abcdef0", false, "availability zone"},
	{"fargate", "aws:///us-east-1a/0123456789abcdef0123456789abcdef/fargate-ip-10-0-1-2.ec2.internal", true, "Fargate"},
	{"fargate no zone", "aws:////0123456789abcdef/fargate-ip-10-0-1-2.ec2.internal", true, "Fargate"},
}

func TestParseProviderIDInvalid(t *testing.T) {
	for _, tt := range invalidProviderIDs {
		t.Run(tt.Name, func(t *testing.T) {
			got, err := Provider.Resolve(tt.In, nil, "us-east-1")
			if err == nil {
				t.Fatalf("Resolve(%q) = %+v, want an error", tt.In, got)
			}
			var ie *cloud.InvalidProviderIDError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InvalidProviderIDError", err, err)
			}
			if ie.ProviderID != tt.In || ie.Unsupported != tt.Unsupported || !strings.Contains(ie.Reason, tt.Reason) {
				t.Errorf("got %+v, want unsupported=%v and a reason mentioning %q", ie, tt.Unsupported, tt.Reason)
			}
			if got != (cloud.Instance{}) {
				t.Errorf("got %+v alongside an error, want the zero value", got)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	aws := func(zone string) string { return "aws:///" + zone + "/i-0123456789abcdef0" }
	tests := []struct {
		name       string
		pid        string
		labels     map[string]string
		def        string
		wantRegion string
		wantZone   string
	}{
		{"aws label wins over zone", aws("us-east-1a"), map[string]string{cloud.LabelRegion: "us-west-2"}, "eu-west-1", "us-west-2", "us-east-1a"},
		{"aws legacy label", aws("us-east-1a"), map[string]string{cloud.LabelRegionLegacy: "us-west-2"}, "", "us-west-2", "us-east-1a"},
		{"aws new label before legacy", aws(""), map[string]string{cloud.LabelRegion: "us-west-2", cloud.LabelRegionLegacy: "eu-west-1"}, "", "us-west-2", ""},
		{"aws empty label ignored", aws("us-east-1a"), map[string]string{cloud.LabelRegion: ""}, "", "us-east-1", "us-east-1a"},
		{"aws az", aws("us-east-1a"), nil, "", "us-east-1", "us-east-1a"},
		{"aws gov az", aws("us-gov-west-1b"), nil, "", "us-gov-west-1", "us-gov-west-1b"},
		{"aws iso az", aws("eu-isoe-west-1a"), nil, "", "eu-isoe-west-1", "eu-isoe-west-1a"},
		{"aws local zone", aws("us-west-2-lax-1a"), nil, "", "us-west-2", "us-west-2-lax-1a"},
		{"aws wavelength", aws("us-east-1-wl1-bos-wlz-1"), nil, "", "us-east-1", "us-east-1-wl1-bos-wlz-1"},
		{"aws zone label", aws("us-east-1a"), map[string]string{cloud.LabelZone: "us-east-1b"}, "", "us-east-1", "us-east-1b"},
		{"aws legacy zone label", aws(""), map[string]string{cloud.LabelZoneLegacy: "us-east-1b"}, "us-east-1", "us-east-1", "us-east-1b"},
		{"aws no zone uses default", aws(""), nil, "ap-south-1", "ap-south-1", ""},
		{"aws az id gives no region", aws("use1-az1"), nil, "eu-west-1", "eu-west-1", "use1-az1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Provider.Resolve(tt.pid, tt.labels, tt.def)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			want := cloud.Instance{Provider: Name, ID: "i-0123456789abcdef0", Region: tt.wantRegion, Zone: tt.wantZone}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name    string
		pid     string
		labels  map[string]string
		def     string
		mention string
	}{
		{"aws no zone no label", "aws:////i-0123456789abcdef0", map[string]string{"x": "y"}, "", cloud.LabelRegion},
		{"aws label is a zone", "aws:///us-east-1a/i-0123456789abcdef0", map[string]string{cloud.LabelRegion: "us-east-1a"}, "", "us-east-1a"},
		{"aws label is a tencent alias", "aws:////i-0123456789abcdef0", map[string]string{cloud.LabelRegion: "gz"}, "", "gz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Provider.Resolve(tt.pid, tt.labels, tt.def)
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if !errors.Is(err, cloud.ErrRegionUnknown) {
				t.Errorf("%v does not wrap ErrRegionUnknown", err)
			}
		})
	}
}

func TestRegion(t *testing.T) {
	for r, want := range map[string]bool{
		"us-east-1": true, "us-gov-west-1": true, "eu-isoe-west-1": true,
		"us-east-1a": false, "gz": false, "ap-guangzhou": false, "": false, "US-EAST-1": false,
	} {
		if got, ok := Provider.Region(r); ok != want || (ok && got != r) {
			t.Errorf("Region(%q) = %q, %v; want %v", r, got, ok, want)
		}
	}
}

func TestRegionFromAZ(t *testing.T) {
	for az, want := range map[string]string{
		"us-east-1a":                   "us-east-1",
		"ap-southeast-5b":              "ap-southeast-5",
		"cn-northwest-1c":              "cn-northwest-1",
		"us-west-2-lax-1a":             "us-west-2",
		"us-west-2-den-1a":             "us-west-2",
		"us-east-1-wl1-bos-wlz-1":      "us-east-1",
		"ap-northeast-1-wl1-nrt-wlz-1": "ap-northeast-1",
		"us-east-1":                    "", // a region, not a zone
		"use1-az1":                     "", // an AZ ID
		"us-east-1ab":                  "",
		"us-east-1a-x":                 "",
		"us-east":                      "",
		"us":                           "",
		"":                             "",
		"ap-guangzhou-3":               "",
		"100003":                       "",
	} {
		if got := regionFromAZ(az); got != want {
			t.Errorf("regionFromAZ(%q) = %q, want %q", az, got, want)
		}
	}
}
