package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// benchPolicyWithRoutes is benchPolicyWithGrants with 40 more rules for
// routed destinations: groups to subnets, "*" to subnets, a subnet as a
// source, and a group to autogroup:internet.
func benchPolicyWithRoutes() string {
	src := benchPolicyWithGrants()
	r := rand.New(rand.NewPCG(7, 8))
	var b strings.Builder
	for i := range 40 {
		var rule string
		switch {
		case i < 30:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["group:g%d"], "dst": ["10.%d.%d.0/24:5432", "10.%d.0.0/16:443"]}`, r.IntN(50), r.IntN(50), r.IntN(4), r.IntN(50))
		case i < 35:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["*"], "dst": ["10.%d.%d.0/24:80"]}`, r.IntN(50), r.IntN(4))
		case i < 38:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["10.%d.0.0/16"], "dst": ["tag:t%d:9100"]}`, r.IntN(50), r.IntN(100))
		default:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["group:g%d"], "dst": ["autogroup:internet:*"]}`, r.IntN(50))
		}
		b.WriteString("  " + rule + ",\n")
	}
	i := strings.Index(src, "\"acls\": [\n") + len("\"acls\": [\n")
	return src[:i] + b.String() + src[i:]
}

// benchRouters gives 50 of the tagged servers 4 approved subnet routes
// each (10.k.0.0/24 ... 10.k.3.0/24), and two of them exit routes too.
func benchRouters(nodes []Node) []Node {
	out := make([]Node, len(nodes))
	copy(out, nodes)
	for k := range 50 {
		n := &out[7000+k*60]
		for j := range 4 {
			n.Routes = append(n.Routes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k), byte(j), 0}), 24))
		}
		if k < 2 {
			n.Routes = append(n.Routes, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
		}
	}
	return out
}

// BenchmarkCompileRoutes compiles the grants policy with 40 routed rules
// for the 10,000 nodes, without routes (routers=0, the baseline) and with
// 50 routers of 4 routes each (routers=50): compare the two, and both
// with BenchmarkCompileGrants, in the same invocation.
func BenchmarkCompileRoutes(b *testing.B) {
	p := mustParse(b, benchPolicyWithRoutes())
	plain := benchNodes(benchNow)
	for _, tc := range []struct {
		name  string
		nodes []Node
	}{{"routers=0", plain}, {"routers=50", benchRouters(plain)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			rules := 0
			for b.Loop() {
				g := NewGraph(p, benchNow, tc.nodes...)
				rules = 0
				for _, n := range tc.nodes {
					rules += len(g.Filter(n.ID))
				}
			}
			b.ReportMetric(float64(rules), "filterrules")
		})
	}
}

// TestBenchRoutes keeps the routes benchmark meaningful: the routers get
// routed filter entries.
func TestBenchRoutes(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("compiles 10,000 nodes")
	}
	p := mustParse(t, benchPolicyWithRoutes())
	nodes := benchRouters(benchNodes(benchNow))
	g := NewGraph(p, benchNow, nodes...)
	routed := 0
	for k := range 50 {
		for _, r := range g.Filter(nodes[7000+k*60].ID) {
			for _, d := range r.DstPorts {
				if d.Prefix.Addr().Is4() && d.Prefix.Addr().As4()[0] != 100 {
					routed++
				}
			}
		}
	}
	if routed == 0 {
		t.Fatal("no router has a routed destination in its filter")
	}
}
