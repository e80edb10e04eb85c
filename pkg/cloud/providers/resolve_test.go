package providers

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/alibabacloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/aws"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/azure"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/gce"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/tencentcloud"
)

// fixedRegion is a config default region, so that these tests are about
// the providerID and not the region; the region rules have their own
// tests in each cloud's package.
func fixedRegion(string) string { return "r" }

// Every providerID form of the clouds, through the one dispatch the view
// and the actions use. Region "r" is the config default: a zone in the
// providerID that tells a region would win, so those carry labels.
func TestResolveValid(t *testing.T) {
	tests := []struct {
		in   string
		want cloud.Instance
	}{
		{"aws:///us-east-1a/i-0123456789abcdef0", cloud.Instance{Provider: cloud.ProviderAWS, Zone: "us-east-1a", ID: "i-0123456789abcdef0", Region: "r"}},
		{"aws:///eu-west-3c/i-0a1b2c3d", cloud.Instance{Provider: cloud.ProviderAWS, Zone: "eu-west-3c", ID: "i-0a1b2c3d", Region: "r"}},
		{"aws:////i-0123456789abcdef0", cloud.Instance{Provider: cloud.ProviderAWS, Zone: "", ID: "i-0123456789abcdef0", Region: "r"}},
		{"aws:///us-west-2-lax-1a/i-0123456789abcdef0", cloud.Instance{Provider: cloud.ProviderAWS, Zone: "us-west-2-lax-1a", ID: "i-0123456789abcdef0", Region: "r"}},
		{"aws:///us-east-1-wl1-bos-wlz-1/i-0123456789abcdef0", cloud.Instance{Provider: cloud.ProviderAWS, Zone: "us-east-1-wl1-bos-wlz-1", ID: "i-0123456789abcdef0", Region: "r"}},
		{"aws:///us-gov-west-1a/i-0123456789abcdef0", cloud.Instance{Provider: cloud.ProviderAWS, Zone: "us-gov-west-1a", ID: "i-0123456789abcdef0", Region: "r"}},
		{"qcloud:///100003/ins-3ven36lk", cloud.Instance{Provider: cloud.ProviderTencentCloud, Zone: "100003", ID: "ins-3ven36lk", Region: "r"}},
		{"qcloud:////ins-3ven36lk", cloud.Instance{Provider: cloud.ProviderTencentCloud, Zone: "", ID: "ins-3ven36lk", Region: "r"}},
		{"tencentcloud:///ap-guangzhou-3/ins-abcd1234", cloud.Instance{Provider: cloud.ProviderTencentCloud, Zone: "ap-guangzhou-3", ID: "ins-abcd1234", Region: "r"}},
		{"tencentcloud:///100003/ins-abcd1234", cloud.Instance{Provider: cloud.ProviderTencentCloud, Zone: "100003", ID: "ins-abcd1234", Region: "r"}},
		{"tencentcloud:///ap-shenzhen-fsi-1/ins-00000000", cloud.Instance{Provider: cloud.ProviderTencentCloud, Zone: "ap-shenzhen-fsi-1", ID: "ins-00000000", Region: "r"}},
		{"alicloud://cn-hangzhou.i-bp67acfmxazb4ph5xyz0", cloud.Instance{Provider: alibabacloud.Name, ID: "i-bp67acfmxazb4ph5xyz0"}},
		// ACK's kubelets write the same without a scheme.
		{"cn-hangzhou.i-bp67acfmxazb4ph5xyz0", cloud.Instance{Provider: alibabacloud.Name, ID: "i-bp67acfmxazb4ph5xyz0"}},
		{"gce://my-project/us-central1-a/gke-pool-1-abcd", cloud.Instance{Provider: gce.Name, Project: "my-project", Zone: "us-central1-a", ID: "gke-pool-1-abcd", Region: "us-central1", Scope: "my-project/us-central1-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Resolve(tt.in, map[string]string{cloud.LabelRegion: regionOf(tt.want.Provider)}, fixedRegion)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.in, err)
			}
			tt.want.Region = regionOf(tt.want.Provider)
			if got != tt.want {
				t.Fatalf("Resolve(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// regionOf is a valid region label of each cloud of the tests.
func regionOf(provider string) string {
	switch provider {
	case cloud.ProviderAWS:
		return "us-east-1"
	case cloud.ProviderTencentCloud:
		return "ap-guangzhou"
	case alibabacloud.Name:
		return "cn-hangzhou"
	case gce.Name:
		return "us-central1"
	}
	return ""
}

func TestResolveInvalid(t *testing.T) {
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
		{"gce no project", "gce:///us-central1-a/my-node", false, "project"},
		{"gce region for a zone", "gce://my-project/us-central1/my-node", false, "zone"},
		{"azure bad subscription", "azure:///subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z", false, "subscription ID"},
		{"azure whole scale set", "azure:///subscriptions/0a1b2c3d-0000-1111-2222-333344445555/resourceGroups/y/providers/Microsoft.Compute/virtualMachineScaleSets/z", false, "never acted on"},
		{"kind", "kind://docker/kind/kind-worker", true, "not supported"},
		{"openstack", "openstack:///a3b9c1e2", true, "not supported"},
		{"upper unsupported", "KIND://docker/kind/kind-worker", true, "not supported"},
		{"upper gce", "GCE://my-project/us-central1-a/my-node", false, "lower case"},
		{"no instance", "aws:///us-east-1a/", false, "EC2 instance ID"},
		{"alicloud cvm id", "alicloud://cn-hangzhou.ins-abcd1234", false, "ECS instance ID"},
		{"alicloud no dot", "alicloud://cn-hangzhou", false, "<region>.<instance-id>"},
		{"alicloud path", "alicloud:///cn-hangzhou.i-bp67acfmxazb4ph5xyz0", false, "<region>.<instance-id>"},
		{"upper alicloud", "ALICLOUD://cn-hangzhou.i-bp67acfmxazb4ph5xyz0", false, "lower case"},
		{"bare short id", "cn-hangzhou.i-x", false, "ECS instance ID"},
		{"bare second dot", "cn-hangzhou.i-bp67acfmxazb4ph5xyz0.x", false, "ECS instance ID"},
		{"bare hostname", "ip-10-0-1-2.ec2.internal", false, "not of the form"},
		{"bare word", "node-1", false, "not of the form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.in, nil, fixedRegion)
			if err == nil {
				t.Fatalf("Resolve(%q) = %+v, want an error", tt.in, got)
			}
			var ie *cloud.InvalidProviderIDError
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
			if got != (cloud.Instance{}) {
				t.Errorf("got %+v alongside an error, want the zero value", got)
			}
			if strings.ContainsAny(err.Error(), "\n\x00") {
				t.Errorf("error text carries raw control characters: %q", err.Error())
			}
			if errors.Is(err, cloud.ErrRegionUnknown) {
				t.Errorf("a providerID error reads as a region error: %v", err)
			}
		})
	}
}

// A Lingjun node of ACK is no ECS machine, whichever form its
// providerID takes.
func TestResolveLingjun(t *testing.T) {
	for _, pid := range []string{"alicloud://cn-wulanchabu.i-bp67acfmxazb4ph5xyz0", "cn-wulanchabu.i-bp67acfmxazb4ph5xyz0"} {
		_, err := Resolve(pid, map[string]string{alibabacloud.LabelLingjun: "true"}, fixedRegion)
		var ie *cloud.InvalidProviderIDError
		if !errors.As(err, &ie) || !ie.Unsupported {
			t.Errorf("Resolve(%q) of a Lingjun node: %v, want unsupported", pid, err)
		}
	}
}

func TestResolveRegionErrors(t *testing.T) {
	for _, pid := range []string{"aws:////i-0123456789abcdef0", "qcloud:///100003/ins-3ven36lk"} {
		_, err := Resolve(pid, nil, func(string) string { return "" })
		if !errors.Is(err, cloud.ErrRegionUnknown) || !strings.Contains(err.Error(), cloud.LabelRegion) {
			t.Errorf("Resolve(%q) with no region anywhere: %v, want an ErrRegionUnknown naming the label", pid, err)
		}
	}
	// A nil default-region function is no default.
	if _, err := Resolve("aws:////i-0123456789abcdef0", nil, nil); !errors.Is(err, cloud.ErrRegionUnknown) {
		t.Errorf("nil defaultRegion: %v", err)
	}
}

// The config default passed to a cloud is its own.
func TestResolveDefaultRegionPerCloud(t *testing.T) {
	def := func(p string) string {
		return map[string]string{cloud.ProviderAWS: "eu-west-1", cloud.ProviderTencentCloud: "ap-shanghai"}[p]
	}
	for pid, want := range map[string]string{"aws:////i-0123456789abcdef0": "eu-west-1", "qcloud:///100003/ins-3ven36lk": "ap-shanghai"} {
		if got, err := Resolve(pid, nil, def); err != nil || got.Region != want {
			t.Errorf("Resolve(%q) = %+v, %v; want region %s", pid, got, err, want)
		}
	}
}

// The table: names and schemes unique, lower case, the names that code
// outside the cloud packages uses agree with the packages', and every
// name has a driver factory.
func TestTable(t *testing.T) {
	names := map[string]bool{}
	for _, p := range All {
		if names[p.Name()] || p.Name() == "" || strings.ToLower(p.Name()) != p.Name() {
			t.Errorf("bad or duplicate name %q", p.Name())
		}
		names[p.Name()] = true
		for _, s := range p.Schemes() {
			if byScheme[s] != p || strings.ToLower(s) != s {
				t.Errorf("scheme %q of %s", s, p.Name())
			}
		}
		if q, ok := Lookup(p.Name()); !ok || q != p {
			t.Errorf("Lookup(%q) = %v, %v", p.Name(), q, ok)
		}
	}
	if aws.Name != cloud.ProviderAWS || tencentcloud.Name != cloud.ProviderTencentCloud {
		t.Errorf("cloud.ProviderAWS/ProviderTencentCloud disagree with the packages: %q, %q", aws.Name, tencentcloud.Name)
	}
	if alibabacloud.Name != fakecloud.ProviderAlibabaCloud || gce.Name != fakecloud.ProviderGCE {
		t.Errorf("fakecloud.ProviderAlibabaCloud/ProviderGCE %q, %q disagree with the packages' %q, %q",
			fakecloud.ProviderAlibabaCloud, fakecloud.ProviderGCE, alibabacloud.Name, gce.Name)
	}
	if azure.Name != fakecloud.ProviderAzure {
		t.Errorf("fakecloud.ProviderAzure %q disagrees with the package's %q", fakecloud.ProviderAzure, azure.Name)
	}
	if _, ok := Lookup("openstack"); ok {
		t.Error("Lookup found a cloud that is not in the table")
	}
	if got := Schemes(); !slices.IsSorted(got) || !slices.Contains(got, "qcloud") || !slices.Contains(got, "aws") {
		t.Errorf("Schemes() = %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("a scheme claimed by two clouds was accepted")
		}
	}()
	bySchemeOf([]cloud.Provider{aws.Provider, aws.Provider})
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"aws:///us-east-1a/i-0123456789abcdef0",
		"aws:////i-0a1b2c3d",
		"aws:///us-west-2-lax-1a/i-0123456789abcdef0",
		"qcloud:///100003/ins-3ven36lk",
		"tencentcloud:///ap-guangzhou-3/ins-abcd1234",
		"aws:///us-east-1a/0123abcd/fargate-ip-10-0-1-2.ec2.internal",
		"gce://p/z/n",
		"alicloud://cn-hangzhou.i-bp67acfmxazb4ph5xyz0",
		"cn-hangzhou.i-bp67acfmxazb4ph5xyz0",
		"cn-hangzhou.i-x",
		"azure:///subscriptions/0a1b2c3d-0000-1111-2222-333344445555/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachines/vm-1",
		"azure:///subscriptions/0a1b2c3d-0000-1111-2222-333344445555/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3",
		"azure:///subscriptions/0a1b2c3d-0000-1111-2222-333344445555/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/",
		"gce://my-project/us-central1-a/gke-pool-1-abcd",
		"gce://example.com:my-project/europe-west4-b/vm",
		"AWS:///us-east-1a/i-0123456789abcdef0",
		"aws://host/z/i-01234567",
		"",
	} {
		f.Add(s, "")
	}
	f.Add("qcloud:///100003/ins-3ven36lk", "gz")
	f.Add("aws:////i-0a1b2c3d", "us-east-1")
	f.Fuzz(func(t *testing.T, s, regionLabel string) {
		labels := map[string]string{cloud.LabelRegion: regionLabel}
		inst, err := Resolve(s, labels, func(string) string { return "" })
		if err != nil {
			var ie *cloud.InvalidProviderIDError
			switch {
			case errors.As(err, &ie):
				if ie.ProviderID != s || ie.Reason == "" {
					t.Fatalf("Resolve(%q): malformed error %#v", s, err)
				}
			case errors.Is(err, cloud.ErrRegionUnknown):
			default:
				t.Fatalf("Resolve(%q): error of no known type %#v", s, err)
			}
			if inst != (cloud.Instance{}) {
				t.Fatalf("Resolve(%q) = %+v alongside %v", s, inst, err)
			}
			return
		}
		p, ok := Lookup(inst.Provider)
		if !ok {
			t.Fatalf("Resolve(%q): provider %q is not in the table", s, inst.Provider)
		}
		scheme, _, hasScheme := strings.Cut(s, "://")
		if bare, ok := p.(cloud.BareProviderIDs); !hasScheme && (!ok || !bare.OwnsBare(s)) {
			t.Fatalf("Resolve(%q) gave %s, which does not claim it as a bare providerID", s, inst.Provider)
		}
		if hasScheme && !slices.Contains(p.Schemes(), scheme) {
			t.Fatalf("Resolve(%q) gave %s, which does not own scheme %q", s, inst.Provider, scheme)
		}
		// An ID may be a path (Azure's ARM resource IDs); the region may
		// be unknown to a cloud whose endpoint is global (Azure). A GCE
		// project may be domain-scoped (example.com:my-project), the one
		// place a colon belongs.
		if inst.ID == "" || strings.ContainsAny(inst.ID, " :?#%") || strings.Contains(inst.ID, "..") ||
			strings.ContainsAny(inst.Zone+inst.Region, "/ :?#") || strings.ContainsAny(inst.Project, "/ ?#") {
			t.Fatalf("Resolve(%q) = %+v: unsafe or missing fields", s, inst)
		}
		if !strings.Contains(strings.ToLower(s), strings.ToLower(inst.ID)) {
			t.Fatalf("Resolve(%q) = %+v: the instance ID is not the providerID's", s, inst)
		}
		if r, ok := p.Region(inst.Region); inst.Region != "" && (!ok || r != inst.Region) {
			t.Fatalf("Resolve(%q) = %+v: region the cloud does not accept", s, inst)
		}
		again, err := Resolve(s, labels, func(string) string { return "" })
		if err != nil || again != inst {
			t.Fatalf("Resolve(%q) is not deterministic: %+v, %v", s, again, err)
		}
	})
}

func BenchmarkResolve(b *testing.B) {
	inputs := []string{
		"aws:///us-east-1a/i-0123456789abcdef0",
		"qcloud:///100003/ins-3ven36lk",
		"aws:///us-east-1a/0123abcd/fargate-ip-10-0-1-2.ec2.internal",
	}
	labels := map[string]string{cloud.LabelRegion: "gz"}
	for _, in := range inputs {
		b.Run(strings.SplitN(in, ":", 2)[0]+"/"+in[len(in)-8:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Resolve(in, labels, fixedRegion)
			}
		})
	}
}
