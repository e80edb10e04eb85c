package cloud

import (
	"errors"
	"strings"
	"testing"
)

func TestResolveInstance(t *testing.T) {
	aws := func(zone string) ProviderID { return ProviderID{ProviderAWS, zone, "i-0123456789abcdef0"} }
	tc := func(zone string) ProviderID { return ProviderID{ProviderTencentCloud, zone, "ins-3ven36lk"} }
	tests := []struct {
		name       string
		pid        ProviderID
		labels     map[string]string
		def        string
		wantRegion string
		wantZone   string
	}{
		{"aws label wins over zone", aws("us-east-1a"), map[string]string{LabelRegion: "us-west-2"}, "eu-west-1", "us-west-2", "us-east-1a"},
		{"aws legacy label", aws("us-east-1a"), map[string]string{LabelRegionLegacy: "us-west-2"}, "", "us-west-2", "us-east-1a"},
		{"aws new label before legacy", aws(""), map[string]string{LabelRegion: "us-west-2", LabelRegionLegacy: "eu-west-1"}, "", "us-west-2", ""},
		{"aws empty label ignored", aws("us-east-1a"), map[string]string{LabelRegion: ""}, "", "us-east-1", "us-east-1a"},
		{"aws az", aws("us-east-1a"), nil, "", "us-east-1", "us-east-1a"},
		{"aws gov az", aws("us-gov-west-1b"), nil, "", "us-gov-west-1", "us-gov-west-1b"},
		{"aws iso az", aws("eu-isoe-west-1a"), nil, "", "eu-isoe-west-1", "eu-isoe-west-1a"},
		{"aws local zone", aws("us-west-2-lax-1a"), nil, "", "us-west-2", "us-west-2-lax-1a"},
		{"aws wavelength", aws("us-east-1-wl1-bos-wlz-1"), nil, "", "us-east-1", "us-east-1-wl1-bos-wlz-1"},
		{"aws zone label", aws("us-east-1a"), map[string]string{LabelZone: "us-east-1b"}, "", "us-east-1", "us-east-1b"},
		{"aws legacy zone label", aws(""), map[string]string{LabelZoneLegacy: "us-east-1b"}, "us-east-1", "us-east-1", "us-east-1b"},
		{"aws no zone uses default", aws(""), nil, "ap-south-1", "ap-south-1", ""},
		{"aws az id gives no region", aws("use1-az1"), nil, "eu-west-1", "eu-west-1", "use1-az1"},
		{"tc alias gz", tc("100003"), map[string]string{LabelRegion: "gz", LabelZone: "100003"}, "", "ap-guangzhou", "100003"},
		{"tc alias szjr", tc(""), map[string]string{LabelRegion: "szjr"}, "", "ap-shenzhen-fsi", ""},
		{"tc alias bjjr legacy", tc(""), map[string]string{LabelRegionLegacy: "bjjr"}, "", "ap-beijing-fsi", ""},
		{"tc alias sao", tc(""), map[string]string{LabelRegion: "sao"}, "", "sa-saopaulo", ""},
		{"tc alias th", tc(""), map[string]string{LabelRegion: "th"}, "", "ap-bangkok", ""},
		{"tc full name label", tc(""), map[string]string{LabelRegion: "ap-shanghai-fsi"}, "", "ap-shanghai-fsi", ""},
		{"tc zone name", tc("ap-guangzhou-3"), nil, "", "ap-guangzhou", "ap-guangzhou-3"},
		{"tc fsi zone name", tc("ap-shenzhen-fsi-1"), nil, "", "ap-shenzhen-fsi", "ap-shenzhen-fsi-1"},
		{"tc numeric zone uses default", tc("100003"), nil, "ap-shanghai", "ap-shanghai", "100003"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveInstance(tt.pid, tt.labels, tt.def)
			if err != nil {
				t.Fatalf("ResolveInstance: %v", err)
			}
			want := Instance{Provider: tt.pid.Provider, ID: tt.pid.InstanceID, Region: tt.wantRegion, Zone: tt.wantZone}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestResolveInstanceTencentAliases(t *testing.T) {
	// Every alias expands to a full region name that is itself accepted.
	for alias, region := range tencentRegionAliases {
		if !validTencentRegion(region) {
			t.Errorf("alias %q maps to %q, which is not a valid region name", alias, region)
		}
		if validTencentRegion(alias) {
			t.Errorf("alias %q could be mistaken for a full region name", alias)
		}
		got, err := ResolveInstance(ProviderID{ProviderTencentCloud, "", "ins-3ven36lk"}, map[string]string{LabelRegion: alias}, "")
		if err != nil || got.Region != region {
			t.Errorf("alias %q: got %+v, %v; want region %q", alias, got, err, region)
		}
	}
	for alias, region := range map[string]string{
		"gz": "ap-guangzhou", "sh": "ap-shanghai", "bj": "ap-beijing", "cd": "ap-chengdu", "cq": "ap-chongqing",
		"nj": "ap-nanjing", "hk": "ap-hongkong", "sg": "ap-singapore", "jkt": "ap-jakarta", "tpe": "ap-taipei",
		"szjr": "ap-shenzhen-fsi", "shjr": "ap-shanghai-fsi", "bjjr": "ap-beijing-fsi",
	} {
		if tencentRegionAliases[alias] != region {
			t.Errorf("alias %q = %q, want %q", alias, tencentRegionAliases[alias], region)
		}
	}
}

func TestResolveInstanceErrors(t *testing.T) {
	tests := []struct {
		name     string
		pid      ProviderID
		labels   map[string]string
		def      string
		mention  string
		isRegion bool
	}{
		{"tke numeric zone no label", ProviderID{ProviderTencentCloud, "100003", "ins-3ven36lk"}, nil, "", LabelRegion, true},
		{"aws no zone no label", ProviderID{ProviderAWS, "", "i-0123456789abcdef0"}, map[string]string{"x": "y"}, "", LabelRegion, true},
		{"unknown tencent alias", ProviderID{ProviderTencentCloud, "ap-guangzhou-3", "ins-3ven36lk"}, map[string]string{LabelRegion: "zz"}, "", `"zz"`, true},
		{"aws label is a zone", ProviderID{ProviderAWS, "us-east-1a", "i-0123456789abcdef0"}, map[string]string{LabelRegion: "us-east-1a"}, "", "us-east-1a", true},
		{"aws label is a tencent alias", ProviderID{ProviderAWS, "", "i-0123456789abcdef0"}, map[string]string{LabelRegion: "gz"}, "", "gz", true},
		{"unknown provider", ProviderID{"gce", "z", "n"}, nil, "r", "gce", false},
		{"zero providerID", ProviderID{}, nil, "r", "provider", false},
		{"no instance", ProviderID{Provider: ProviderAWS}, nil, "us-east-1", "instance", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveInstance(tt.pid, tt.labels, tt.def)
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if errors.Is(err, ErrRegionUnknown) != tt.isRegion {
				t.Errorf("errors.Is(err, ErrRegionUnknown) = %v, want %v", !tt.isRegion, tt.isRegion)
			}
		})
	}
}

func TestAWSRegionFromAZ(t *testing.T) {
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
		if got := awsRegionFromAZ(az); got != want {
			t.Errorf("awsRegionFromAZ(%q) = %q, want %q", az, got, want)
		}
	}
}

func TestTencentRegionFromZone(t *testing.T) {
	for zone, want := range map[string]string{
		"ap-guangzhou-3":     "ap-guangzhou",
		"ap-shanghai-fsi-2":  "ap-shanghai-fsi",
		"na-siliconvalley-1": "na-siliconvalley",
		"100003":             "",
		"ap-guangzhou":       "",
		"ap-guangzhou-":      "",
		"-3":                 "",
		"a-b-c-d-1":          "",
		"":                   "",
	} {
		if got := tencentRegionFromZone(zone); got != want {
			t.Errorf("tencentRegionFromZone(%q) = %q, want %q", zone, got, want)
		}
	}
}
