package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestIPSets: an IP set stands for its addresses as a source and a
// destination, in acls and grants, with add and remove applied in order.
func TestIPSets(t *testing.T) {
	ipsets := `"ipsets": {
		"ipset:corp": ["10.0.0.0/8", "remove 10.1.0.0/16", "add host:dbhost", "ipset:later"],
		"ipset:later": ["add 192.168.1.0/24", "remove 192.168.1.128/25"],
		"ipset:db": ["100.64.0.5", "100.64.0.6"],
		"ipset:empty": ["10.0.0.0/8", "remove 10.0.0.0/8"],
	},`
	tests := []struct {
		name string
		body string
		want map[int][]string // node -> filter
	}{
		{"source in acls", `"acls": [{"action": "accept", "src": ["ipset:corp"], "dst": ["tag:db:22"]}]`,
			map[int][]string{5: {"10.0.0.0/16,10.2.0.0/15,10.4.0.0/14,10.8.0.0/13,10.16.0.0/12,10.32.0.0/11,10.64.0.0/10,10.128.0.0/9,100.64.0.5,192.168.1.0/25 -> 100.64.0.5:22"}}},
		{"destination in acls", `"acls": [{"action": "accept", "src": ["ann@example.com"], "dst": ["ipset:db:443"]}]`,
			map[int][]string{5: {"100.64.0.1,100.64.0.2 -> 100.64.0.5:443"}, 6: {"100.64.0.1,100.64.0.2 -> 100.64.0.6:443"}}},
		{"destination in grants", `"grants": [{"src": ["ann@example.com"], "dst": ["ipset:db"], "ip": ["tcp:443"]}]`,
			map[int][]string{5: {"100.64.0.1,100.64.0.2 -> 100.64.0.5:443 [6]"}, 6: {"100.64.0.1,100.64.0.2 -> 100.64.0.6:443 [6]"}}},
		{"host: spelling of a host alias", `"acls": [{"action": "accept", "src": ["host:office"], "dst": ["host:dbhost:22"]}]`,
			map[int][]string{5: {"10.1.0.0/16 -> 100.64.0.5:22"}}},
		{"empty set grants nothing", `"acls": [{"action": "accept", "src": ["ipset:empty"], "dst": ["*:*"]}, {"action": "accept", "src": ["*"], "dst": ["ipset:empty:*"]}]`,
			map[int][]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := compileOne(t, ipsets+tt.body)
			if len(got) != len(tt.want) {
				t.Fatalf("filters %v, want %v", got, tt.want)
			}
			for id, f := range tt.want {
				if g := got[wireID(id)]; !slices.Equal(g, f) {
					t.Fatalf("node %d: filter %q, want %q", id, g, f)
				}
			}
		})
	}
}

func TestIPSetErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"cycle", `"ipsets": {"ipset:a": ["add ipset:b"], "ipset:b": ["add ipset:a"]}`, "is part of a cycle"},
		{"self", `"ipsets": {"ipset:a": ["10.0.0.0/8", "remove ipset:a"]}`, "is part of a cycle"},
		{"unknown set in a set", `"ipsets": {"ipset:a": ["add ipset:nope"]}`, `unknown IP set "ipset:nope"`},
		{"tag in a set", `"ipsets": {"ipset:a": ["add tag:db"]}`, "tag:db cannot be in an IP set"},
		{"group in a set", `"ipsets": {"ipset:a": ["group:eng"]}`, "group:eng cannot be in an IP set"},
		{"user in a set", `"ipsets": {"ipset:a": ["ann@example.com"]}`, "cannot be in an IP set"},
		{"star in a set", `"ipsets": {"ipset:a": ["*"]}`, "* cannot be in an IP set"},
		{"other autogroup in a set", `"ipsets": {"ipset:a": ["autogroup:member"]}`, "autogroup:member cannot be in an IP set"},
		{"bad operation", `"ipsets": {"ipset:a": ["del 10.0.0.0/8"]}`, `unknown IP set operation "del"`},
		{"bad CIDR", `"ipsets": {"ipset:a": ["10.0.0.1/8"]}`, "has bits set after the prefix length"},
		{"bad name", `"ipsets": {"corp": ["10.0.0.0/8"]}`, `IP set name "corp" must start with "ipset:"`},
		{"unknown host", `"ipsets": {"ipset:a": ["host:nope"]}`, `unknown host "host:nope"`},
		{"unknown set in a rule", `"ipsets": {"ipset:corp": []}, "acls": [{"action": "accept", "src": ["ipset:crop"], "dst": ["*:*"]}]`, `unknown IP set "ipset:crop" (hint: did you mean "ipset:corp"?)`},
		{"set in a test", `"ipsets": {"ipset:a": ["10.0.0.1"]}, "tests": [{"src": "ipset:a", "accept": ["tag:db:22"]}]`, "a test cannot use an IP set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("{" + compileHeader + tt.body + "}"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want an error with %q", err, tt.want)
			}
		})
	}
	p := mustParse(t, `{"ipsets": {"ipset:a": ["10.0.0.0/8", "add autogroup:internet"]}}`)
	var warned bool
	for _, w := range p.Warnings() {
		warned = warned || strings.Contains(w.Message, "autogroup:internet in an IP set adds nothing")
	}
	if !warned {
		t.Fatalf("no warning about autogroup:internet: %v", p.Warnings())
	}
}

