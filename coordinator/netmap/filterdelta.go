package netmap

import (
	"net/netip"
	"reflect"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// A join in a mesh where everyone reaches everyone changes one rule's
// sources in every node's filter: sending each node its whole filter again
// costs the mesh squared (the lists are as large as the mesh). Nodes that
// speak wire.FilterDeltaVersion get only the sources added and removed
// instead. The policy graph shares a rule's source list between every
// node it applies to and never modifies it, so the difference between the
// old and new list is computed once per change (diffCache) and its
// results are shared by every node's delta.

// prefixDiff is what turns one source list into another.
type prefixDiff struct {
	add, remove []netip.Prefix
	ok          bool
}

// diffKey names a pair of source lists by identity: the graph shares them
// read-only, so the same slice header means the same contents.
type diffKey struct {
	old, nw       *netip.Prefix
	oldLen, nwLen int
}

// diffCache remembers the differences computed during one change.
type diffCache map[diffKey]*prefixDiff

func first(ps []netip.Prefix) *netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	return &ps[0]
}

func (c diffCache) diff(old, nw []netip.Prefix) *prefixDiff {
	k := diffKey{first(old), first(nw), len(old), len(nw)}
	if d := c[k]; d != nil {
		return d
	}
	add, remove, ok := wire.DiffPrefixes(old, nw)
	d := &prefixDiff{add: add, remove: remove, ok: ok}
	c[k] = d
	return d
}

// filterDelta returns the rule deltas that turn old into nw, and whether
// they are worth sending: false when the rules differ in anything but
// their sources, or the deltas would not be smaller than nw. An empty
// result with true means the filters are equal.
func filterDelta(old, nw []wire.FilterRule, c diffCache) ([]wire.FilterRuleDelta, bool) {
	if len(old) != len(nw) {
		return nil, false
	}
	var out []wire.FilterRuleDelta
	size := 0
	for i := range nw {
		o, n := &old[i], &nw[i]
		if o.Rule != n.Rule || !slices.Equal(o.DstPorts, n.DstPorts) || !slices.Equal(o.Protocols, n.Protocols) ||
			((len(o.CapGrant) > 0 || len(n.CapGrant) > 0) && !reflect.DeepEqual(o.CapGrant, n.CapGrant)) {
			return nil, false
		}
		if first(o.SrcPrefixes) == first(n.SrcPrefixes) && len(o.SrcPrefixes) == len(n.SrcPrefixes) {
			continue
		}
		d := c.diff(o.SrcPrefixes, n.SrcPrefixes)
		if !d.ok {
			return nil, false
		}
		if len(d.add) == 0 && len(d.remove) == 0 {
			continue
		}
		size += len(d.add) + len(d.remove)
		out = append(out, wire.FilterRuleDelta{Index: i, Rule: n.Rule, Add: d.add, Remove: d.remove})
	}
	if len(out) > 0 && size >= filterSize(nw) {
		return nil, false
	}
	return out, true
}

// filterSize counts the sources in f: what a whole filter costs, next to
// rule deltas.
func filterSize(f []wire.FilterRule) int {
	n := 0
	for i := range f {
		n += len(f[i].SrcPrefixes)
	}
	return n
}
