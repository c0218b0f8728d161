package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// compileOne parses a policy made of compileHeader and the given extra
// top-level fields, compiles it for compileNodes and returns each node's
// rendered filter.
func compileOne(t *testing.T, body string) (map[wire.NodeID][]string, *Policy) {
	t.Helper()
	p := mustParse(t, "{"+compileHeader+body+"}")
	g := NewGraph(p, t0, compileNodes()...)
	out := map[wire.NodeID][]string{}
	for _, n := range compileNodes() {
		if f := renderFilter(g.Filter(n.ID)); len(f) > 0 {
			out[n.ID] = f
		}
	}
	return out, p
}

// TestLegacyRuleFields: "users" and "ports" are Tailscale's legacy names
// of "src" and "dst" and compile to the same filters.
func TestLegacyRuleFields(t *testing.T) {
	modern, _ := compileOne(t, `"acls": [{"action": "accept", "src": ["group:eng", "10.1.0.0/16"], "dst": ["tag:db:22,80", "tag:web:*"]}]`)
	legacy, _ := compileOne(t, `"acls": [{"action": "accept", "users": ["group:eng", "10.1.0.0/16"], "ports": ["tag:db:22,80", "tag:web:*"]}]`)
	if len(modern) == 0 || !equalFilters(modern, legacy) {
		t.Fatalf("legacy fields compile to\n%v\nwant\n%v", legacy, modern)
	}
	for _, src := range []string{
		`{"acls": [{"action": "accept", "users": ["*"], "src": ["*"], "dst": ["*:*"]}]}`,
		`{"acls": [{"action": "accept", "src": ["*"], "ports": ["*:*"], "dst": ["*:*"]}]}`,
	} {
		if _, err := Parse([]byte(src)); err == nil || !strings.Contains(err.Error(), "legacy name") {
			t.Errorf("Parse(%s) = %v, want an error about both names", src, err)
		}
	}
}

