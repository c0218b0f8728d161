package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// FilterDeltaVersion is the first node protocol version that applies
// MapResponse.FilterDelta; older nodes always get whole filters.
const FilterDeltaVersion = 3

// FilterRuleDelta changes the sources of one rule of the node's current
// packet filter: rule Index (whose Rule must match) loses the prefixes in
// Remove and gains those in Add. A rule's SrcPrefixes in a filter that
// deltas patch are kept in ComparePrefix order without repeats, so the
// result is one well-defined list; everything else in the rule stays.
type FilterRuleDelta struct {
	Index  int            `json:"index"`
	Rule   string         `json:"rule,omitempty"`
	Add    []netip.Prefix `json:"add,omitempty"`
	Remove []netip.Prefix `json:"remove,omitempty"`
}

// ErrBadFilterDelta reports a filter delta that does not fit the filter it
// is applied to; the node's filter is then unknown and it must ask for a
// full map (reconnect).
var ErrBadFilterDelta = errors.New("wire: filter delta does not fit the current filter")

// ComparePrefix orders prefixes by address, then by length.
func ComparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// SortedPrefixes reports whether ps is in strict ComparePrefix order (so
// without repeats), the order FilterRuleDelta patches.
func SortedPrefixes(ps []netip.Prefix) bool {
	for i := 1; i < len(ps); i++ {
		if ComparePrefix(ps[i-1], ps[i]) >= 0 {
			return false
		}
	}
	return true
}

// DiffPrefixes returns what turns old into nw, both in strict ComparePrefix
// order: the prefixes only nw holds and those only old holds. ok is false
// when either list is not strictly sorted (a delta cannot describe it).
func DiffPrefixes(old, nw []netip.Prefix) (add, remove []netip.Prefix, ok bool) {
	if !SortedPrefixes(old) || !SortedPrefixes(nw) {
		return nil, nil, false
	}
	i, j := 0, 0
	for i < len(old) || j < len(nw) {
		switch {
		case j >= len(nw):
			remove = append(remove, old[i])
			i++
		case i >= len(old):
			add = append(add, nw[j])
			j++
		default:
			switch c := ComparePrefix(old[i], nw[j]); {
			case c < 0:
				remove = append(remove, old[i])
				i++
			case c > 0:
				add = append(add, nw[j])
				j++
			default:
				i++
				j++
			}
		}
	}
	return add, remove, true
}

// ApplyFilterDelta returns filter f patched by ds. It never modifies f or
// anything f points to: the result shares the rules ds leaves alone. It
// fails with ErrBadFilterDelta when a delta names a rule f does not hold,
// removes a source the rule lacks, adds one it has, or the rule's sources
// are not in order.
func ApplyFilterDelta(f []FilterRule, ds []FilterRuleDelta) ([]FilterRule, error) {
	out := slices.Clone(f)
	for k, d := range ds {
		if d.Index < 0 || d.Index >= len(out) {
			return nil, fmt.Errorf("%w: delta %d names rule %d of %d", ErrBadFilterDelta, k, d.Index, len(out))
		}
		r := &out[d.Index]
		if r.Rule != d.Rule {
			return nil, fmt.Errorf("%w: rule %d is %q, delta names %q", ErrBadFilterDelta, d.Index, r.Rule, d.Rule)
		}
		src, err := PatchPrefixes(r.SrcPrefixes, d.Add, d.Remove)
		if err != nil {
			return nil, fmt.Errorf("%w: rule %d: %v", ErrBadFilterDelta, d.Index, err)
		}
		r.SrcPrefixes = src
	}
	return out, nil
}

// PatchPrefixes merges the sorted lists: cur without remove, plus add. It
// fails when a list is out of order, remove names a prefix cur lacks or
// add one it has. It never modifies its arguments.
func PatchPrefixes(cur, add, remove []netip.Prefix) ([]netip.Prefix, error) {
	if !SortedPrefixes(cur) || !SortedPrefixes(add) || !SortedPrefixes(remove) {
		return nil, errors.New("sources out of order")
	}
	if len(remove) > len(cur) {
		return nil, errors.New("removes more sources than it has")
	}
	out := make([]netip.Prefix, 0, len(cur)-len(remove)+len(add))
	i, j, k := 0, 0, 0 // cur, add, remove
	for i < len(cur) || j < len(add) {
		if i < len(cur) && k < len(remove) {
			switch c := ComparePrefix(remove[k], cur[i]); {
			case c < 0:
				return nil, fmt.Errorf("removes %v, which it lacks", remove[k])
			case c == 0:
				if j < len(add) && ComparePrefix(add[j], cur[i]) == 0 {
					return nil, fmt.Errorf("adds and removes %v", cur[i])
				}
				i++
				k++
				continue
			}
		}
		switch {
		case j >= len(add):
			out = append(out, cur[i])
			i++
		case i >= len(cur):
			out = append(out, add[j])
			j++
		default:
			switch c := ComparePrefix(cur[i], add[j]); {
			case c < 0:
				out = append(out, cur[i])
				i++
			case c > 0:
				out = append(out, add[j])
				j++
			default:
				return nil, fmt.Errorf("adds %v, which it has", add[j])
			}
		}
	}
	if k < len(remove) {
		return nil, fmt.Errorf("removes %v, which it lacks", remove[k])
	}
	return out, nil
}
