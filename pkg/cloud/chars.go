package cloud

// Character classes the clouds' providerID and region parsers share. They
// are ASCII only on purpose: a providerID, an instance ID or a region name
// with any other letter is malformed in every cloud.

// IsDigit reports whether c is 0-9.
func IsDigit(c byte) bool { return c >= '0' && c <= '9' }

// IsLower reports whether c is a-z.
func IsLower(c byte) bool { return c >= 'a' && c <= 'z' }

// IsLetter reports whether c is a-z or A-Z.
func IsLetter(c byte) bool { return IsLower(c) || (c >= 'A' && c <= 'Z') }

// AllDigits reports whether s is one or more of 0-9.
func AllDigits(s string) bool { return allOf(s, IsDigit) }

// AllLower reports whether s is one or more of a-z.
func AllLower(s string) bool { return allOf(s, IsLower) }

func allOf(s string, class func(byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !class(s[i]) {
			return false
		}
	}
	return true
}
