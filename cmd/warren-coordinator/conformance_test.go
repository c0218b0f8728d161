package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The conformance suite: policies recorded with the packet filters
// Tailscale's control plane compiled from them (or its refusal), in
// testdata/conformance (see the README there for the sources). Every case
// runs through policy compile's own path and must give, for every recorded
// node, the same packet filter as a set of (protocol, source address,
// destination address, port) and the same peers; every policy Tailscale
// refused must be refused. Cases Warren does not pass yet are listed in
// testdata/conformance/known-differences with the reason, and skipped.

var conformanceList = flag.Bool("conformance.list", false, "print every failing conformance case as a known-differences line")

// conformanceDir holds the cases; another directory of cases in the same
// layout can be run with -conformance.dir (then without known differences).
var conformanceDir = flag.String("conformance.dir", "testdata/conformance", "directory of conformance cases")

// readKnownDifferences reads "CASE REASON" lines; # starts a comment.
func readKnownDifferences(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(*conformanceDir, "known-differences"))
	if errors.Is(err, os.ErrNotExist) && *conformanceDir != "testdata/conformance" {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, reason, _ := strings.Cut(line, " ")
		if strings.TrimSpace(reason) == "" {
			t.Fatalf("known-differences: %q has no reason", id)
		}
		known[id] = strings.TrimSpace(reason)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return known
}

func TestConformance(t *testing.T) {
	known := readKnownDifferences(t)
	entries, err := os.ReadDir(*conformanceDir)
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "convert" {
			cases = append(cases, e.Name())
		}
	}
	if len(cases) == 0 {
		t.Fatal("no conformance cases")
	}
	for id := range known {
		if !slices.Contains(cases, id) {
			t.Errorf("known-differences names %q, which is no case", id)
		}
	}
	// Time windows do not occur in Tailscale's language; any fixed moment
	// will do.
	now := time.Date(2026, 4, 10, 12, 0, 0, 0, time.UTC)
	passed, skipped, fixed := 0, 0, 0
	var list []string
	for _, id := range cases {
		t.Run(id, func(t *testing.T) {
			problem := runConformanceCase(filepath.Join(*conformanceDir, id), now)
			reason, isKnown := known[id]
			switch {
			case problem == "" && isKnown:
				fixed++
				passed++
				t.Logf("%s passes now: remove it from known-differences", id)
			case problem == "":
				passed++
			case isKnown:
				skipped++
				t.Skipf("known difference %s: %s", id, reason)
			default:
				list = append(list, id+" "+strings.ReplaceAll(problem, "\n", " | "))
				t.Errorf("%s differs from Tailscale:\n%s", id, problem)
			}
		})
	}
	t.Logf("conformance: %d of %d cases pass, %d skipped as known differences, %d known differences pass now", passed, len(cases), skipped, fixed)
	if *conformanceList {
		for _, l := range list {
			fmt.Println(l)
		}
	}
}

// runConformanceCase returns "" if Warren does what Tailscale did with the
// case in dir, else what differs.
func runConformanceCase(dir string, now time.Time) string {
	policyPath, nodesPath := filepath.Join(dir, "policy.hujson"), filepath.Join(dir, "nodes.json")
	got, err := compileFiles(policyPath, nodesPath, now)
	if msg, rerr := os.ReadFile(filepath.Join(dir, "rejected")); rerr == nil {
		var rej *policyRejected
		if errors.As(err, &rej) {
			return ""
		}
		if err != nil {
			return fmt.Sprintf("compile failed: %v", err)
		}
		return fmt.Sprintf("Warren accepts a policy Tailscale rejects with %q", strings.TrimSpace(string(msg)))
	}
	if err != nil {
		return fmt.Sprintf("Warren rejects a policy Tailscale accepts: %s", strings.ReplaceAll(strings.ReplaceAll(err.Error(), policyPath+":", ""), "\n", "; "))
	}
	b, err := os.ReadFile(filepath.Join(dir, "want.json"))
	if err != nil {
		return err.Error()
	}
	var want compiled
	if err := json.Unmarshal(b, &want); err != nil {
		return fmt.Sprintf("want.json: %v", err)
	}
	local, err := localDestinations(nodesPath)
	if err != nil {
		return err.Error()
	}
	var problems []string
	for _, name := range sortedNames(want.Nodes) {
		w, g := want.Nodes[name], got.Nodes[name]
		if d := filterDifference(w.Filter, g.Filter, local[name]); d != "" {
			problems = append(problems, fmt.Sprintf("filter of %s: %s", name, d))
		}
		if !slices.Equal(w.Peers, g.Peers) {
			problems = append(problems, fmt.Sprintf("peers of %s: Tailscale %v, Warren %v", name, w.Peers, g.Peers))
		}
	}
	return strings.Join(problems, "\n")
}

