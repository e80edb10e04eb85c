package tencentcloud

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
		{"qcloud:///100003/ins-3ven36lk", providerID{"100003", "ins-3ven36lk"}},
		{"qcloud:////ins-3ven36lk", providerID{"", "ins-3ven36lk"}},
		{"tencentcloud:///ap-guangzhou-3/ins-abcd1234", providerID{"ap-guangzhou-3", "ins-abcd1234"}},
		{"tencentcloud:///100003/ins-abcd1234", providerID{"100003", "ins-abcd1234"}},
		{"tencentcloud:///ap-shenzhen-fsi-1/ins-00000000", providerID{"ap-shenzhen-fsi-1", "ins-00000000"}},
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
			// The canonical form parses back to the same value, and is the
			// input itself unless the input used TKE's qcloud scheme.
			again, err := parseProviderID(got.String())
			if err != nil || again != got || (!strings.HasPrefix(tt.in, "qcloud:") && got.String() != tt.in) {
				t.Fatalf("String() %q does not parse back: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseProviderIDInvalid(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		reason string // a substring of the reason
	}{
		{"qcloud short id", "qcloud:///100003/ins-3ven36l", "CVM instance ID"},
		{"qcloud long id", "qcloud:///100003/ins-3ven36lkx", "CVM instance ID"},
		{"qcloud upper id", "qcloud:///100003/ins-3VEN36LK", "CVM instance ID"},
		{"qcloud aws id", "qcloud:///100003/i-0123456789abcdef0", "CVM instance ID"},
		{"qcloud named zone", "qcloud:///ap-guangzhou-3/ins-3ven36lk", "numeric TKE zone"},
		{"qcloud host", "qcloud://100003/ins-3ven36lk", "host"},
		{"qcloud one segment", "qcloud:///ins-3ven36lk", "two path segments"},
		{"tencent bad zone", "tencentcloud:///AP-GUANGZHOU-3/ins-3ven36lk", "zone"},
		{"tencent zone double hyphen", "tencentcloud:///ap--guangzhou-3/ins-3ven36lk", "zone"},
		{"tencent extra", "tencentcloud:///ap-guangzhou-3/x/ins-3ven36lk", "two path segments"},
		{"tencent empty id", "tencentcloud:///ap-guangzhou-3/", "CVM instance ID"},
		{"tencent space", "tencentcloud:///ap-guangzhou-3/ins-3ven36lk ", "whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Provider.Resolve(tt.in, nil, "ap-guangzhou")
			if err == nil {
				t.Fatalf("Resolve(%q) = %+v, want an error", tt.in, got)
			}
			var ie *cloud.InvalidProviderIDError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InvalidProviderIDError", err, err)
			}
			if ie.ProviderID != tt.in || ie.Unsupported || !strings.Contains(ie.Reason, tt.reason) {
				t.Errorf("got %+v, want a malformed ID with a reason mentioning %q", ie, tt.reason)
			}
			if got != (cloud.Instance{}) {
				t.Errorf("got %+v alongside an error, want the zero value", got)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	tc := func(zone string) string { return "tencentcloud:///" + zone + "/ins-3ven36lk" }
	tke := func(zone string) string { return "qcloud:///" + zone + "/ins-3ven36lk" }
	tests := []struct {
		name       string
		pid        string
		labels     map[string]string
		def        string
		wantRegion string
		wantZone   string
	}{
		{"tc alias gz", tke("100003"), map[string]string{cloud.LabelRegion: "gz", cloud.LabelZone: "100003"}, "", "ap-guangzhou", "100003"},
		{"tc alias szjr", tke(""), map[string]string{cloud.LabelRegion: "szjr"}, "", "ap-shenzhen-fsi", ""},
		{"tc alias bjjr legacy", tke(""), map[string]string{cloud.LabelRegionLegacy: "bjjr"}, "", "ap-beijing-fsi", ""},
		{"tc alias sao", tke(""), map[string]string{cloud.LabelRegion: "sao"}, "", "sa-saopaulo", ""},
		{"tc alias th", tke(""), map[string]string{cloud.LabelRegion: "th"}, "", "ap-bangkok", ""},
		{"tc full name label", tke(""), map[string]string{cloud.LabelRegion: "ap-shanghai-fsi"}, "", "ap-shanghai-fsi", ""},
		{"tc zone name", tc("ap-guangzhou-3"), nil, "", "ap-guangzhou", "ap-guangzhou-3"},
		{"tc fsi zone name", tc("ap-shenzhen-fsi-1"), nil, "", "ap-shenzhen-fsi", "ap-shenzhen-fsi-1"},
		{"tc numeric zone uses default", tke("100003"), nil, "ap-shanghai", "ap-shanghai", "100003"},
		{"tc label wins over zone name", tc("ap-guangzhou-3"), map[string]string{cloud.LabelRegion: "sh"}, "", "ap-shanghai", "ap-guangzhou-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Provider.Resolve(tt.pid, tt.labels, tt.def)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			want := cloud.Instance{Provider: Name, ID: "ins-3ven36lk", Region: tt.wantRegion, Zone: tt.wantZone}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestResolveAliases(t *testing.T) {
	// Every alias expands to a full region name that is itself accepted.
	for alias, region := range regionAliases {
		if !validRegion(region) {
			t.Errorf("alias %q maps to %q, which is not a valid region name", alias, region)
		}
		if validRegion(alias) {
			t.Errorf("alias %q could be mistaken for a full region name", alias)
		}
		got, err := Provider.Resolve("qcloud:////ins-3ven36lk", map[string]string{cloud.LabelRegion: alias}, "")
		if err != nil || got.Region != region {
			t.Errorf("alias %q: got %+v, %v; want region %q", alias, got, err, region)
		}
		if r, ok := Provider.Region(alias); !ok || r != region {
			t.Errorf("Region(%q) = %q, %v; want %q", alias, r, ok, region)
		}
	}
	for alias, region := range map[string]string{
		"gz": "ap-guangzhou", "sh": "ap-shanghai", "bj": "ap-beijing", "cd": "ap-chengdu", "cq": "ap-chongqing",
		"nj": "ap-nanjing", "hk": "ap-hongkong", "sg": "ap-singapore", "jkt": "ap-jakarta", "tpe": "ap-taipei",
		"szjr": "ap-shenzhen-fsi", "shjr": "ap-shanghai-fsi", "bjjr": "ap-beijing-fsi",
	} {
		if regionAliases[alias] != region {
			t.Errorf("alias %q = %q, want %q", alias, regionAliases[alias], region)
		}
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
		{"tke numeric zone no label", "qcloud:///100003/ins-3ven36lk", nil, "", cloud.LabelRegion},
		{"unknown tencent alias", "tencentcloud:///ap-guangzhou-3/ins-3ven36lk", map[string]string{cloud.LabelRegion: "zz"}, "", `"zz"`},
		{"aws region label", "qcloud:////ins-3ven36lk", map[string]string{cloud.LabelRegion: "us-east-1"}, "", "us-east-1"},
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

func TestRegionFromZone(t *testing.T) {
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
		if got := regionFromZone(zone); got != want {
			t.Errorf("regionFromZone(%q) = %q, want %q", zone, got, want)
		}
	}
}