func equalFilters(a, b map[wire.NodeID][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for id, fa := range a {
		if !slices.Equal(fa, b[id]) {
			return false
		}
	}
	return true
}

// TestStarSource: "*" as a source is what Tailscale compiles it to, the
// mesh's ranges (plus IP and CIDR sources written next to it), not every
// address; autogroup:danger-all is every address.
func TestStarSource(t *testing.T) {
	tests := []struct {
		name string
		acls string
		want []string // node 5's filter
	}{
		{"star", `{"action": "accept", "src": ["*"], "dst": ["tag:db:22"]}`,
			[]string{"100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.5:22"}},
		{"star and an outside CIDR", `{"action": "accept", "src": ["*", "10.1.0.0/16", "100.64.0.9"], "dst": ["tag:db:22"]}`,
			[]string{"10.1.0.0/16,100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.5:22"}},
		{"danger-all", `{"action": "accept", "src": ["autogroup:danger-all"], "dst": ["tag:db:22"]}`,
			[]string{"0.0.0.0/0,::/0 -> 100.64.0.5:22"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := compileOne(t, `"acls": [`+tt.acls+`]`)
			if !slices.Equal(got[5], tt.want) {
				t.Fatalf("filter of node 5 = %q, want %q", got[5], tt.want)
			}
		})
	}
	// The policy's own tests judge addresses the same way.
	mustParse(t, `{"tagOwners": {"tag:db": []},
		"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:db:22"]}],
		"tests": [{"src": "10.0.0.1", "deny": ["tag:db:22"]}, {"src": "100.100.0.1", "accept": ["tag:db:22"]}]}`)
	mustParse(t, `{"tagOwners": {"tag:db": []},
		"acls": [{"action": "accept", "src": ["autogroup:danger-all"], "dst": ["tag:db:22"]}],
		"tests": [{"src": "10.0.0.1", "accept": ["tag:db:22"]}]}`)
}

// TestTailscaleAutogroups: each autogroup Tailscale defines is accepted
// where Tailscale accepts it, meaning the same or (where Warren has no
// such thing) nothing, with a warning; and rejected where Tailscale
// rejects it.
func TestTailscaleAutogroups(t *testing.T) {
	tests := []struct {
		name    string
		rule    string
		err     string // "": accepted
		warning string // with this warning
	}{
		{"internet as destination", `{"action": "accept", "src": ["group:eng"], "dst": ["autogroup:internet:*"]}`, "", ""},
		{"internet as source", `{"action": "accept", "src": ["autogroup:internet"], "dst": ["tag:db:*"]}`, "autogroup:internet cannot be a src", ""},
		{"shared as source", `{"action": "accept", "src": ["autogroup:shared"], "dst": ["tag:db:*"]}`, "", "no device sharing"},
		{"shared as destination", `{"action": "accept", "src": ["*"], "dst": ["autogroup:shared:22"]}`, "", "no device sharing"},
		{"owner", `{"action": "accept", "src": ["autogroup:owner"], "dst": ["tag:db:*"]}`, "", "no owner role"},
		{"auditor", `{"action": "accept", "src": ["autogroup:auditor"], "dst": ["tag:db:*"]}`, "", "no auditor role"},
		{"danger-all as source", `{"action": "accept", "src": ["autogroup:danger-all"], "dst": ["tag:db:*"]}`, "", ""},
		{"danger-all as destination", `{"action": "accept", "src": ["*"], "dst": ["autogroup:danger-all:*"]}`, "autogroup:danger-all cannot be a dst", ""},
		{"danger-all with self", `{"action": "accept", "src": ["autogroup:danger-all"], "dst": ["autogroup:self:*"]}`, "autogroup:self as a destination needs sources", ""},
		{"nonroot in acls", `{"action": "accept", "src": ["autogroup:nonroot"], "dst": ["tag:db:*"]}`, "autogroup:nonroot cannot be a src", ""},
		{"shared with self", `{"action": "accept", "src": ["autogroup:shared"], "dst": ["autogroup:self:*"]}`, "autogroup:self as a destination needs sources", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte("{" + compileHeader + `"acls": [` + tt.rule + `]}`))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse = %v, want an error with %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "did you mean") {
					t.Fatalf("error %v suggests a name", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var ws []string
			for _, w := range p.Warnings() {
				ws = append(ws, w.Error())
			}
			if tt.warning != "" && !strings.Contains(strings.Join(ws, "\n"), tt.warning) {
				t.Fatalf("warnings %q, want one with %q", ws, tt.warning)
			}
		})
	}
	// The ones Warren has nothing for grant nothing at all.
	got, _ := compileOne(t, `"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["autogroup:internet:*", "autogroup:shared:*", "autogroup:owner:*"]},
		{"action": "accept", "src": ["autogroup:shared", "autogroup:owner", "autogroup:it-admin", "autogroup:network-admin", "autogroup:billing-admin", "autogroup:auditor"], "dst": ["*:*"]},
	]`)
	if len(got) != 0 {
		t.Fatalf("inert autogroups grant %v, want nothing", got)
	}
}

// TestNoRulesSection: as in Tailscale, a file with neither acls nor grants
// allows everything (with a warning), and an empty section denies
// everything.
func TestNoRulesSection(t *testing.T) {
	star := "100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> "
	tests := []struct {
		name  string
		body  string
		allow bool
	}{
		{"neither section", `"tests": [{"src": "ann@example.com", "accept": ["tag:db:5432"]}]`, true},
		{"empty acls", `"acls": []`, false},
		{"empty grants", `"grants": []`, false},
		{"both empty", `"acls": [], "grants": []`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := compileOne(t, tt.body)
			if !tt.allow {
				if len(got) != 0 {
					t.Fatalf("filters %v, want none", got)
				}
				return
			}
			if want := []string{star + "100.64.0.5:*"}; !slices.Equal(got[5], want) {
				t.Fatalf("filter of node 5 = %q, want %q", got[5], want)
			}
			if len(got) != len(compileNodes()) {
				t.Fatalf("%d nodes have a filter, want all %d", len(got), len(compileNodes()))
			}
			ws := p.Warnings()
			if len(ws) != 1 || !strings.Contains(ws[0].Message, "every node may reach every other") {
				t.Fatalf("warnings %v", ws)
			}
			d, err := p.Explain(Query{Src: "ann@example.com", Dst: "tag:db", Port: 22})
			if err != nil || !d.Allowed || !strings.Contains(d.Rule.String(), "default rule") {
				t.Fatalf("Explain = %v, %v", d, err)
			}
		})
	}
}

