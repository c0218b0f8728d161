package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// hintPolicy defines a few names of every kind, so that unknown names
// have plenty of candidates to be (wrongly) matched with.
const hintPolicy = `{
	"groups": {"group:eng": [], "group:ops": [], "group:admins": [], "group:members": []},
	"hosts": {"db": "10.0.0.1", "internet": "10.9.0.0/16", "office": "192.168.0.0/16"},
	"tagOwners": {"tag:web": [], "tag:db": [], "tag:prod": [], "tag:internet": []},
	"acls": [{"action": "accept", "src": [%s], "dst": [%s]}],
}`

var didYouMean = regexp.MustCompile(`did you mean "([^"]*)"`)

// kindOf is the kind of a selector as written: its prefix, or "host" for
// a bare name.
func kindOf(s string) string {
	if i := strings.IndexByte(s, ':'); i > 0 {
		return strings.ToLower(s[:i])
	}
	return "host"
}

// TestHintsNeverGrantMore: a "did you mean" hint for an unknown name only
// ever names a defined name of the same kind, and never an autogroup the
// writer did not nearly spell (autogroup:internet is not answered with
// autogroup:member). Each name is tried as a source and as a destination.
func TestHintsNeverGrantMore(t *testing.T) {
	tests := []struct {
		name string
		want string // the only acceptable suggestion; "" for none
	}{
		// Tailscale autogroups Warren does not have: no suggestion.
		{"autogroup:internet", ""},
		{"autogroup:danger-all", ""},
		{"autogroup:shared", ""},
		{"autogroup:owner", ""},
		{"autogroup:it-admin", ""},
		{"autogroup:network-admin", ""},
		{"autogroup:billing-admin", ""},
		{"autogroup:auditor", ""},
		{"autogroup:nonroot", ""},
		{"autogroup:everyone", ""},
		{"autogroup:all", ""},
		{"autogroup:any", ""},
		{"autogroup:users", ""},
		{"autogroup:user", ""},
		{"autogroup:tags", ""},
		{"autogroup:servers", ""},
		{"autogroup:guest", ""},
		{"autogroup:", ""},
		{"autogroup:*", ""},
		// Near misses of Warren's own autogroups.
		{"autogroup:members", "autogroup:member"}, // a plural
		{"autogroup:admins", "autogroup:admin"},
		{"autogroup:membr", "autogroup:member"},
		{"autogroup:Member", "autogroup:member"},
		{"autogroup:admn", "autogroup:admin"},
		{"autogroup:taged", "autogroup:tagged"},
		// Groups, tags and hosts: only names of the same kind.
		{"group:egn", "group:eng"},
		{"group:internet", ""},
		{"group:member", "group:members"},
		{"group:autogroup", ""},
		{"group:all", ""},
		{"tag:wbe", "tag:web"},
		{"tag:member", ""},
		{"tag:autogroup:member", ""},
		{"tag:internets", "tag:internet"},
		{"dbb", "db"},
		{"member", ""},
		{"members", ""},
		{"tagged", ""},
		{"admin", ""},
		{"all", ""},
		{"any", ""},
		{"everyone", ""},
		{"internett", "internet"},
		{"group-eng", ""},
		{"tag-web", ""},
		{"autogroup-member", ""},
		// A mistyped prefix is fixed only to a defined name of that kind.
		{"gruop:eng", "group:eng"},
		{"Group:eng", "group:eng"},
		{"TAG:web", "tag:web"},
		{"autogruop:member", "autogroup:member"},
		{"autogruop:internet", ""},
		{"grop:nothing", ""},
		{"xyz:member", ""},
	}
	for _, tt := range tests {
		for _, place := range []string{"src", "dst"} {
			t.Run(place+"/"+tt.name, func(t *testing.T) {
				want := tt.want
				src, dst := `"ann@example.com"`, fmt.Sprintf("%q", tt.name+":22")
				if place == "src" {
					src, dst = fmt.Sprintf("%q", tt.name), `"tag:db:22"`
				}
				p, err := Parse([]byte(fmt.Sprintf(hintPolicy, src, dst)))
				if err == nil && acceptedAutogroup(tt.name, place) {
					// Accepted as in Tailscale, selecting nothing, with a
					// warning that suggests nothing.
					ws := p.Warnings()
					if len(ws) == 0 && tt.name != "autogroup:danger-all" && tt.name != "autogroup:internet" {
						t.Fatalf("%s accepted without a warning", tt.name)
					}
					for _, w := range ws {
						if m := didYouMean.FindStringSubmatch(w.Hint); m != nil {
							t.Fatalf("%s: warning %q suggests %q", tt.name, w.Error(), m[1])
						}
					}
					return
				}
				var es Errors
				if !errors.As(err, &es) || len(es) != 1 {
					t.Fatalf("Parse: %v, want one error", err)
				}
				got := ""
				if m := didYouMean.FindStringSubmatch(es[0].Hint); m != nil {
					got = m[1]
				}
				if got != want {
					t.Fatalf("%s: hint %q suggests %q, want %q", tt.name, es[0].Hint, got, want)
				}
				if got != "" && kindOf(got) != kindOf(want) {
					t.Fatalf("%s: suggestion %q is of another kind", tt.name, got)
				}
			})
		}
	}
}