// TestIPSetArithmetic checks add and remove against a reference: random
// operations on CIDRs inside 10.0.0.0/24 and fd00::/120, compared address
// by address with a set of booleans.
func TestIPSetArithmetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var ops []string
		var ref [2][256]bool
		for range 1 + rng.IntN(8) {
			v6 := rng.IntN(2)
			bits := 24 + rng.IntN(9)
			host := rng.IntN(256) &^ (1<<(32-bits) - 1)
			pfx := fmt.Sprintf("10.0.0.%d/%d", host, bits)
			if v6 == 1 {
				pfx = fmt.Sprintf("fd00::%x/%d", host, bits+96)
			}
			add := rng.IntN(3) > 0
			verb := "remove"
			if add {
				verb = "add"
			}
			ops = append(ops, verb+" "+pfx)
			for a := host; a < host+1<<(32-bits); a++ {
				ref[v6][a] = add
			}
		}
		src := `{"ipsets": {"ipset:x": ["` + strings.Join(ops, `", "`) + `"]}}`
		p := mustParse(t, src)
		set := p.ipsets["ipset:x"].prefixes
		for v6 := range 2 {
			for a := range 256 {
				addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(a)})
				if v6 == 1 {
					addr = netip.MustParseAddr(fmt.Sprintf("fd00::%x", a))
				}
				in := false
				for _, q := range set {
					in = in || q.Contains(addr)
				}
				if in != ref[v6][a] {
					t.Fatalf("%s: %v in set %v = %v, want %v", src, addr, set, in, ref[v6][a])
				}
			}
		}
	}
}

// FuzzIPSets checks that Parse never panics on IP set definitions and
// that an accepted set holds only valid, masked, non-overlapping CIDRs.
func FuzzIPSets(f *testing.F) {
	for _, s := range []string{`"10.0.0.0/8", "remove 10.1.0.0/16"`, `"add ipset:y"`, `"add host:h", "remove 10.0.0.5"`,
		`"fd00::/64", "remove fd00::1"`, `"add autogroup:internet"`, `"remove 0.0.0.0/0"`, `"add ipset:x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ops string) {
		src := `{"hosts": {"h": "10.0.0.9"}, "ipsets": {"ipset:y": ["192.168.0.0/16"], "ipset:x": [` + ops + `]}}`
		p, err := Parse([]byte(src))
		if err != nil {
			return
		}
		d := p.ipsets["ipset:x"]
		if d == nil {
			return
		}
		for i, a := range d.prefixes {
			if !a.IsValid() || a.Masked() != a {
				t.Fatalf("invalid prefix %v", a)
			}
			for _, b := range d.prefixes[i+1:] {
				if a.Overlaps(b) {
					t.Fatalf("%v and %v overlap in %v", a, b, d.prefixes)
				}
			}
		}
	})
}

func wireID(n int) wire.NodeID { return wire.NodeID(n) }

// TestIPSetExpansionBounded: naming a large IP set many times is an
// error, not gigabytes of selectors.
func TestIPSetExpansionBounded(t *testing.T) {
	var ops []string
	for i := range maxIPSetPrefixes {
		ops = append(ops, fmt.Sprintf(`"10.%d.%d.0/24"`, i/256, i%256))
	}
	refs := strings.TrimSuffix(strings.Repeat(`"ipset:big", `, maxIPSetExpansion/maxIPSetPrefixes+1), ", ")
	src := `{"tagOwners": {"tag:db": []}, "ipsets": {"ipset:big": [` + strings.Join(ops, ",") + `]},
		"acls": [{"action": "accept", "src": [` + refs + `], "dst": ["tag:db:22"]}]}`
	_, err := Parse([]byte(src))
	if err == nil || !strings.Contains(err.Error(), "stand for more than") {
		t.Fatalf("Parse = %v, want the expansion limit", err)
	}
	// One CIDR too many in a set.
	ops = append(ops, `"192.168.0.1"`)
	_, err = Parse([]byte(`{"ipsets": {"ipset:big": [` + strings.Join(ops, ",") + `]}}`))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("has more than %d CIDRs", maxIPSetPrefixes)) {
		t.Fatalf("Parse = %v, want the set size limit", err)
	}
}