// TestProtoField: "proto" takes the protocol names Tailscale accepts (in
// any case) and numbers 0-255; only TCP, UDP and SCTP take ports.
func TestProtoField(t *testing.T) {
	tests := []struct {
		proto, dst string
		want       []int // nil: an error
	}{
		{"tcp", "tag:db:22", []int{6}},
		{"UDP", "tag:db:53", []int{17}},
		{"sctp", "tag:db:9", []int{132}},
		{"icmpv4", "tag:db:*", []int{1}},
		{"ipv6-icmp", "tag:db:*", []int{58}},
		{"dccp", "tag:db:*", []int{33}},
		{"ip-in-ip", "tag:db:*", []int{4}},
		{"47", "tag:db:*", []int{47}},
		{"255", "tag:db:*", []int{255}},
		{"256", "tag:db:*", nil},
		{"gre", "tag:db:22", nil},
		{"icmp", "tag:db:8", nil},
		{"tpc", "tag:db:22", nil},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			p, err := Parse([]byte(`{"tagOwners": {"tag:db": []}, "acls": [{"action": "accept", "src": ["*"], "dst": ["` + tt.dst + `"], "proto": "` + tt.proto + `"}]}`))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("proto %q with %s accepted", tt.proto, tt.dst)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := p.rules[0].protos; !slices.Equal(got, tt.want) {
				t.Fatalf("protos %v, want %v", got, tt.want)
			}
		})
	}
}

// TestUserDomainSelector: user:*@DOMAIN selects the untagged devices of
// every user whose login has exactly that domain, in acls and grants, as
// a source or a destination; never tagged devices, never another domain.
func TestUserDomainSelector(t *testing.T) {
	// Every user of compileNodes is at example.com.
	for _, tt := range []struct{ name, body, like string }{
		{"acls source",
			`"acls": [{"action": "accept", "src": ["user:*@Example.com"], "dst": ["tag:db:22"]}]`,
			`"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:22"]}]`},
		{"grant source",
			`"grants": [{"src": ["user:*@example.com"], "dst": ["tag:db"], "ip": ["tcp:22"]}]`,
			`"grants": [{"src": ["autogroup:member"], "dst": ["tag:db"], "ip": ["tcp:22"]}]`},
		{"acls destination",
			`"acls": [{"action": "accept", "src": ["tag:web"], "dst": ["user:*@example.com:443"]}]`,
			`"acls": [{"action": "accept", "src": ["tag:web"], "dst": ["autogroup:member:443"]}]`},
		{"grant destination",
			`"grants": [{"src": ["tag:web"], "dst": ["user:*@example.com"], "ip": ["443"]}]`,
			`"grants": [{"src": ["tag:web"], "dst": ["autogroup:member"], "ip": ["443"]}]`},
		{"toward autogroup:self",
			`"acls": [{"action": "accept", "src": ["user:*@example.com"], "dst": ["autogroup:self:22"]}]`,
			`"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := compileOne(t, tt.body)
			want, _ := compileOne(t, tt.like)
			if len(want) == 0 || !equalFilters(sortedFilters(got), sortedFilters(want)) {
				t.Fatalf("compiles to\n%v\nwant\n%v", got, want)
			}
		})
	}
	if got, _ := compileOne(t, `"acls": [{"action": "accept", "src": ["user:*@example.org", "user:*@ample.com"], "dst": ["*:*"]}]`); len(got) != 0 {
		t.Fatalf("another domain selects %v, want nothing", got)
	}
	for _, bad := range []string{"user:*@", "user:*@a@b.com", "user:*@*.example.com"} {
		_, err := Parse([]byte("{" + compileHeader + `"acls": [{"action": "accept", "src": ["` + bad + `"], "dst": ["*:*"]}]}`))
		if err == nil || !strings.Contains(err.Error(), "invalid domain") {
			t.Errorf("%s: Parse = %v, want an invalid-domain error", bad, err)
		}
	}
	for _, where := range []string{
		`"tests": [{"src": "user:*@example.com", "accept": ["tag:db:22"]}]`,
		`"ssh": [{"action": "accept", "src": ["user:*@example.com"], "dst": ["user:*@example.com"], "users": ["root"]}]`,
	} {
		if _, err := Parse([]byte("{" + compileHeader + `"acls": [],` + where + "}")); err == nil {
			t.Errorf("%s: accepted, want an error", where)
		}
	}
}
