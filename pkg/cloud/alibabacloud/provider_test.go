package alibabacloud

import (
	"errors"
	"strings"
	"testing"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

const testInstance = "i-bp67acfmxazb4ph5xyz0"

func TestResolveForms(t *testing.T) {
	for _, tc := range []struct {
		pid    string
		labels map[string]string
		want   cloud.Instance
	}{
		{"alicloud://cn-hangzhou." + testInstance, nil,
			cloud.Instance{Provider: Name, ID: testInstance, Region: "cn-hangzhou"}},
		// ACK's kubelet flag: no scheme.
		{"cn-hangzhou." + testInstance, map[string]string{cloud.LabelZone: "cn-hangzhou-k", cloud.LabelRegion: "cn-hangzhou"},
			cloud.Instance{Provider: Name, ID: testInstance, Region: "cn-hangzhou", Zone: "cn-hangzhou-k"}},
		{"cn-shanghai-finance-1.i-2zeabcdef1234567", nil,
			cloud.Instance{Provider: Name, ID: "i-2zeabcdef1234567", Region: "cn-shanghai-finance-1"}},
		{"alicloud://ap-southeast-1.i-t4n0abcd", map[string]string{LabelLingjun: "false"},
			cloud.Instance{Provider: Name, ID: "i-t4n0abcd", Region: "ap-southeast-1"}},
	} {
		got, err := Provider.Resolve(tc.pid, tc.labels, "")
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v", tc.pid, got, err, tc.want)
		}
		if !Provider.(cloud.BareProviderIDs).OwnsBare(tc.pid) && !strings.HasPrefix(tc.pid, "alicloud://") {
			t.Errorf("OwnsBare(%q) = false", tc.pid)
		}
	}
}

func TestResolveRefuses(t *testing.T) {
	for _, pid := range []string{
		"alicloud://cn-hangzhou",                    // no instance
		"alicloud://cn-hangzhou/" + testInstance,    // slash
		"alicloud:///cn-hangzhou." + testInstance,   // slash
		"alicloud://cn-hangzhou.ins-abcd1234",       // not ECS
		"alicloud://cn-hangzhou.i-ABCDEFGH1234",     // upper case
		"alicloud://cn-hangzhou.i-abc",              // too short
		"alicloud://CN-hangzhou." + testInstance,    // region
		"alicloud://cn-.i-abcdefgh12",               // region
		"alicloud://hangzhou.i-abcdefgh12",          // one word
		"alicloud://cn-hangzhou.i-abcdefgh12.extra", // a second dot
		"cn-hangzhou.i-abc def12345",                // whitespace
		"cn-hangzhou.i-abcdefgh1é",                  // non-ASCII
		"cn-hangzhou.i-" + strings.Repeat("a", 300), // too long
		"aws://cn-hangzhou." + testInstance,         // someone else's scheme
		"",
	} {
		_, err := Provider.Resolve(pid, nil, "cn-beijing")
		var ie *cloud.InvalidProviderIDError
		if !errors.As(err, &ie) || ie.ProviderID != pid || ie.Reason == "" || ie.Unsupported {
			t.Errorf("Resolve(%q) = %v, want an invalid-providerID error", pid, err)
		}
	}
}

// Lingjun nodes of ACK are not ECS machines: refused as unsupported
// (422), whatever their providerID.
func TestResolveLingjunRefused(t *testing.T) {
	for _, v := range []string{"true", ""} {
		_, err := Provider.Resolve("cn-wulanchabu."+testInstance, map[string]string{LabelLingjun: v}, "")
		var ie *cloud.InvalidProviderIDError
		if !errors.As(err, &ie) || !ie.Unsupported || !strings.Contains(ie.Reason, "Lingjun") {
			t.Errorf("label %q: %v, want unsupported for Lingjun", v, err)
		}
	}
}

func TestResolveRegionLabelDisagrees(t *testing.T) {
	_, err := Provider.Resolve("alicloud://cn-hangzhou."+testInstance, map[string]string{cloud.LabelRegion: "cn-beijing"}, "")
	if !errors.Is(err, cloud.ErrRegionUnknown) || !strings.Contains(err.Error(), "cn-beijing") {
		t.Fatalf("got %v, want a region error naming the label", err)
	}
}

func TestOwnsBare(t *testing.T) {
	for pid, want := range map[string]bool{
		"cn-hangzhou." + testInstance:            true,
		"cn-hangzhou.i-x":                        true, // malformed, but meant as ECS: Resolve says why
		"alicloud://cn-hangzhou." + testInstance: false,
		"cn-hangzhou":                            false,
		"foo.bar":                                false,
		"ip-10-0-1-2.ec2.internal":               false,
		"node-1":                                 false,
		"":                                       false,
	} {
		if got := Provider.(cloud.BareProviderIDs).OwnsBare(pid); got != want {
			t.Errorf("OwnsBare(%q) = %v, want %v", pid, got, want)
		}
	}
}

func TestRegion(t *testing.T) {
	for name, want := range map[string]bool{
		"cn-hangzhou": true, "cn-shanghai-finance-1": true, "cn-north-2-gov-1": true, "ap-southeast-1": true,
		"cn": false, "1-cn": false, "cn--hangzhou": false, "cn-hangzhou-": false, "CN-HANGZHOU": false, "": false,
	} {
		if got, ok := Provider.Region(name); ok != want || got != name {
			t.Errorf("Region(%q) = %q, %v; want %v", name, got, ok, want)
		}
	}
}

func BenchmarkResolveBare(b *testing.B) {
	for b.Loop() {
		_, _ = Provider.Resolve("cn-hangzhou."+testInstance, nil, "")
	}
}
