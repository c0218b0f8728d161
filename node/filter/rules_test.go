package filter

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// reference is the rule semantics written as plainly as possible: a linear
// scan of every rule, the model the compiled lookup must agree with.
func reference(rules []wire.FilterRule, proto uint8, src, dst netip.Addr, port int) bool {
	for _, r := range rules {
		if len(r.CapGrant) > 0 {
			continue // capability rules allow no packet
		}
		protos := r.Protocols
		if len(protos) == 0 {
			protos = []int{protoTCP, protoUDP, protoICMP}
			if dst.Is6() {
				protos = []int{protoTCP, protoUDP, protoICMPv6}
			}
		}
		if !slices.Contains(protos, int(proto)) {
			continue
		}
		srcOK := false
		for _, p := range r.SrcPrefixes {
			srcOK = srcOK || p.IsValid() && p.Contains(src)
		}
		if !srcOK {
			continue
		}
		for _, d := range r.DstPorts {
			if !d.Prefix.IsValid() || !d.Prefix.Contains(dst) || d.First > d.Last {
				continue
			}
			switch {
			case isICMPProto(proto):
				return true
			case port < 0:
				if d.First == 0 && d.Last == 65535 {
					return true
				}
			case int(d.First) <= port && port <= int(d.Last):
				return true
			}
		}
	}
	return false
}

// randAddr returns an address from a small space so rules and packets meet.
func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x7a, 14: byte(r.IntN(2)), 15: byte(r.IntN(32))})
	}
	return netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(2)), byte(r.IntN(32))})
}

// randPrefix returns a prefix around the small address space, sometimes /0.
func randPrefix(r *rand.Rand, v6 bool) netip.Prefix {
	a := randAddr(r, v6)
	bits := a.BitLen() - r.IntN(7)
	if r.IntN(20) == 0 {
		bits = 0
	}
	return netip.PrefixFrom(a, bits) // deliberately unmasked sometimes
}

// randPort returns a port near the small range the rules use.
func randPort(r *rand.Rand) uint16 {
	if r.IntN(10) == 0 {
		return uint16(r.IntN(65536))
	}
	return uint16(r.IntN(40))
}

// randRules makes n rules over the small address and port space.
func randRules(r *rand.Rand, n int) []wire.FilterRule {
	protoSets := [][]int{nil, nil, {protoTCP}, {protoUDP}, {protoICMP}, {protoICMPv6}, {protoTCP, protoUDP}, {47}, {protoSCTP}}
	rules := make([]wire.FilterRule, n)
	for i := range rules {
		rl := &rules[i]
		rl.Protocols = protoSets[r.IntN(len(protoSets))]
		for range 1 + r.IntN(3) {
			rl.SrcPrefixes = append(rl.SrcPrefixes, randPrefix(r, r.IntN(2) == 0))
		}
		for range 1 + r.IntN(3) {
			d := wire.PortRange{Prefix: randPrefix(r, r.IntN(2) == 0)}
			switch r.IntN(4) {
			case 0:
				d.Last = 65535
			case 1:
				d.First = randPort(r)
				d.Last = d.First
			default:
				d.First, d.Last = randPort(r), randPort(r)
				if r.IntN(8) != 0 && d.First > d.Last {
					d.First, d.Last = d.Last, d.First
				}
			}
			rl.DstPorts = append(rl.DstPorts, d)
		}
		if r.IntN(8) == 0 {
			// A capability rule, malformed with ports too: it must
			// still allow nothing.
			rl.CapGrant = []wire.CapGrant{{Dsts: []netip.Prefix{randPrefix(r, true)}}}
		}
	}
	return rules
}

// TestCompiledMatchesReference compares the compiled lookup with the linear
// reference on random rule sets and packets.
func TestCompiledMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	protos := []uint8{protoTCP, protoUDP, protoICMP, protoICMPv6, 47, protoSCTP}
	for round := range 300 {
		rules := randRules(r, 1+r.IntN(12))
		rs := compile(rules)
		for range 300 {
			v6 := r.IntN(2) == 0
			src, dst := randAddr(r, v6), randAddr(r, v6)
			proto := protos[r.IntN(len(protos))]
			port := -1
			if hasPorts(proto) && r.IntN(8) != 0 {
				port = int(randPort(r))
			}
			s, _ := fromAddr(src)
			d, _ := fromAddr(dst)
			got := rs.allows(v6, proto, s, d, port)
			if want := reference(rules, proto, src, dst, port); got != want {
				t.Fatalf("round %d: allows(proto %d, %s -> %s port %d) = %v, reference %v\nrules: %s",
					round, proto, src, dst, port, got, want, fmt.Sprint(rules))
			}
		}
	}
}

func TestMergeRanges(t *testing.T) {
	v := func(n uint64) u128 { return u128{lo: n} }
	tests := []struct {
		name string
		in   []rng
		want srcSet
	}{
		{"empty", nil, nil},
		{"disjoint unsorted", []rng{{v(10), v(12)}, {v(1), v(2)}}, srcSet{{v(1), v(2)}, {v(10), v(12)}}},
		{"adjacent", []rng{{v(1), v(2)}, {v(3), v(4)}}, srcSet{{v(1), v(4)}}},
		{"nested", []rng{{v(1), v(9)}, {v(3), v(4)}}, srcSet{{v(1), v(9)}}},
		{"overlapping", []rng{{v(1), v(5)}, {v(3), v(7)}, {v(9), v(9)}}, srcSet{{v(1), v(7)}, {v(9), v(9)}}},
		{"top of space", []rng{{u128{^uint64(0), ^uint64(0) - 1}, u128{^uint64(0), ^uint64(0)}}, {u128{^uint64(0), 0}, u128{^uint64(0), ^uint64(0)}}},
			srcSet{{u128{^uint64(0), 0}, u128{^uint64(0), ^uint64(0)}}}},
		{"carry into hi", []rng{{u128{0, 5}, u128{0, ^uint64(0)}}, {u128{1, 0}, u128{1, 3}}}, srcSet{{u128{0, 5}, u128{1, 3}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeRanges(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("mergeRanges = %v, want %v", got, tt.want)
			}
		})
	}
}
