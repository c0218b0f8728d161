package policy

import (
	"math/bits"
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// Mesh addresses are handed out densely (100.64.0.1, .2, … and the IPv6
// address with the same last 32 bits), so a rule whose sources are most of
// the mesh lists long runs of consecutive /32s and /128s. CompactPrefixes
// turns such a list into the fewest prefixes that cover exactly the same
// addresses: 10,000 consecutive nodes become about 30 prefixes instead of
// 20,000, which is what makes a filter change at 10,000 nodes cheap to
// build, send and apply.

// u128 is an address (or an address count) as a 128-bit number.
type u128 struct{ hi, lo uint64 }

func u128Of(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var u u128
	for i := 0; i < 8; i++ {
		u.hi = u.hi<<8 | uint64(b[i])
		u.lo = u.lo<<8 | uint64(b[8+i])
	}
	return u
}

// addr turns u back into an address of the family with bitLen bits.
func (u u128) addr(bitLen int) netip.Addr {
	if bitLen == 32 {
		return netip.AddrFrom4([4]byte{byte(u.lo >> 24), byte(u.lo >> 16), byte(u.lo >> 8), byte(u.lo)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(u.hi >> (56 - 8*i))
		b[8+i] = byte(u.lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

func (u u128) cmp(v u128) int {
	switch {
	case u.hi < v.hi || (u.hi == v.hi && u.lo < v.lo):
		return -1
	case u == v:
		return 0
	}
	return 1
}

func (u u128) add(v u128) (u128, bool) {
	lo, c := bits.Add64(u.lo, v.lo, 0)
	hi, c := bits.Add64(u.hi, v.hi, c)
	return u128{hi, lo}, c != 0
}

func (u u128) sub(v u128) u128 {
	lo, b := bits.Sub64(u.lo, v.lo, 0)
	hi, _ := bits.Sub64(u.hi, v.hi, b)
	return u128{hi, lo}
}

// pow2 is 2**k for k < 128.
func pow2(k int) u128 {
	if k >= 64 {
		return u128{hi: 1 << (k - 64)}
	}
	return u128{lo: 1 << k}
}

// trailingZeros counts u's trailing zero bits (128 for zero).
func (u u128) trailingZeros() int {
	if u.lo != 0 {
		return bits.TrailingZeros64(u.lo)
	}
	return 64 + bits.TrailingZeros64(u.hi)
}

// log2 is the index of u's highest set bit (u must not be zero).
func (u u128) log2() int {
	if u.hi != 0 {
		return 127 - bits.LeadingZeros64(u.hi)
	}
	return 63 - bits.LeadingZeros64(u.lo)
}

// span is the addresses [first, last] of one family.
type span struct {
	bitLen      int
	first, last u128
}

func spanOf(p netip.Prefix) span {
	p = p.Masked()
	l := p.Addr().BitLen()
	first := u128Of(p.Addr())
	host := l - p.Bits()
	last := first
	if host > 0 {
		size := pow2(host)
		if host == 128 {
			last = u128{^uint64(0), ^uint64(0)}
		} else {
			last, _ = first.add(size.sub(u128{lo: 1}))
		}
	}
	return span{bitLen: l, first: first, last: last}
}

// CompactPrefixes returns the fewest prefixes that hold exactly the
// addresses ps holds, in strict wire.ComparePrefix order (so without
// repeats or overlaps). IPv4 and IPv6 addresses never merge with each
// other. ps is not modified; when it is already compact (sorted, no two
// prefixes overlapping or adjacent to merge) it is returned as is.
func CompactPrefixes(ps []netip.Prefix) []netip.Prefix {
	spans := make([]span, 0, len(ps))
	sorted := true // ps in strict ComparePrefix order and masked: so are spans
	for i, p := range ps {
		if p.IsValid() {
			spans = append(spans, spanOf(p))
		}
		if !p.IsValid() || p != p.Masked() || (i > 0 && wire.ComparePrefix(ps[i-1], p) >= 0) {
			sorted = false
		}
	}
	if sorted {
		return compactSpans(ps, spans)
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.bitLen != b.bitLen {
			return a.bitLen - b.bitLen
		}
		if c := a.first.cmp(b.first); c != 0 {
			return c
		}
		return b.last.cmp(a.last)
	})
	return compactSpans(ps, spans)
}

// compactSpans merges the sorted spans of ps and returns them as prefixes
// (ps itself when that is what they are).
func compactSpans(ps []netip.Prefix, spans []span) []netip.Prefix {
	merged := spans[:0]
	for _, s := range spans {
		if n := len(merged); n > 0 {
			cur := &merged[n-1]
			if cur.bitLen == s.bitLen {
				next, overflow := cur.last.add(u128{lo: 1})
				if overflow || s.first.cmp(next) <= 0 {
					if s.last.cmp(cur.last) > 0 {
						cur.last = s.last
					}
					continue
				}
			}
		}
		merged = append(merged, s)
	}
	var out []netip.Prefix
	for _, s := range merged {
		out = appendSpan(out, s)
	}
	if slices.Equal(out, ps) {
		return ps
	}
	return out
}

// appendSpan appends the fewest prefixes covering s, lowest first.
func appendSpan(out []netip.Prefix, s span) []netip.Prefix {
	first := s.first
	for {
		// The largest block aligned at first that ends at or before last.
		k := min(first.trailingZeros(), s.bitLen)
		remaining := s.last.sub(first) // count - 1
		if remaining != (u128{^uint64(0), ^uint64(0)}) {
			count, _ := remaining.add(u128{lo: 1})
			k = min(k, count.log2())
		}
		out = append(out, netip.PrefixFrom(first.addr(s.bitLen), s.bitLen-k))
		if k == s.bitLen {
			return out // the whole family
		}
		blockLast, _ := first.add(pow2(k).sub(u128{lo: 1}))
		if blockLast.cmp(s.last) >= 0 {
			return out
		}
		first, _ = blockLast.add(u128{lo: 1})
	}
}
