package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// whyPolicy has a rule for each condition WhyDenied tells apart, rules
// failing several, a grant to autogroup:self, a routed destination and
// an unconditional rule. t0 is a Wednesday: the "Sat" windows are closed.
const whyPolicy = `{
	"groups": {"group:eng": ["ann@example.com", "bob@example.com"]},
	"tagOwners": {"tag:db": [], "tag:router": []},
	"postures": {"posture:managed": ["node:diskEncrypted == true"]},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"], "srcPosture": ["posture:managed"]},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"], "mfa": "1h"},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:8080"], "when": {"days": ["Sat"]}},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:9000"], "srcPosture": ["posture:managed"], "when": {"days": ["Sat"]}},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:9000"], "when": {"days": ["Sat"]}},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:7000"], "when": {"days": ["Sat"]}},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:7000"], "mfa": "1h"},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:80"]},
		{"action": "accept", "src": ["bob@example.com"], "dst": ["10.1.0.0/24:443"], "when": {"days": ["Sat"]}},
		{"action": "accept", "src": ["group:eng"], "proto": "udp", "dst": ["tag:db:53"], "mfa": "1h"},
	],
	"grants": [
		{"src": ["group:eng"], "dst": ["autogroup:self"], "ip": ["tcp:3389"], "srcPosture": ["posture:managed"]},
	],
}`

