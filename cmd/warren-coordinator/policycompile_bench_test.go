package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/policy"
)

// compileBenchPolicy is a 500-rule policy over 50 groups and 100 tags:
// groups to tags, tags to tags, users, autogroup:member, autogroup:self,
// hosts and protocols.
func compileBenchPolicy() string {
	r := rand.New(rand.NewPCG(5, 6))
	var b strings.Builder
	b.WriteString("{\"groups\": {\n")
	for g := range 50 {
		fmt.Fprintf(&b, "  \"group:g%d\": [\"user%d@example.com\"],\n", g, r.IntN(2000))
	}
	b.WriteString("},\n\"hosts\": {\"monitoring\": \"100.100.0.0/24\"},\n\"tagOwners\": {\n")
	for t := range 100 {
		fmt.Fprintf(&b, "  \"tag:t%d\": [\"group:g%d\"],\n", t, t%50)
	}
	b.WriteString("},\n\"acls\": [\n")
	ports := []string{"22", "443", "5432", "80,443", "8000-8999", "*"}
	for i := range 500 {
		port := ports[r.IntN(len(ports))]
		switch {
		case i < 300:
			fmt.Fprintf(&b, `{"action": "accept", "src": ["group:g%d"], "dst": ["tag:t%d:%s", "tag:t%d:22"]},`, r.IntN(50), r.IntN(100), port, r.IntN(100))
		case i < 420:
			fmt.Fprintf(&b, `{"action": "accept", "src": ["tag:t%d"], "dst": ["tag:t%d:%s"], "proto": "tcp"},`, r.IntN(100), r.IntN(100), port)
		case i < 470:
			fmt.Fprintf(&b, `{"action": "accept", "src": ["user%d@example.com"], "dst": ["tag:t%d:%s"]},`, r.IntN(2000), r.IntN(100), port)
		case i < 480:
			fmt.Fprintf(&b, `{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:t%d:443"]},`, r.IntN(100))
		case i < 490:
			fmt.Fprintf(&b, `{"action": "accept", "src": ["group:g%d"], "dst": ["autogroup:self:*"]},`, r.IntN(50))
		default:
			fmt.Fprintf(&b, `{"action": "accept", "src": ["monitoring"], "dst": ["tag:t%d:9100"]},`, r.IntN(100))
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	return b.String()
}

// compileBenchInventory is NODES.json for n nodes: 70% laptops of 2,000
// users in one to three groups, 30% servers with one or two tags.
func compileBenchInventory(n int) []byte {
	r := rand.New(rand.NewPCG(7, 8))
	var inv inventory
	inv.Groups = map[string][]string{}
	for u := range 2000 {
		login := fmt.Sprintf("user%d@example.com", u)
		for range 1 + r.IntN(3) {
			inv.Groups[login] = append(inv.Groups[login], fmt.Sprintf("g%d", r.IntN(50)))
		}
	}
	for i := range n {
		in := inventoryNode{Name: fmt.Sprintf("n%d", i)}
		a4 := netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		a6 := netip.AddrFrom16([16]byte{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 14: byte(i >> 8), 15: byte(i)})
		in.Addresses = []string{a4.String(), a6.String()}
		if i < n*7/10 {
			in.User = fmt.Sprintf("user%d@example.com", i%2000)
		} else {
			for range 1 + r.IntN(2) {
				in.Tags = append(in.Tags, fmt.Sprintf("tag:t%d", r.IntN(100)))
			}
		}
		inv.Nodes = append(inv.Nodes, in)
	}
	b, err := json.Marshal(inv)
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkPolicyCompile compiles a 500-rule policy for 10,000 nodes the
// way policy compile does. "graph" is the baseline: the coordinator's
// compiler alone (policy.NewGraph); "compile" adds every node's filter and
// peers, rendered and sorted (what policy compile prints); "inventory" is
// reading NODES.json.
func BenchmarkPolicyCompile(b *testing.B) {
	p, err := policy.Parse([]byte(compileBenchPolicy()))
	if err != nil {
		b.Fatal(err)
	}
	invJSON := compileBenchInventory(10000)
	nodes, names, err := parseInventory(invJSON)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 4, 10, 12, 0, 0, 0, time.UTC)
	b.Run("inventory", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := parseInventory(invJSON); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("graph", func(b *testing.B) {
		for b.Loop() {
			policy.NewGraph(p, now, nodes...)
		}
	})
	b.Run("compile", func(b *testing.B) {
		for b.Loop() {
			out := compilePolicy(p, nodes, names, now)
			if len(out.Nodes) != len(nodes) {
				b.Fatal("nodes missing")
			}
		}
	})
}

// TestCompileBenchInputs keeps the benchmark's inputs valid (at a small
// size, for the race detector).
func TestCompileBenchInputs(t *testing.T) {
	p, err := policy.Parse([]byte(compileBenchPolicy()))
	if err != nil {
		t.Fatal(err)
	}
	nodes, names, err := parseInventory(compileBenchInventory(300))
	if err != nil {
		t.Fatal(err)
	}
	out := compilePolicy(p, nodes, names, time.Now())
	rules := 0
	for _, n := range out.Nodes {
		rules += len(n.Filter)
	}
	if p.RuleCount() != 500 || rules == 0 {
		t.Errorf("%d rules, %d filter entries", p.RuleCount(), rules)
	}
}
