package netmap

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// routeView answers, for one router, which of its routes a viewer may use:
// a route is usable when some packet rule of the router's own filter admits
// one of the viewer's addresses to a destination that needs the route. A
// node learns only the routes it may use, so the netmap never tells a
// laptop about networks the policy keeps it out of.
//
// A destination needs a route when it overlaps it and does not lie within
// the router's own addresses or a narrower route of the router: a rule for
// the router's mesh address or for 10.20.0.0/24 does not hand out the
// router's exit route 0.0.0.0/0, which also covers them.
type routeView struct {
	routes []netip.Prefix
	srcs   []addrRanges // srcs[i]: the sources that may use routes[i]
}

// newRouteView builds n's view from its packet filter. It costs one pass
// over the filter; each viewer's lookup then costs a binary search per
// route.
func newRouteView(n *Node, filter []wire.FilterRule) *routeView {
	v := &routeView{routes: n.Wire.Routes, srcs: make([]addrRanges, len(n.Wire.Routes))}
	for i, r := range n.Wire.Routes {
		var srcs []netip.Prefix
		for _, rule := range filter {
			if needsRoute(rule.DstPorts, r, n) {
				srcs = append(srcs, rule.SrcPrefixes...)
			}
		}
		v.srcs[i] = newAddrRanges(srcs)
	}
	return v
}

// needsRoute reports whether any of dsts needs route r of router n.
func needsRoute(dsts []wire.PortRange, r netip.Prefix, n *Node) bool {
	for _, d := range dsts {
		if !d.Prefix.Overlaps(r) || within(d.Prefix, n.Wire.Addresses) {
			continue
		}
		narrower := false
		for _, o := range n.Wire.Routes {
			if o.Bits() > r.Bits() && r.Overlaps(o) && o.Bits() <= d.Prefix.Bits() && o.Contains(d.Prefix.Addr()) {
				narrower = true
				break
			}
		}
		if !narrower {
			return true
		}
	}
	return false
}