func TestWhyDenied(t *testing.T) {
	p := mustParse(t, whyPolicy)
	sat := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ann := userNode(1, "ann@example.com") // no posture, MFA 2h before t0
	ann.MFAAt = t0.Add(-2 * time.Hour)
	bob := userNode(2, "bob@example.com") // managed, MFA fresh at t0
	bob.Attrs = map[string]string{"node:diskEncrypted": "true"}
	bob.MFAAt = t0.Add(-10 * time.Minute)
	bob2 := userNode(3, "bob@example.com") // bob's second device
	carol := userNode(4, "carol@example.com")
	ci := tagNode(5, "tag:ci")
	db := tagNode(10, "tag:db")
	rtr := tagNode(11, "tag:router")
	rtr.Routes = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}
	g := NewGraph(p, t0, ann, bob, bob2, carol, ci, db, rtr)
	dbAddr, bob2Addr := db.Addresses[0].Addr(), bob2.Addresses[0].Addr()
	routed := netip.MustParseAddr("10.1.0.7")
	const tcp, udp = 6, 17

	tests := []struct {
		name       string
		src, dst   wire.NodeID
		addr       netip.Addr
		proto      uint8
		port       uint16
		at         time.Time
		why, rule  string
		windowText string // RuleWindow(rule), checked when not empty
	}{
		{name: "posture", src: 1, dst: 10, addr: dbAddr, proto: tcp, port: 5432, why: DenyPosture, rule: "acls[0]"},
		{name: "posture holds: not that rule", src: 2, dst: 10, addr: dbAddr, proto: tcp, port: 5432},
		{name: "mfa too old", src: 1, dst: 10, addr: dbAddr, proto: tcp, port: 22, why: DenyMFA, rule: "acls[1]"},
		{name: "mfa fresh at t0", src: 2, dst: 10, addr: dbAddr, proto: tcp, port: 22},
		{name: "mfa aged by the record's time", src: 2, dst: 10, addr: dbAddr, proto: tcp, port: 22, at: t0.Add(2 * time.Hour), why: DenyMFA, rule: "acls[1]"},
		{name: "mfa never", src: 3, dst: 10, addr: dbAddr, proto: tcp, port: 22, why: DenyMFA, rule: "acls[1]"},
		{name: "tagged source cannot satisfy mfa (not selected)", src: 5, dst: 10, addr: dbAddr, proto: tcp, port: 22},
		{name: "time window closed", src: 2, dst: 10, addr: dbAddr, proto: tcp, port: 8080, why: DenyTimeWindow, rule: "acls[2]", windowText: "Sat 00:00-24:00 UTC"},
		{name: "time window open at the record's time", src: 2, dst: 10, addr: dbAddr, proto: tcp, port: 8080, at: sat},
		{name: "fewest failed conditions wins", src: 1, dst: 10, addr: dbAddr, proto: tcp, port: 9000, why: DenyTimeWindow, rule: "acls[4]"},
		{name: "equal failures: mfa before time-window", src: 1, dst: 10, addr: dbAddr, proto: tcp, port: 7000, why: DenyMFA, rule: "acls[6]"},
		{name: "a rule admits it at the record's time (ann's MFA is stale, but acls[5] is open)", src: 1, dst: 10, addr: dbAddr, proto: tcp, port: 7000, at: sat},
		{name: "unconditional rule, other port", src: 1, dst: 10, addr: dbAddr, proto: tcp, port: 81},
		{name: "not a source", src: 4, dst: 10, addr: dbAddr, proto: tcp, port: 8080},
		{name: "wrong protocol", src: 1, dst: 10, addr: dbAddr, proto: tcp, port: 53},
		{name: "right protocol", src: 1, dst: 10, addr: dbAddr, proto: udp, port: 53, why: DenyMFA, rule: "acls[9]"},
		{name: "routed destination", src: 2, dst: 11, addr: routed, proto: tcp, port: 443, why: DenyTimeWindow, rule: "acls[8]"},
		{name: "routed, other port", src: 2, dst: 11, addr: routed, proto: tcp, port: 444},
		{name: "routed, other source", src: 1, dst: 11, addr: routed, proto: tcp, port: 443},
		{name: "autogroup:self", src: 3, dst: 3, addr: bob2Addr, proto: tcp, port: 3389, why: DenyPosture, rule: "grants[0]"},
		{name: "autogroup:self of another user", src: 1, dst: 3, addr: bob2Addr, proto: tcp, port: 3389},
		{name: "unknown source", src: 99, dst: 10, addr: dbAddr, proto: tcp, port: 5432},
		{name: "unknown destination", src: 1, dst: 99, addr: dbAddr, proto: tcp, port: 5432},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			why, rule := g.WhyDenied(tc.src, tc.dst, tc.addr, tc.proto, tc.port, tc.at)
			if why != tc.why || rule != tc.rule {
				t.Errorf("WhyDenied = %q %q, want %q %q", why, rule, tc.why, tc.rule)
			}
			if tc.windowText != "" {
				if got := p.RuleWindow(rule); got != tc.windowText {
					t.Errorf("RuleWindow(%s) = %q, want %q", rule, got, tc.windowText)
				}
			}
		})
	}
	if w := p.RuleWindow("acls[0]"); w != "" {
		t.Errorf("RuleWindow of a rule without a window = %q", w)
	}
	if w := p.RuleWindow("acls[99]"); w != "" {
		t.Errorf("RuleWindow of no rule = %q", w)
	}
}