// localDestinations returns, per node, the prefixes it receives packets
// for: its addresses and approved routes. A filter entry for any other
// destination never matches at that node, so both sides are compared
// only within these.
func localDestinations(nodesPath string) (map[string][]netip.Prefix, error) {
	b, err := os.ReadFile(nodesPath)
	if err != nil {
		return nil, err
	}
	var inv inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return nil, err
	}
	out := map[string][]netip.Prefix{}
	for _, n := range inv.Nodes {
		for _, s := range n.Addresses {
			p, err := parseHostPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", nodesPath, err)
			}
			out[n.Name] = append(out[n.Name], p)
		}
		for _, s := range n.Routes {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %v", nodesPath, s, err)
			}
			out[n.Name] = append(out[n.Name], p)
		}
	}
	return out, nil
}

// atom is one (protocol, source range, destination range, port range) of
// a filter.
type atom struct {
	proto       int
	src, dst    addrRange
	first, last int
}

type addrRange struct{ lo, hi netip.Addr }

func prefixRange(p netip.Prefix) addrRange {
	p = p.Masked()
	lo := p.Addr()
	b := lo.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	hi, _ := netip.AddrFromSlice(b)
	return addrRange{lo, hi}
}

func (r addrRange) has(a netip.Addr) bool {
	return a.BitLen() == r.lo.BitLen() && r.lo.Compare(a) <= 0 && a.Compare(r.hi) <= 0
}

// intersect returns the part of p inside one of local (two prefixes are
// nested or disjoint).
func intersect(p netip.Prefix, local []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, l := range local {
		switch {
		case p.Addr().BitLen() != l.Addr().BitLen():
		case p.Bits() <= l.Bits() && p.Contains(l.Addr()):
			out = append(out, l)
		case l.Bits() <= p.Bits() && l.Contains(p.Addr()):
			out = append(out, p)
		}
	}
	return out
}

var defaultProtoNumbers = []int{1, 6, 17, 58}

func protoNumber(s string) (int, error) {
	for _, n := range []int{1, 6, 17, 58, 132} {
		if protoText(n) == s {
			return n, nil
		}
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0, fmt.Errorf("protocol %q", s)
	}
	return n, nil
}

// atoms flattens rules, keeping only destinations inside local.
func atoms(rules []compiledRule, local []netip.Prefix) ([]atom, error) {
	var out []atom
	for _, r := range rules {
		protos := defaultProtoNumbers
		if len(r.Protos) > 0 {
			protos = nil
			for _, s := range r.Protos {
				n, err := protoNumber(s)
				if err != nil {
					return nil, err
				}
				protos = append(protos, n)
			}
		}
		for _, d := range r.Dst {
			dp, err := netip.ParsePrefix(d.Prefix)
			if err != nil {
				return nil, err
			}
			var first, last int
			if _, err := fmt.Sscanf(d.Ports, "%d-%d", &first, &last); err != nil {
				return nil, fmt.Errorf("ports %q", d.Ports)
			}
			for _, lp := range intersect(dp, local) {
				for _, s := range r.Src {
					sp, err := netip.ParsePrefix(s)
					if err != nil {
						return nil, err
					}
					for _, p := range protos {
						out = append(out, atom{proto: p, src: prefixRange(sp), dst: prefixRange(lp), first: first, last: last})
					}
				}
			}
		}
	}
	return out, nil
}