// within reports whether p lies inside one of ps.
func within(p netip.Prefix, ps []netip.Prefix) bool {
	for _, q := range ps {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// usable returns the routes a node with the given addresses may use, in
// the router's order; it returns the router's own slice when every route
// is usable, so the common case copies nothing.
func (v *routeView) usable(addrs []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	all := true
	for i, r := range v.routes {
		ok := false
		for _, a := range addrs {
			if v.srcs[i].contains(a.Addr()) {
				ok = true
				break
			}
		}
		if ok {
			out = append(out, r)
		} else {
			all = false
		}
	}
	if all {
		return v.routes
	}
	return out
}

// record returns router's record as the viewer receives it: the shared
// record when the viewer may use every route, else a copy with only the
// usable ones.
func (v *routeView) record(router *wire.Node, viewer *Node) *wire.Node {
	routes := v.usable(viewer.Wire.Addresses)
	if len(routes) == len(router.Routes) {
		return router
	}
	rec := *router
	rec.Routes = routes
	return &rec
}

// viewChange is which sources may use a different set of a router's
// routes than before: all of them, or those in diff.
type viewChange struct {
	all  bool
	diff addrRanges
}

func (c viewChange) empty() bool { return !c.all && len(c.diff) == 0 }

func (c viewChange) touches(addrs []netip.Prefix) bool {
	if c.all {
		return true
	}
	for _, a := range addrs {
		if c.diff.contains(a.Addr()) {
			return true
		}
	}
	return false
}

// changedSince returns the sources whose usable routes differ between old
// (nil: never sent) and v. A new node's join changes one address, so its
// router's other peers are skipped after a lookup in a one-range set.
func (v *routeView) changedSince(old *routeView) viewChange {
	if old == nil || !slices.Equal(old.routes, v.routes) {
		return viewChange{all: true}
	}
	var c viewChange
	for i := range v.routes {
		c.diff = append(c.diff, v.srcs[i].xor(old.srcs[i])...)
	}
	// The per-route differences may overlap; membership only needs them
	// sorted.
	slices.SortFunc(c.diff, func(a, b addrRange) int { return a.from.compare(b.from) })
	c.diff = mergeRanges(c.diff)
	return c
}

// routeViewOf returns n's route view when n is an active router, or nil.
// Callers hold e.mu.
func (e *Engine) routeViewOf(n *Node, now time.Time) *routeView {
	if len(n.Wire.Routes) == 0 || !n.Active(now) {
		return nil
	}
	return newRouteView(n, e.graph.CompactFilter(n.ID()))
}

// differsFor reports whether a node with addrs may use other routes under
// v than under old (either may be nil: no routes).
func (v *routeView) differsFor(old *routeView, addrs []netip.Prefix) bool {
	if v == nil || old == nil {
		return v != old
	}
	return !slices.Equal(v.usable(addrs), old.usable(addrs))
}

// recordTo queues n's record to each connected active peer: one shared
// record, or for a router each viewer's own, carrying only the routes the
// viewer may use. send, if set, decides for each stream whether it gets
// the record, given n's new route view. Callers hold e.mu.
func (e *Engine) recordTo(n *Node, now time.Time, send func(s *Stream, view *routeView) bool) {
	view := e.routeViewOf(n, now)
	e.setRouteView(n.ID(), view)
	shared := &delta{changed: &n.Wire}
	e.forPeers(n, now, func(s *Stream) {
		if send != nil && !send(s, view) {
			return
		}
		if view == nil {
			s.push(shared)
			return
		}
		rec := view.record(&n.Wire, e.nodes[s.id])
		if rec == &n.Wire {
			s.push(shared)
			return
		}
		s.push(&delta{changed: rec})
	})
}

// setRouteView remembers the view last sent for router id (nil: none).
// Callers hold e.mu.
func (e *Engine) setRouteView(id wire.NodeID, v *routeView) {
	if v == nil {
		delete(e.routeViews, id)
		return
	}
	e.routeViews[id] = v
}

// routesChanged re-sends the record of each router in ids whose filter
// may have changed to the peers whose usable routes changed with it: a
// policy change or a new source can widen or narrow what a peer may use
// without touching the router's record. Callers hold e.mu.
func (e *Engine) routesChanged(ids []wire.NodeID, now time.Time) {
	for _, id := range ids {
		if n := e.nodes[id]; n != nil && len(n.Wire.Routes) > 0 {
			e.routeChanged(n, e.graph.CompactFilter(id), now)
		}
	}
}

// routeChanged is routesChanged for one router whose filter is filter.
// Callers hold e.mu.
func (e *Engine) routeChanged(n *Node, filter []wire.FilterRule, now time.Time) {
	old := e.routeViews[n.ID()]
	var view *routeView
	if n.Active(now) {
		view = newRouteView(n, filter)
	}
	e.setRouteView(n.ID(), view)
	if view == nil {
		return
	}
	changed := view.changedSince(old)
	if changed.empty() {
		return
	}
	e.forPeers(n, now, func(s *Stream) {
		if p := e.nodes[s.id]; changed.touches(p.Wire.Addresses) {
			s.push(&delta{changed: view.record(&n.Wire, p)})
		}
	})
}

// addrKey orders addresses of both families on one line: every IPv4
// address before every IPv6 one (an IPv4-mapped IPv6 address is IPv6, as
// in netip.Prefix.Contains), and one past the last IPv6 address
// (fam 7) after them all, so half-open ranges never overflow.
type addrKey struct {
	fam    uint8 // 4, 6, or 7 for the end of the line
	hi, lo uint64
}

func keyOf(a netip.Addr) addrKey {
	if a.Is4() {
		b := a.As4()
		return addrKey{fam: 4, lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return addrKey{fam: 6, hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (k addrKey) compare(o addrKey) int {
	if c := cmp.Compare(k.fam, o.fam); c != 0 {
		return c
	}
	if c := cmp.Compare(k.hi, o.hi); c != 0 {
		return c
	}
	return cmp.Compare(k.lo, o.lo)
}

// endOf is the key one past the last address of p (masked).
func endOf(p netip.Prefix) addrKey {
	k := keyOf(p.Addr())
	if k.fam == 4 {
		k.lo += 1 << (32 - p.Bits()) // at most 2^32: still inside fam 4's uint64
		return k
	}
	host := 128 - p.Bits()
	switch {
	case host == 128:
		return addrKey{fam: 7}
	case host >= 64:
		k.lo = 0
		k.hi += 1 << (host - 64) // hi is a multiple of this step
		if k.hi == 0 {
			return addrKey{fam: 7} // carried past the last address
		}
	default:
		lo := k.lo + 1<<host
		if lo < k.lo {
			k.hi++
			if k.hi == 0 {
				return addrKey{fam: 7}
			}
		}
		k.lo = lo
	}
	return k
}

// addrRanges is a set of addresses held as sorted, disjoint, half-open
// ranges, so membership is a binary search.
type addrRanges []addrRange

type addrRange struct{ from, end addrKey }

func newAddrRanges(ps []netip.Prefix) addrRanges {
	rs := make(addrRanges, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		rs = append(rs, addrRange{keyOf(p.Addr()), endOf(p)})
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.from.compare(b.from) })
	return mergeRanges(rs)
}

// mergeRanges joins the overlapping and adjacent ranges of rs, sorted by
// start, in place.
func mergeRanges(rs addrRanges) addrRanges {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.from.compare(out[n-1].end) <= 0 {
			if r.end.compare(out[n-1].end) > 0 {
				out[n-1].end = r.end
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func (rs addrRanges) contains(a netip.Addr) bool {
	k := keyOf(a)
	// The first range ending after k holds k if it starts at or before it.
	i := sort.Search(len(rs), func(i int) bool { return rs[i].end.compare(k) > 0 })
	return i < len(rs) && rs[i].from.compare(k) <= 0
}

// xor returns the addresses in exactly one of a and b: the sources that
// gained or lost a route between two versions of a router's filter.
func (a addrRanges) xor(b addrRanges) addrRanges {
	if slices.Equal(a, b) {
		return nil
	}
	pts := make([]addrKey, 0, 2*(len(a)+len(b)))
	for _, r := range a {
		pts = append(pts, r.from, r.end)
	}
	for _, r := range b {
		pts = append(pts, r.from, r.end)
	}
	slices.SortFunc(pts, addrKey.compare)
	// Each point toggles membership; a point met twice toggles nothing.
	var out addrRanges
	in := false
	var from addrKey
	for i := 0; i < len(pts); {
		j := i
		for j < len(pts) && pts[j] == pts[i] {
			j++
		}
		if (j-i)%2 == 1 {
			if in {
				out = append(out, addrRange{from, pts[i]})
			} else {
				from = pts[i]
			}
			in = !in
		}
		i = j
	}
	return out
}