// TestWhyDeniedCostFollowsSourceRules checks that the answer comes from
// the rules that may select the source, not a pass over the policy: with
// 2,000 time-windowed rules of other groups, ann's lookup visits only her
// group's and the generic ones.
func TestWhyDeniedCostFollowsSourceRules(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"tagOwners": {"tag:db": []}, "groups": {`)
	for i := range 2000 {
		fmt.Fprintf(&b, `"group:g%d": [],`, i)
	}
	b.WriteString(`}, "acls": [`)
	for i := range 2000 {
		fmt.Fprintf(&b, `{"action": "accept", "src": ["group:g%d"], "dst": ["tag:db:%d"], "when": {"days": ["Sat"]}},`, i, 1000+i)
	}
	b.WriteString(`]}`)
	p := mustParse(t, b.String())
	ann := userNode(1, "ann@example.com")
	ann.Groups = []string{"g7"}
	g := NewGraph(p, t0, ann, tagNode(10, "tag:db"))
	visited := 0
	p.candidates(&g.nodes[g.slots[1]].subject, func(int32) { visited++ })
	if visited > 1 {
		t.Errorf("candidate rules for ann: %d, want 1", visited)
	}
	if why, rule := g.WhyDenied(1, 10, addrs(10, false)[0].Addr(), 6, 1007, time.Time{}); why != DenyTimeWindow || rule != "acls[7]" {
		t.Errorf("WhyDenied = %q %q", why, rule)
	}
}

// TestWhyDeniedMatchesEval checks WhyDenied against a simple reference
// built on the symbolic evaluator (evalRule, as Explain uses it): for
// random sources (posture, MFA age), destinations, ports and times, the
// rule it names is the best of those whose only failing checks are
// posture, mfa and when, and its reason is that rule's first failing one.
func TestWhyDeniedMatchesEval(t *testing.T) {
	p := mustParse(t, whyPolicy)
	r := rand.New(rand.NewPCG(1, 19))
	users := []string{"ann@example.com", "bob@example.com", "carol@example.com"}
	var nodes []Node
	for i := 1; i <= 12; i++ {
		var n Node
		if i%4 == 0 {
			n = tagNode(i, "tag:db")
		} else {
			n = userNode(i, users[r.IntN(len(users))])
			if r.IntN(2) == 0 {
				n.Attrs = map[string]string{"node:diskEncrypted": fmt.Sprint(r.IntN(2) == 0)}
			}
			if r.IntN(3) > 0 {
				n.MFAAt = t0.Add(-time.Duration(r.IntN(180)) * time.Minute)
			}
		}
		nodes = append(nodes, n)
	}
	g := NewGraph(p, t0, nodes...)
	ports := []uint16{22, 53, 80, 81, 3389, 5432, 7000, 8080, 9000}
	rank := map[string]int{"posture": 0, "mfa": 1, "when": 2}
	reason := map[string]string{"posture": DenyPosture, "mfa": DenyMFA, "when": DenyTimeWindow}
	seen := map[string]int{}
	for range 3000 {
		src, dst := &nodes[r.IntN(len(nodes))], &nodes[r.IntN(len(nodes))]
		proto := []uint8{6, 17}[r.IntN(2)]
		port := ports[r.IntN(len(ports))]
		at := t0.Add(time.Duration(r.IntN(7*24)) * time.Hour)
		f := &flow{src: p.nodeSubject(src), dst: p.nodeSubject(dst), proto: int(proto), port: port, at: at}
		if !src.MFAAt.IsZero() {
			f.mfaKnown, f.mfaAge = true, at.Sub(src.MFAAt)
		}
		wantWhy, wantRule, best := "", "", [3]int{}
		for i, rl := range p.rules {
			v := p.evalRule(rl, f)
			if v.ok {
				wantWhy, wantRule = "", "" // allowed: nothing to explain
				break
			}
			var first string
			ok := true
			for _, why := range v.reasons {
				kind, _, _ := strings.Cut(why, ":")
				if _, cond := rank[kind]; !cond {
					ok = false
				} else if first == "" || rank[kind] < rank[first] {
					first = kind
				}
			}
			score := [3]int{len(v.reasons), rank[first], i}
			if ok && (wantRule == "" || score[0] < best[0] || score[0] == best[0] && score[1] < best[1]) {
				wantWhy, wantRule, best = reason[first], rl.ref, score
			}
		}
		why, rule := g.WhyDenied(src.ID, dst.ID, dst.Addresses[0].Addr(), proto, port, at)
		if why != wantWhy || rule != wantRule {
			t.Fatalf("node %d (%s, attrs %v, MFA %v) -> node %d %d/%d at %v: WhyDenied %q %q, reference %q %q",
				src.ID, src.User, src.Attrs, src.MFAAt, dst.ID, port, proto, at, why, rule, wantWhy, wantRule)
		}
		seen[why]++
	}
	t.Logf("answers: %v", seen)
	for _, why := range []string{"", DenyPosture, DenyMFA, DenyTimeWindow} {
		if seen[why] < 20 {
			t.Errorf("only %d answers %q in %v: the random cases miss it", seen[why], why, seen)
		}
	}
}
