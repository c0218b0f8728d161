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

// benchPolicy generates a realistic large policy: 50 groups (20 listed
// members each, the rest from the identity provider), 100 tags and 500
// rules mixing groups, tags, users, autogroups, hosts, ports, protocols,
// postures, MFA and time windows.
func benchPolicy() string {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("{\n\"groups\": {\n")
	for g := range 50 {
		var members []string
		for range 20 {
			members = append(members, fmt.Sprintf("%q", fmt.Sprintf("user%d@example.com", r.IntN(2000))))
		}
		fmt.Fprintf(&b, "  \"group:g%d\": [%s],\n", g, strings.Join(members, ", "))
	}
	b.WriteString("},\n\"hosts\": {\"monitoring\": \"100.100.0.0/24\", \"office\": \"10.0.0.0/8\"},\n")
	b.WriteString("\"tagOwners\": {\n")
	for t := range 100 {
		fmt.Fprintf(&b, "  \"tag:t%d\": [\"group:g%d\"],\n", t, t%50)
	}
	b.WriteString("},\n\"postures\": {\"posture:mac\": [\"node:os == 'macos'\", \"node:osVersion >= '15'\"], \"posture:managed\": [\"node:diskEncrypted == true\"]},\n")
	b.WriteString("\"acls\": [\n")
	ports := []string{"22", "443", "5432", "80,443", "8000-8999", "3000-3100,9090", "*"}
	for i := range 500 {
		port := ports[r.IntN(len(ports))]
		var rule string
		switch {
		case i < 300:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["group:g%d"], "dst": ["tag:t%d:%s", "tag:t%d:22"]`, r.IntN(50), r.IntN(100), port, r.IntN(100))
		case i < 400:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["tag:t%d"], "dst": ["tag:t%d:%s"], "proto": "tcp"`, r.IntN(100), r.IntN(100), port)
		case i < 450:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["user%d@example.com", "user%d@example.com"], "dst": ["tag:t%d:%s"]`, r.IntN(2000), r.IntN(2000), r.IntN(100), port)
		case i < 460:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:t%d:443"]`, r.IntN(100))
		case i < 465:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["group:g%d"], "dst": ["autogroup:self:*"]`, r.IntN(50))
		case i < 475:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["monitoring", "office"], "dst": ["tag:t%d:9100"]`, r.IntN(100))
		case i < 485:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["group:g%d"], "dst": ["tag:t%d:5432"], "srcPosture": ["posture:mac", "posture:managed"]`, r.IntN(50), r.IntN(100))
		case i < 495:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["group:g%d"], "dst": ["tag:t%d:22"], "mfa": "12h"`, r.IntN(50), r.IntN(100))
		default:
			rule = fmt.Sprintf(`{"action": "accept", "src": ["group:g%d"], "dst": ["tag:t%d:443"], "when": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "hours": "08:00-19:00", "tz": "Europe/Berlin"}`, r.IntN(50), r.IntN(100))
		}
		b.WriteString("  " + rule + "},\n")
	}
	b.WriteString("],\n}\n")
	return b.String()
}

