package cloud

import (
	"errors"
	"strings"
	"testing"
)

func TestParseProviderIDValid(t *testing.T) {
	tests := []struct {
		in   string
		want ProviderID
	}{
		{"aws:///us-east-1a/i-0123456789abcdef0", ProviderID{ProviderAWS, "us-east-1a", "i-0123456789abcdef0"}},
		{"aws:///eu-west-3c/i-0a1b2c3d", ProviderID{ProviderAWS, "eu-west-3c", "i-0a1b2c3d"}},
		{"aws:////i-0123456789abcdef0", ProviderID{ProviderAWS, "", "i-0123456789abcdef0"}},
		{"aws:///us-west-2-lax-1a/i-0123456789abcdef0", ProviderID{ProviderAWS, "us-west-2-lax-1a", "i-0123456789abcdef0"}},
		{"aws:///us-east-1-wl1-bos-wlz-1/i-0123456789abcdef0", ProviderID{ProviderAWS, "us-east-1-wl1-bos-wlz-1", "i-0123456789abcdef0"}},
		{"aws:///us-gov-west-1a/i-0123456789abcdef0", ProviderID{ProviderAWS, "us-gov-west-1a", "i-0123456789abcdef0"}},
		{"qcloud:///100003/ins-3ven36lk", ProviderID{ProviderTencentCloud, "100003", "ins-3ven36lk"}},
		{"qcloud:////ins-3ven36lk", ProviderID{ProviderTencentCloud, "", "ins-3ven36lk"}},
		{"tencentcloud:///ap-guangzhou-3/ins-abcd1234", ProviderID{ProviderTencentCloud, "ap-guangzhou-3", "ins-abcd1234"}},
		{"tencentcloud:///100003/ins-abcd1234", ProviderID{ProviderTencentCloud, "100003", "ins-abcd1234"}},
		{"tencentcloud:///ap-shenzhen-fsi-1/ins-00000000", ProviderID{ProviderTencentCloud, "ap-shenzhen-fsi-1", "ins-00000000"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseProviderID(tt.in)
			if err != nil {
				t.Fatalf("ParseProviderID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseProviderID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			again, err := ParseProviderID(got.String())
			if err != nil || again != got {
				t.Fatalf("String() %q does not parse back: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseProviderIDInvalid(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		unsupported bool
		reason      string // a substring of the reason
	}{
		{"empty", "", false, "no spec.providerID"},
		{"no scheme", "i-0123456789abcdef0", false, "not of the form"},
		{"bare scheme", "aws", false, "not of the form"},
		{"scheme only", "aws://", false, "host"},
		{"one segment", "aws:///i-0123456789abcdef0", false, "two path segments"},
		{"no segments", "aws:///", false, "two path segments"},
		{"trailing slash", "aws:///us-east-1a/i-0123456789abcdef0/", false, "two path segments"},
		{"extra segment", "aws:///us-east-1a/extra/i-0123456789abcdef0", false, "two path segments"},
		{"extra leading slash", "aws://///i-0123456789abcdef0", false, "two path segments"},
		{"host", "aws://evil.example.com/us-east-1a/i-0123456789abcdef0", false, "host"},
		{"host only", "aws://us-east-1a/i-0123456789abcdef0", false, "host"},
		{"upper scheme", "AWS:///us-east-1a/i-0123456789abcdef0", false, "lower case"},
		{"mixed scheme", "Aws:///us-east-1a/i-0123456789abcdef0", false, "lower case"},
		{"upper qcloud", "QCLOUD:///100003/ins-3ven36lk", false, "lower case"},
		{"bad scheme chars", "a_ws:///us-east-1a/i-0123456789abcdef0", false, "not of the form"},
		{"leading space", " aws:///us-east-1a/i-0123456789abcdef0", false, "whitespace"},
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
		{"qcloud short id", "qcloud:///100003/ins-3ven36l", false, "CVM instance ID"},
		{"qcloud long id", "qcloud:///100003/ins-3ven36lkx", false, "CVM instance ID"},
		{"qcloud upper id", "qcloud:///100003/ins-3VEN36LK", false, "CVM instance ID"},
		{"qcloud aws id", "qcloud:///100003/i-0123456789abcdef0", false, "CVM instance ID"},
		{"qcloud named zone", "qcloud:///ap-guangzhou-3/ins-3ven36lk", false, "numeric TKE zone"},
		{"tencent bad zone", "tencentcloud:///AP-GUANGZHOU-3/ins-3ven36lk", false, "zone"},
		{"tencent extra", "tencentcloud:///ap-guangzhou-3/x/ins-3ven36lk", false, "two path segments"},
		{"fargate", "aws:///us-east-1a/0123456789abcdef0123456789abcdef/fargate-ip-10-0-1-2.ec2.internal", true, "Fargate"},
		{"fargate no zone", "aws:////0123456789abcdef/fargate-ip-10-0-1-2.ec2.internal", true, "Fargate"},
		{"gce", "gce://my-project/us-central1-a/my-node", true, "not supported"},
		{"azure", "azure:///subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z", true, "not supported"},
		{"kind", "kind://docker/kind/kind-worker", true, "not supported"},
		{"openstack", "openstack:///a3b9c1e2", true, "not supported"},
		{"upper unsupported", "GCE://p/z/n", true, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProviderID(tt.in)
			if err == nil {
				t.Fatalf("ParseProviderID(%q) = %+v, want an error", tt.in, got)
			}
			var ie *InvalidProviderIDError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InvalidProviderIDError", err, err)
			}
			if ie.ProviderID != tt.in {
				t.Errorf("ProviderID = %q, want %q", ie.ProviderID, tt.in)
			}
			if ie.Unsupported != tt.unsupported {
				t.Errorf("Unsupported = %v, want %v (%v)", ie.Unsupported, tt.unsupported, err)
			}
			if !strings.Contains(ie.Reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", ie.Reason, tt.reason)
			}
			if got != (ProviderID{}) {
				t.Errorf("got %+v alongside an error, want the zero value", got)
			}
			if strings.ContainsAny(err.Error(), "\n\x00") {
				t.Errorf("error text carries raw control characters: %q", err.Error())
			}
		})
	}
}

func FuzzParseProviderID(f *testing.F) {
	for _, s := range []string{
		"aws:///us-east-1a/i-0123456789abcdef0",
		"aws:////i-0a1b2c3d",
		"aws:///us-west-2-lax-1a/i-0123456789abcdef0",
		"qcloud:///100003/ins-3ven36lk",
		"tencentcloud:///ap-guangzhou-3/ins-abcd1234",
		"aws:///us-east-1a/0123abcd/fargate-ip-10-0-1-2.ec2.internal",
		"gce://p/z/n",
		"AWS:///us-east-1a/i-0123456789abcdef0",
		"aws://host/z/i-01234567",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProviderID(s)
		if err != nil {
			var ie *InvalidProviderIDError
			if !errors.As(err, &ie) || ie.ProviderID != s || ie.Reason == "" {
				t.Fatalf("ParseProviderID(%q): malformed error %#v", s, err)
			}
			return
		}
		if p.Provider != ProviderAWS && p.Provider != ProviderTencentCloud {
			t.Fatalf("ParseProviderID(%q): provider %q", s, p.Provider)
		}
		if p.InstanceID == "" || strings.ContainsAny(p.InstanceID+p.Zone, "/ :?#") {
			t.Fatalf("ParseProviderID(%q) = %+v: unsafe fields", s, p)
		}
		// The canonical form parses back to the same value, and is the
		// input itself unless the input used TKE's qcloud scheme.
		c := p.String()
		again, err := ParseProviderID(c)
		if err != nil || again != p {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, c, again, err)
		}
		if !strings.HasPrefix(s, "qcloud:") && c != s {
			t.Fatalf("canonical form %q differs from accepted input %q", c, s)
		}
	})
}

func BenchmarkParseProviderID(b *testing.B) {
	inputs := []string{
		"aws:///us-east-1a/i-0123456789abcdef0",
		"qcloud:///100003/ins-3ven36lk",
		"aws:///us-east-1a/0123abcd/fargate-ip-10-0-1-2.ec2.internal",
	}
	for _, in := range inputs {
		b.Run(strings.SplitN(in, ":", 2)[0]+"/"+in[len(in)-8:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ParseProviderID(in)
			}
		})
	}
}
