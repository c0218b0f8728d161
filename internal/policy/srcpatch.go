package policy

import (
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// A rule whose sources are most of a 10,000-node mesh lists 20,000
// addresses; rebuilding and sorting that list for every node that joins or
// leaves costs the mesh per change. When a change only moves one node in
// or out of a plain rule's sources (no literal addresses, no "*"), and no
// other node has its addresses, the graph records the addresses to add or
// remove (grule.patch) and prefixes merges them into the sorted list it
// built last: a copy, no sort, no walk over every source. Anything else
// marks the list for a rebuild from scratch.

// srcPatch is what turns a rule's last built source list into the current
// one: each address with true is to be added, with false removed.
type srcPatch map[netip.Prefix]bool

// maxPatch bounds the addresses a patch holds before the rule is rebuilt
// from scratch instead.
func maxPatch(built int) int { return 64 + built/8 }

// noteSrcChange records that gr's sources changed with node slot moving
// from old to nw (wasS, isS: whether it was and is an eligible source;
// contribChanged: whether it stayed one with other addresses).
func (g *Graph) noteSrcChange(gr *grule, old, nw *gnode, wasS, isS, contribChanged bool) {
	gr.dirty = true
	r := gr.r
	if !gr.patchable || contribChanged || wasS == isS || r.srcAll || r.srcHasPrefix || len(r.srcLiterals) > 0 {
		gr.patchable = false
		return
	}
	n, add := nw, true
	if wasS {
		n, add = old, false
	}
	if gr.patch == nil {
		gr.patch = srcPatch{}
	}
	for _, a := range n.addrs {
		if !g.exclusive(a, old) {
			gr.patchable = false
			return
		}
		if was, ok := gr.patch[a]; ok {
			if was == add {
				gr.patchable = false // added twice: not what the graph expects
				return
			}
			delete(gr.patch, a) // an add and a remove cancel out
			continue
		}
		gr.patch[a] = add
	}
	if len(gr.patch) > maxPatch(len(gr.prefixes)) {
		gr.patchable = false
	}
}

// exclusive reports whether no node but old (which may be nil) holds
// address a. The count is of the graph before the change being applied.
func (g *Graph) exclusive(a netip.Prefix, old *gnode) bool {
	c := g.addrCount[a]
	if old != nil && slices.Contains(old.addrs, a) {
		c--
	}
	return c == 0
}

// countAddrs moves the address counts from old to nw (either may be nil).
func (g *Graph) countAddrs(old, nw *gnode) {
	if g.addrCount == nil {
		g.addrCount = map[netip.Prefix]int{}
	}
	if old != nil {
		for _, a := range old.addrs {
			if g.addrCount[a]--; g.addrCount[a] <= 0 {
				delete(g.addrCount, a)
			}
		}
	}
	if nw != nil {
		for _, a := range nw.addrs {
			g.addrCount[a]++
		}
	}
}

// patched returns gr's last built list with its patch applied, or false
// when the patch does not fit it (then the caller rebuilds).
func patched(built []netip.Prefix, p srcPatch) ([]netip.Prefix, bool) {
	var add, remove []netip.Prefix
	for a, in := range p {
		if in {
			add = append(add, a)
		} else {
			remove = append(remove, a)
		}
	}
	slices.SortFunc(add, wire.ComparePrefix)
	slices.SortFunc(remove, wire.ComparePrefix)
	out, err := wire.PatchPrefixes(built, add, remove)
	return out, err == nil
}