// benchNodes makes 10,000 nodes: 7,000 laptops of 2,000 users in one to
// three identity-provider groups, and 3,000 servers with one or two tags.
func benchNodes(now time.Time) []Node {
	r := rand.New(rand.NewPCG(3, 4))
	nodes := make([]Node, 0, 10000)
	for i := range 10000 {
		n := Node{ID: wire.NodeID(i + 1)}
		a4 := netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		a6 := netip.AddrFrom16([16]byte{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 14: byte(i >> 8), 15: byte(i)})
		n.Addresses = []netip.Prefix{netip.PrefixFrom(a4, 32), netip.PrefixFrom(a6, 128)}
		if i < 7000 {
			n.User = fmt.Sprintf("user%d@example.com", i%2000)
			for range 1 + r.IntN(3) {
				n.Groups = append(n.Groups, fmt.Sprintf("g%d", r.IntN(50)))
			}
			n.Admin = i%2000 < 20
			n.Attrs = map[string]string{"node:os": []string{"macos", "windows", "linux"}[r.IntN(3)], "node:osVersion": "15.1", "node:diskEncrypted": "true"}
			n.MFAAt = now.Add(-time.Duration(r.IntN(24*60)) * time.Minute)
		} else {
			n.Tags = []string{fmt.Sprintf("tag:t%d", r.IntN(100))}
			if r.IntN(4) == 0 {
				n.Tags = append(n.Tags, fmt.Sprintf("tag:t%d", r.IntN(100)))
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

var benchNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func BenchmarkParse(b *testing.B) {
	src := []byte(benchPolicy())
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile compiles the 500-rule policy for 10,000 nodes added one
// by one with Upsert (computing what each affects), then builds every
// node's filter.
func BenchmarkCompile(b *testing.B) {
	p := mustParse(b, benchPolicy())
	nodes := benchNodes(benchNow)
	b.ReportAllocs()
	var rules, affected int
	for b.Loop() {
		g := NewGraph(p, benchNow)
		affected = 0
		for _, n := range nodes {
			affected += len(g.Upsert(n))
		}
		rules = 0
		for _, n := range nodes {
			rules += len(g.Filter(n.ID))
		}
	}
	b.ReportMetric(float64(rules), "filterrules")
	b.ReportMetric(float64(affected)/float64(len(nodes)), "affected/upsert")
}

// BenchmarkCompileBulk is BenchmarkCompile with the nodes passed to
// NewGraph, as a coordinator does at startup.
func BenchmarkCompileBulk(b *testing.B) {
	p := mustParse(b, benchPolicy())
	nodes := benchNodes(benchNow)
	b.ReportAllocs()
	for b.Loop() {
		g := NewGraph(p, benchNow, nodes...)
		for _, n := range nodes {
			g.Filter(n.ID)
		}
	}
}

// BenchmarkUpsert moves one laptop between groups in the 10,000-node graph.
func BenchmarkUpsert(b *testing.B) {
	p := mustParse(b, benchPolicy())
	nodes := benchNodes(benchNow)
	g := NewGraph(p, benchNow, nodes...)
	for _, n := range nodes {
		g.Filter(n.ID)
	}
	laptop := nodes[17]
	groups := [][]string{{"g1", "g2"}, {"g3"}}
	b.ReportAllocs()
	i, affected := 0, 0
	for b.Loop() {
		laptop.Groups = groups[i%2]
		affected = len(g.Upsert(laptop))
		i++
	}
	b.ReportMetric(float64(affected), "affected")
}

// BenchmarkSetPolicy recompiles the 10,000-node graph for a changed policy.
func BenchmarkSetPolicy(b *testing.B) {
	src := benchPolicy()
	p1 := mustParse(b, src)
	p2 := mustParse(b, strings.Replace(src, `"acls": [`, `"acls": [{"action": "accept", "src": ["group:g7"], "dst": ["tag:t7:7"]},`, 1))
	nodes := benchNodes(benchNow)
	g := NewGraph(p1, benchNow, nodes...)
	b.ReportAllocs()
	i, affected := 0, 0
	for b.Loop() {
		affected = len(g.SetPolicy([]*Policy{p2, p1}[i%2]))
		i++
	}
	b.ReportMetric(float64(affected), "affected")
}

// BenchmarkPeers lists the peers of every node.
func BenchmarkPeers(b *testing.B) {
	p := mustParse(b, benchPolicy())
	nodes := benchNodes(benchNow)
	g := NewGraph(p, benchNow, nodes...)
	b.ReportAllocs()
	total := 0
	for b.Loop() {
		total = 0
		for _, n := range nodes {
			g.Peers(n.ID, func(wire.NodeID) bool { total++; return true })
		}
	}
	b.ReportMetric(float64(total)/float64(len(nodes)), "peers/node")
}
