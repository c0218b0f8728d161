package store

import "strings"

// maxLabel is the longest DNS label (RFC 1035).
const maxLabel = 63

// DNSLabel turns a hostname into a DNS label: lowercase letters, digits
// and inner hyphens, at most 63 characters. Only the first label of a
// dotted hostname is used; a hostname with nothing usable becomes "node".
func DNSLabel(hostname string) string {
	if i := strings.IndexByte(hostname, '.'); i > 0 {
		hostname = hostname[:i]
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(hostname) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
		if b.Len() >= maxLabel {
			break
		}
	}
	label := trimLabel(b.String()[:min(b.Len(), maxLabel)])
	if label == "" {
		return "node"
	}
	return label
}

// trimLabel removes leading and trailing hyphens.
func trimLabel(s string) string { return strings.Trim(s, "-") }

// ValidNodeName reports whether name can be a node's name as given: a DNS
// label of lowercase letters, digits and inner hyphens, 1 to 63
// characters, as DNSLabel makes them.
func ValidNodeName(name string) bool {
	return name != "" && len(name) <= maxLabel && DNSLabel(name) == name
}