// TestHintsNeverBroaderAutogroup checks the property over generated
// names: whatever is written after autogroup:, a suggestion is never * and
// never an autogroup whose name is not within one edit (ignoring case and
// a plural s) of what was written.
func TestHintsNeverBroaderAutogroup(t *testing.T) {
	words := []string{"internet", "owner", "shared", "member", "members", "tagged", "admin", "self",
		"it-admin", "danger-all", "x", "mem", "adm", "tag", "se", "memberz", "membership", "administrators",
		"tagged-nodes", "nonroot", "AUTOGROUP", "autogroup:member"}
	for _, w := range words {
		name := "autogroup:" + w
		_, err := Parse([]byte(fmt.Sprintf(hintPolicy, fmt.Sprintf("%q", name), `"tag:db:22"`)))
		if err == nil {
			continue // a real autogroup
		}
		m := didYouMean.FindStringSubmatch(err.Error())
		if m == nil {
			continue
		}
		got := m[1]
		if got == "*" || !strings.HasPrefix(got, "autogroup:") {
			t.Errorf("%s: suggests %q", name, got)
			continue
		}
		a := strings.TrimSuffix(strings.ToLower(name), "s")
		if editDistance(a, got, 1) > 1 && strings.ToLower(name) != got {
			t.Errorf("%s: suggests %q, more than one edit away", name, got)
		}
	}
}

