package localapi

import (
	"fmt"
	"strings"
)

// pipeSDDL is the security descriptor of warrend's named pipe on Windows:
// SYSTEM, Administrators and the daemon's own user (owner, which needs to
// create the pipe's instances) full access; a.Group and a.Users read and
// write; nobody else. The DACL is protected (P) so nothing is inherited.
// Every SID is checked first, so a name cannot smuggle in an ACE.
func pipeSDDL(owner string, a Access) (string, error) {
	var b strings.Builder
	b.WriteString("D:P(A;;GA;;;SY)(A;;GA;;;BA)")
	seen := map[string]bool{"S-1-5-18": true, "S-1-5-32-544": true}
	add := func(sid, rights string) error {
		if !validSID(sid) {
			return fmt.Errorf("localapi: %q is not a SID", sid)
		}
		if !seen[sid] {
			seen[sid] = true
			fmt.Fprintf(&b, "(A;;%s;;;%s)", rights, sid)
		}
		return nil
	}
	if err := add(owner, "GA"); err != nil {
		return "", err
	}
	if a.Group != "" {
		if err := add(a.Group, "GRGW"); err != nil {
			return "", err
		}
	}
	for _, u := range a.Users {
		if err := add(u, "GRGW"); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// validSID reports whether s is a SID in string form: S-1- then decimal
// sub-authorities separated by dashes (at most 15, as Windows allows).
func validSID(s string) bool {
	rest, ok := strings.CutPrefix(s, "S-1-")
	if !ok {
		return false
	}
	parts := strings.Split(rest, "-")
	if len(parts) < 1 || len(parts) > 16 { // the identifier authority and up to 15 sub-authorities
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 20 {
			return false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}
