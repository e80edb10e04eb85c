package cloud

import (
	"fmt"
	"strings"
)

// MaxProviderIDLen bounds the work on hostile input; real IDs are well
// under 100 bytes (an Azure scale-set VM's is about 200).
const MaxProviderIDLen = 256

// SplitProviderID does the checks every providerID shares and splits it at
// "://": scheme (as written) and the rest. It refuses an empty ID, one
// longer than MaxProviderIDLen, whitespace, control and non-ASCII
// characters, and a missing or malformed scheme, with an
// *InvalidProviderIDError. Each cloud's Resolve calls it first; the forms
// after "://" are the cloud's own.
func SplitProviderID(s string) (scheme, rest string, err error) {
	bad := func(reason string) (string, string, error) {
		return "", "", &InvalidProviderIDError{ProviderID: s, Reason: reason}
	}
	if s == "" {
		return bad("the Node has no spec.providerID (is the cloud controller manager running?)")
	}
	if len(s) > MaxProviderIDLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxProviderIDLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return bad("contains whitespace, control or non-ASCII characters")
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !validScheme(scheme) {
		return bad("not of the form <cloud>://<cloud-specific path>")
	}
	return scheme, rest, nil
}

// validScheme follows RFC 3986 (letter, then letters, digits, + - .),
// upper case included so that "AWS" can be told apart from garbage.
func validScheme(s string) bool {
	if s == "" || !IsLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !IsLetter(c) && !IsDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