// TestSelfDestinationSources: autogroup:self as a destination means "the
// source user's own devices", so every source of the rule must be a user,
// a group or autogroup:member (as Tailscale requires; "*" included, since
// it covers tagged devices and addresses too). Each bad source is reported
// at its own line and column.
func TestSelfDestinationSources(t *testing.T) {
	const defs = `"groups": {"group:eng": []}, "hosts": {"db": "10.0.0.1"}, "tagOwners": {"tag:web": []},`
	tests := []struct {
		name string
		rule string // ‸ marks each expected error
		want string // the error message's start; "" when valid
	}{
		{"user", `"src": ["ann@example.com"], "dst": ["autogroup:self:*"]`, ""},
		{"group", `"src": ["group:eng"], "dst": ["autogroup:self:22"]`, ""},
		{"member", `"src": ["autogroup:member"], "dst": ["autogroup:self:*"]`, ""},
		{"all three", `"src": ["ann@example.com", "group:eng", "autogroup:member"], "dst": ["autogroup:self:*", "tag:web:80"]`, ""},
		{"tag beside self is fine without self", `"src": ["tag:web"], "dst": ["tag:web:80"]`, ""},
		// Tailscale accepts "*" here in acls: the owner's own devices
		// (conformance case acl-a04); in grants it refuses it.
		{"star", `"src": ["*"], "dst": ["autogroup:self:*"]`, ""},
		{"tag", `"src": [‸"tag:web"], "dst": ["autogroup:self:22"]`, `autogroup:self as a destination needs sources that are users, groups or autogroup:member, not "tag:web"`},
		{"tagged", `"src": [‸"autogroup:tagged"], "dst": ["autogroup:self:22"]`, `autogroup:self as a destination needs sources`},
		{"admin", `"src": [‸"autogroup:admin"], "dst": ["autogroup:self:22"]`, `autogroup:self as a destination needs sources`},
		{"host", `"src": [‸"db"], "dst": ["autogroup:self:22"]`, `autogroup:self as a destination needs sources`},
		{"IP", `"src": [‸"100.64.0.1"], "dst": ["autogroup:self:22"]`, `autogroup:self as a destination needs sources`},
		{"CIDR", `"src": [‸"100.64.0.0/10"], "dst": ["autogroup:self:22"]`, `autogroup:self as a destination needs sources`},
		{"IPv6", `"src": [‸"fd7a::/48"], "dst": ["autogroup:self:22"]`, `autogroup:self as a destination needs sources`},
		{"mixed: only the bad one", `"src": ["group:eng", ‸"tag:web", "autogroup:member"], "dst": ["tag:web:80", "autogroup:self:*"]`, `autogroup:self as a destination needs sources`},
		{"several bad ones", `"src": [‸"autogroup:tagged", ‸"tag:web"], "dst": ["autogroup:self:*"]`, `autogroup:self as a destination needs sources`},
		{"with postures too", `"src": [‸"tag:web"], "dst": ["autogroup:self:22"], "mfa": "1h"`, `autogroup:self as a destination needs sources`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, marks := unmark("{" + defs + "\n\"acls\": [{\"action\": \"accept\", " + tt.rule + "}]}")
			_, err := Parse([]byte(src))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse = %v, want errors", err)
			}
			if len(es) != len(marks) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(marks), err)
			}
			for i, e := range es {
				if !strings.HasPrefix(e.Message, tt.want) {
					t.Errorf("error %d: %q, want %q…", i, e.Message, tt.want)
				}
				if e.Line != marks[i][0] || e.Col != marks[i][1] {
					t.Errorf("error %d at %d:%d, want %d:%d", i, e.Line, e.Col, marks[i][0], marks[i][1])
				}
				if e.Hint == "" || didYouMean.MatchString(e.Hint) && !strings.Contains(e.Hint, "autogroup:member") {
					t.Errorf("error %d: hint %q", i, e.Hint)
				}
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b  string
		limit int
		want  int
	}{
		{"web", "web", 3, 0},
		{"wbe", "web", 3, 1}, // a swap is one edit
		{"egn", "eng", 3, 1},
		{"wbe", "db", 3, 2},
		{"member", "members", 3, 1},
		{"internet", "member", 3, 4}, // over the limit
		{"", "abc", 5, 3},
		{"ab", "ba", 1, 1},
		{"abc", "ca", 5, 3},
		{"☃x", "x☃", 2, 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b, tt.limit); got != tt.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tt.a, tt.b, tt.limit, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a, tt.limit); got != tt.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tt.b, tt.a, tt.limit, got, tt.want)
		}
	}
}

// TestOwnerHints: an unknown autogroup as a tag owner is answered with an
// autogroup only when it nearly spells that one.
func TestOwnerHints(t *testing.T) {
	tests := []struct{ owner, want string }{
		{"autogroup:admins", "autogroup:admin"},
		{"autogroup:membr", "autogroup:member"},
		{"autogroup:owner", ""},
		{"autogroup:it-admin", ""},
		{"autogroup:tagged", ""},
		{"autogroup:self", ""},
		{"autogroup:internet", ""},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(fmt.Sprintf(`{"tagOwners": {"tag:x": [%q]}}`, tt.owner)))
		if err == nil {
			t.Fatalf("%s accepted as a tag owner", tt.owner)
		}
		got := ""
		if m := didYouMean.FindStringSubmatch(err.Error()); m != nil {
			got = m[1]
		}
		if got != tt.want {
			t.Errorf("%s: %v; want suggestion %q", tt.owner, err, tt.want)
		}
	}
}

// acceptedAutogroup reports whether Warren accepts the Tailscale
// autogroup name as a source or destination (place), as Tailscale does.
func acceptedAutogroup(name, place string) bool {
	switch name {
	case "autogroup:danger-all":
		return place == "src"
	case "autogroup:internet":
		return place == "dst"
	}
	_, ok := inertAutogroups[name]
	return ok
}
