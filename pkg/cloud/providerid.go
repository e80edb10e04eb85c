package cloud

import (
	"fmt"
	"strings"
)

// ProviderID is a Node's spec.providerID taken apart.
type ProviderID struct {
	// Provider is ProviderAWS or ProviderTencentCloud (TKE's "qcloud"
	// scheme is folded into the latter).
	Provider string
	// Zone is the zone segment as written: an AWS AZ name, a Tencent zone
	// name or TKE's numeric zone ID. It may be empty.
	Zone string
	// InstanceID is the cloud's instance ID.
	InstanceID string
}

// String gives the canonical providerID. For a TKE "qcloud:///" ID it
// uses the "tencentcloud" scheme, which parses back to the same value.
func (p ProviderID) String() string {
	return p.Provider + ":///" + p.Zone + "/" + p.InstanceID
}

// InvalidProviderIDError says why a providerID cannot name a machine we
// can drive.
type InvalidProviderIDError struct {
	// ProviderID is the rejected input.
	ProviderID string
	// Reason is a sentence fit for a user.
	Reason string
	// Unsupported is true when the ID is well formed but not something we
	// can reboot (another cloud, an EKS Fargate pod); false when it is
	// malformed.
	Unsupported bool
}

func (e *InvalidProviderIDError) Error() string {
	what := "invalid"
	if e.Unsupported {
		what = "unsupported"
	}
	// %q: the input comes from a Node object and ends up in logs.
	return fmt.Sprintf("%s providerID %q: %s", what, e.ProviderID, e.Reason)
}

// maxProviderIDLen bounds the work on hostile input; real IDs are well
// under 100 bytes.
const maxProviderIDLen = 256

// ParseProviderID parses a Node's spec.providerID. Accepted forms:
//
//	aws:///<az>/i-<8 or 17 hex>      aws:////i-<…>  (no zone)
//	qcloud:///<numeric zone id>/ins-<8 alnum>       (TKE)
//	tencentcloud:///<zone>/ins-<8 alnum>            (Tencent's open-source CCM)
//
// Every other input gives an *InvalidProviderIDError.
func ParseProviderID(s string) (ProviderID, error) {
	bad := func(reason string) (ProviderID, error) {
		return ProviderID{}, &InvalidProviderIDError{ProviderID: s, Reason: reason}
	}
	unsupported := func(reason string) (ProviderID, error) {
		return ProviderID{}, &InvalidProviderIDError{ProviderID: s, Reason: reason, Unsupported: true}
	}

	if s == "" {
		return bad("the Node has no spec.providerID (is the cloud controller manager running?)")
	}
	if len(s) > maxProviderIDLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxProviderIDLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return bad("contains whitespace, control or non-ASCII characters")
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !validScheme(scheme) {
		return bad("not of the form <cloud>:///<zone>/<instance-id>")
	}
	var provider string
	switch scheme {
	case "aws":
		provider = ProviderAWS
	case "qcloud", "tencentcloud":
		provider = ProviderTencentCloud
	default:
		if l := strings.ToLower(scheme); l == "aws" || l == "qcloud" || l == "tencentcloud" {
			return bad(fmt.Sprintf("the scheme must be written in lower case (%q)", l))
		}
		return unsupported(fmt.Sprintf("cloud %q is not supported (supported: aws, qcloud, tencentcloud)", scheme))
	}

	// The authority (between "//" and the next "/") must be empty: a host
	// there would be ignored by the cloud controller manager's own parser
	// and is a sign of a forged or mangled ID.
	if !strings.HasPrefix(rest, "/") {
		return bad("a host is not allowed after " + scheme + "://; expected " + scheme + ":///<zone>/<instance-id>")
	}
	path := rest[1:]
	slashes := strings.Count(path, "/")
	if provider == ProviderAWS && slashes >= 1 && strings.HasPrefix(path[strings.LastIndexByte(path, '/')+1:], "fargate-") {
		return unsupported("this is an EKS Fargate pod, not an EC2 machine; it has no instance to reboot")
	}
	if slashes != 1 {
		return bad("expected exactly two path segments, <zone>/<instance-id>")
	}
	zone, id, _ := strings.Cut(path, "/")

	switch {
	case provider == ProviderAWS:
		if zone != "" && !validZoneName(zone) {
			return bad(fmt.Sprintf("zone %q is not an AWS availability zone name", zone))
		}
		if !validEC2InstanceID(id) {
			return bad(fmt.Sprintf("instance ID %q is not an EC2 instance ID (i- and 8 or 17 lower-case hex digits)", id))
		}
	default:
		// TKE writes the numeric zone ID; the open-source CCM writes either.
		if scheme == "qcloud" && zone != "" && !allDigits(zone) {
			return bad(fmt.Sprintf("zone %q is not a numeric TKE zone ID", zone))
		}
		if zone != "" && !allDigits(zone) && !validZoneName(zone) {
			return bad(fmt.Sprintf("zone %q is neither a Tencent Cloud zone name nor a numeric zone ID", zone))
		}
		if !validCVMInstanceID(id) {
			return bad(fmt.Sprintf("instance ID %q is not a CVM instance ID (ins- and 8 lower-case letters or digits)", id))
		}
	}
	return ProviderID{Provider: provider, Zone: zone, InstanceID: id}, nil
}

// validScheme follows RFC 3986 (letter, then letters, digits, + - .),
// upper case included so that "AWS" can be told apart from garbage.
func validScheme(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validZoneName accepts lower-case words of letters and digits joined by
// single hyphens, starting with a letter: us-east-1a, us-west-2-lax-1a,
// us-east-1-wl1-bos-wlz-1, ap-guangzhou-3.
func validZoneName(s string) bool {
	if len(s) > 64 || s == "" || !isLower(s[0]) || s[len(s)-1] == '-' || !strings.Contains(s, "-") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isLower(c), isDigit(c):
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

func validEC2InstanceID(s string) bool {
	hex, ok := strings.CutPrefix(s, "i-")
	if !ok || (len(hex) != 8 && len(hex) != 17) {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func validCVMInstanceID(s string) bool {
	rest, ok := strings.CutPrefix(s, "ins-")
	if !ok || len(rest) != 8 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !isDigit(c) && !isLower(c) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLower(c byte) bool  { return c >= 'a' && c <= 'z' }
func isLetter(c byte) bool { return isLower(c) || (c >= 'A' && c <= 'Z') }
