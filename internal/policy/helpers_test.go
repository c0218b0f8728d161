package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// mustParse parses src or fails the test.
func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// addrs makes single-address prefixes: v4 from 100.64.0.n, v6 from
// fd7a:115c:a1e0::n.
func addrs(n int, v6 bool) []netip.Prefix {
	out := []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(n >> 8), byte(n)}), 32)}
	if v6 {
		a := netip.MustParseAddr(fmt.Sprintf("fd7a:115c:a1e0::%x", n))
		out = append(out, netip.PrefixFrom(a, 128))
	}
	return out
}

// userNode is an untagged node of login with address 100.64.0.id.
func userNode(id int, login string) Node {
	return Node{ID: wire.NodeID(id), Addresses: addrs(id, false), User: login}
}

// tagNode is a node tagged with tags with address 100.64.0.id.
func tagNode(id int, tags ...string) Node {
	return Node{ID: wire.NodeID(id), Addresses: addrs(id, false), Tags: tags}
}

// renderFilter prints a filter one rule per line:
// "SRC... -> DST:PORTS... [protos]", and capability rules as
// "SRC... -> caps DST... [names]" (plus the ports they wrongly carry).
func renderFilter(rules []wire.FilterRule) []string {
	var out []string
	for _, r := range rules {
		var src []string
		for _, p := range r.SrcPrefixes {
			src = append(src, shortPrefix(p))
		}
		for _, cg := range r.CapGrant {
			var dst, names []string
			for _, p := range cg.Dsts {
				dst = append(dst, shortPrefix(p))
			}
			for name := range cg.CapMap {
				names = append(names, name)
			}
			sort.Strings(names)
			out = append(out, strings.Join(src, ",")+" -> caps "+strings.Join(dst, ",")+" "+fmt.Sprint(names))
		}
		if len(r.CapGrant) > 0 && len(r.DstPorts) == 0 {
			continue
		}
		var dst []string
		for _, d := range r.DstPorts {
			ports := fmt.Sprintf("%d-%d", d.First, d.Last)
			switch {
			case d.First == 0 && d.Last == 65535:
				ports = "*"
			case d.First == d.Last:
				ports = fmt.Sprint(d.First)
			}
			dst = append(dst, shortPrefix(d.Prefix)+":"+ports)
		}
		s := strings.Join(src, ",") + " -> " + strings.Join(dst, ",")
		if r.Protocols != nil {
			s += fmt.Sprintf(" %v", r.Protocols)
		}
		out = append(out, s)
	}
	return out
}

// shortPrefix drops /32 and /128 from single addresses.
func shortPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func peerList(g *Graph, id wire.NodeID) []wire.NodeID {
	var out []wire.NodeID
	g.Peers(id, func(p wire.NodeID) bool {
		out = append(out, p)
		return true
	})
	slices.Sort(out)
	return out
}

// snapshot is every node's filter and peers, for comparing graphs.
type snapshot map[wire.NodeID]string

func takeSnapshot(g *Graph, ids []wire.NodeID) snapshot {
	s := snapshot{}
	for _, id := range ids {
		f := renderFilter(g.Filter(id))
		sort.Strings(f)
		s[id] = fmt.Sprintf("filter:\n  %s\npeers: %v", strings.Join(f, "\n  "), peerList(g, id))
	}
	return s
}

var t0 = time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC) // Wed 10:00 in Tokyo
