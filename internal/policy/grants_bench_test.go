package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchPolicyWithGrants is benchPolicy with 200 grants and two IP sets
// added: grants from groups, tags, users and IP sets to tags, with one to
// three protocols each.
func benchPolicyWithGrants() string {
	src := benchPolicy()
	r := rand.New(rand.NewPCG(5, 6))
	ips := [][]string{{"*"}, {"tcp:443"}, {"tcp:22", "udp:53"}, {"tcp:5432", "icmp:*"}, {"8000-8999"}, {"tcp:80", "tcp:443", "udp:443"}}
	quote := func(ss []string) string { return `"` + strings.Join(ss, `", "`) + `"` }
	var b strings.Builder
	b.WriteString(`"ipsets": {"ipset:corp": ["10.0.0.0/8", "remove 10.9.0.0/16", "add 100.100.0.0/24"], "ipset:lab": ["add ipset:corp", "remove 10.1.0.0/16"]},` + "\n")
	b.WriteString("\"grants\": [\n")
	for i := range 200 {
		ip := quote(ips[r.IntN(len(ips))])
		var g string
		switch {
		case i < 120:
			g = fmt.Sprintf(`{"src": ["group:g%d"], "dst": ["tag:t%d", "tag:t%d"], "ip": [%s]}`, r.IntN(50), r.IntN(100), r.IntN(100), ip)
		case i < 170:
			g = fmt.Sprintf(`{"src": ["tag:t%d"], "dst": ["tag:t%d"], "ip": [%s]}`, r.IntN(100), r.IntN(100), ip)
		case i < 185:
			g = fmt.Sprintf(`{"src": ["user%d@example.com"], "dst": ["tag:t%d"], "ip": [%s], "srcPosture": ["posture:mac"]}`, r.IntN(2000), r.IntN(100), ip)
		case i < 195:
			g = fmt.Sprintf(`{"src": ["ipset:lab"], "dst": ["tag:t%d"], "ip": [%s]}`, r.IntN(100), ip)
		default:
			g = fmt.Sprintf(`{"src": ["group:g%d"], "dst": ["autogroup:self"], "ip": [%s]}`, r.IntN(50), ip)
		}
		b.WriteString("  " + g + ",\n")
	}
	b.WriteString("],\n")
	i := strings.LastIndex(src, "}")
	return src[:i] + b.String() + src[i:]
}

// BenchmarkCompileGrants is BenchmarkCompileBulk for the policy with 500
// acls rules, 200 grants and IP sets: compare it with BenchmarkCompileBulk
// run in the same invocation (the bound: under 1 s per compile).
func BenchmarkCompileGrants(b *testing.B) {
	p := mustParse(b, benchPolicyWithGrants())
	nodes := benchNodes(benchNow)
	b.ReportAllocs()
	rules := 0
	for b.Loop() {
		g := NewGraph(p, benchNow, nodes...)
		rules = 0
		for _, n := range nodes {
			rules += len(g.Filter(n.ID))
		}
	}
	b.ReportMetric(float64(len(p.rules)), "rules")
	b.ReportMetric(float64(rules), "filterrules")
}

// TestBenchPolicyWithGrants keeps the benchmark's policy valid.
func TestBenchPolicyWithGrants(t *testing.T) {
	p := mustParse(t, benchPolicyWithGrants())
	if n := len(p.rules); n < 700 {
		t.Fatalf("%d rules, want at least 500 acls + 200 grants", n)
	}
}

// BenchmarkCompileAppGrants is BenchmarkCompileGrants with an app
// capability on every grant too, so each destination also receives
// capability rules: compare it with BenchmarkCompileGrants run in the
// same invocation.
func BenchmarkCompileAppGrants(b *testing.B) {
	src := strings.ReplaceAll(benchPolicyWithGrants(), `"ip": [`, `"app": {"example.com/cap/x": [{"k": 1}]}, "ip": [`)
	p := mustParse(b, src)
	if len(p.AppGrants()) != 200 {
		b.Fatalf("%d app grants, want 200", len(p.AppGrants()))
	}
	nodes := benchNodes(benchNow)
	b.ReportAllocs()
	rules := 0
	for b.Loop() {
		g := NewGraph(p, benchNow, nodes...)
		rules = 0
		for _, n := range nodes {
			rules += len(g.Filter(n.ID))
		}
	}
	b.ReportMetric(float64(rules), "filterrules")
}

// BenchmarkUpsertAppGrants measures one node change and the filters of
// the nodes it affects, with app capabilities on every grant (app=yes)
// and without (app=no, the baseline): the capability rules are rebuilt
// from scratch after a change, so their cost grows with the mesh.
func BenchmarkUpsertAppGrants(b *testing.B) {
	for _, app := range []bool{false, true} {
		b.Run(fmt.Sprintf("app=%v", map[bool]string{false: "no", true: "yes"}[app]), func(b *testing.B) {
			src := benchPolicyWithGrants()
			if app {
				src = strings.ReplaceAll(src, `"ip": [`, `"app": {"example.com/cap/x": [{"k": 1}]}, "ip": [`)
			}
			p := mustParse(b, src)
			nodes := benchNodes(benchNow)
			g := NewGraph(p, benchNow, nodes...)
			n := nodes[len(nodes)/2]
			moved := n
			moved.Addresses = addrs(60000, true)
			i := 0
			for b.Loop() {
				x := n
				if i++; i%2 == 1 {
					x = moved
				}
				for _, id := range g.Upsert(x) {
					g.Filter(id)
				}
				g.Filter(x.ID)
			}
		})
	}
}