// filterDifference compares two filters as sets of (protocol, source,
// destination, port) within local, and describes the first differences.
func filterDifference(want, got []compiledRule, local []netip.Prefix) string {
	wa, err := atoms(want, local)
	if err != nil {
		return "want: " + err.Error()
	}
	ga, err := atoms(got, local)
	if err != nil {
		return "got: " + err.Error()
	}
	all := append(slices.Clone(wa), ga...)
	// Elementary cells: every range starts at a boundary and ends just
	// before one, so coverage is constant from one boundary to the next.
	var protos []int
	var srcB, dstB []netip.Addr
	var portB []int
	for _, a := range all {
		protos = append(protos, a.proto)
		srcB = appendBounds(srcB, a.src)
		dstB = appendBounds(dstB, a.dst)
		portB = append(portB, a.first)
		if a.last < 65535 {
			portB = append(portB, a.last+1)
		}
	}
	slices.Sort(protos)
	protos = slices.Compact(protos)
	sortAddrs := func(as []netip.Addr) []netip.Addr {
		slices.SortFunc(as, netip.Addr.Compare)
		return slices.Compact(as)
	}
	srcB, dstB = sortAddrs(srcB), sortAddrs(dstB)
	slices.Sort(portB)
	portB = slices.Compact(portB)
	covered := func(as []atom, p int, s, d netip.Addr, port int) bool {
		for _, a := range as {
			if a.proto == p && a.first <= port && port <= a.last && a.src.has(s) && a.dst.has(d) {
				return true
			}
		}
		return false
	}
	var diffs []string
	for _, p := range protos {
		for _, d := range dstB {
			for _, s := range srcB {
				for _, port := range portB {
					w, g := covered(wa, p, s, d, port), covered(ga, p, s, d, port)
					if w == g {
						continue
					}
					who := "Tailscale allows, Warren does not"
					if g {
						who = "Warren allows, Tailscale does not"
					}
					diffs = append(diffs, fmt.Sprintf("%s: %s from %s to %s port %d (and the range up to the next boundary)", who, protoText(p), s, d, port))
					if len(diffs) == 3 {
						return strings.Join(diffs, "; ")
					}
				}
			}
		}
	}
	return strings.Join(diffs, "; ")
}

func appendBounds(bs []netip.Addr, r addrRange) []netip.Addr {
	bs = append(bs, r.lo)
	if n := r.hi.Next(); n.IsValid() {
		bs = append(bs, n)
	}
	return bs
}

// TestFilterDifference checks the set comparison the suite relies on.
func TestFilterDifference(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("100.64.0.5/32"), netip.MustParsePrefix("fd7a:115c:a1e0::5/128")}
	r := func(src []string, protos []string, dst ...compiledDst) compiledRule {
		return compiledRule{Src: src, Dst: dst, Protos: protos}
	}
	d := func(p, ports string) compiledDst { return compiledDst{p, ports} }
	one := []compiledRule{r([]string{"100.64.0.0/30"}, nil, d("0.0.0.0/0", "20-30"))}
	for _, tc := range []struct {
		name      string
		a, b      []compiledRule
		different bool
	}{
		{"identical", one, one, false},
		{"split sources, ports and protocols", one, []compiledRule{
			r([]string{"100.64.0.0/31"}, []string{"tcp", "udp"}, d("100.64.0.5/32", "20-25")),
			r([]string{"100.64.0.2/31"}, nil, d("100.64.0.5/32", "20-30")),
			r([]string{"100.64.0.0/31"}, nil, d("100.64.0.5/32", "26-30")),
			r([]string{"100.64.0.0/31"}, []string{"icmp", "ipv6-icmp"}, d("100.64.0.5/32", "20-25")),
		}, false},
		{"destinations elsewhere do not count", one, append(slices.Clone(one), r([]string{"0.0.0.0/0"}, nil, d("100.64.0.6/32", "0-65535"))), false},
		{"one port more", one, []compiledRule{r([]string{"100.64.0.0/30"}, nil, d("100.64.0.5/32", "20-31"))}, true},
		{"one source less", one, []compiledRule{r([]string{"100.64.0.0/31", "100.64.0.2/32"}, nil, d("100.64.0.5/32", "20-30"))}, true},
		{"a protocol less", one, []compiledRule{r([]string{"100.64.0.0/30"}, []string{"tcp", "udp", "icmp"}, d("100.64.0.5/32", "20-30"))}, true},
		{"IPv6 destination too", one, append(slices.Clone(one), r([]string{"100.64.0.0/30"}, nil, d("fd7a:115c:a1e0::5/128", "20-30"))), true},
		{"IPv6 source is not IPv4", []compiledRule{r([]string{"::/0"}, nil, d("100.64.0.5/32", "1-1"))}, []compiledRule{r([]string{"0.0.0.0/0"}, nil, d("100.64.0.5/32", "1-1"))}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, pair := range [][2][]compiledRule{{tc.a, tc.b}, {tc.b, tc.a}} {
				if got := filterDifference(pair[0], pair[1], local); (got != "") != tc.different {
					t.Errorf("difference %q, want different=%v", got, tc.different)
				}
			}
		})
	}
}
