package policy

import (
	"encoding/binary"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// SetPolicy recompiles the graph for p and returns every node whose peers
// or filter changed. Its cost is about that of compiling from scratch.
func (g *Graph) SetPolicy(p *Policy) (affected []wire.NodeID) {
	return g.rebuild(p, g.now)
}

// SetPolicySplit is SetPolicy that tells apart the nodes whose peers
// changed (perhaps their filter too) from those whose filter alone
// changed, which need no new peer list.
func (g *Graph) SetPolicySplit(p *Policy) (peers, filters []wire.NodeID) {
	pb, fb := g.rebuildSplit(p, g.now)
	return g.ids(pb), g.ids(fb)
}

// rebuild recompiles every node for p at now and compares each node's
// peers and filter before and after.
func (g *Graph) rebuild(p *Policy, now time.Time) []wire.NodeID {
	peers, filters := g.rebuildSplit(p, now)
	filters.each(func(s int32) bool {
		peers.set(s)
		return true
	})
	return g.ids(peers)
}

// rebuildSplit is rebuild returning the slots whose peers changed and,
// apart, those whose filter alone changed.
func (g *Graph) rebuildSplit(p *Policy, now time.Time) (peers, filters bitset) {
	in := &interner{sets: map[string]uint32{}, lists: map[*netip.Prefix]uint32{}, listKeys: map[string]uint32{}}
	ids := g.internRules(in)
	before := make([]nodeDesc, len(g.nodes))
	for s, n := range g.nodes {
		if n != nil {
			before[s] = g.describe(n, in, ids)
		}
	}
	old := g.nodes
	g.nodes = make([]*gnode, len(old))
	g.users = map[string][]int32{}
	g.mfa = nil
	g.setRules(p, now)
	g.reparseGrants()
	for s, n := range old {
		if n != nil {
			nw := g.prepare(n.node, int32(s))
			g.update(int32(s), nil, nw, nil)
			g.nodes[s] = nw
		}
	}
	ids = g.internRules(in)
	for s, n := range g.nodes {
		if n == nil {
			continue
		}
		after := g.describe(n, in, ids)
		switch {
		case !slices.Equal(before[s].peers, after.peers):
			peers.set(int32(s))
		case !slices.Equal(before[s].filter, after.filter):
			filters.set(int32(s))
		}
		g.postureDirty.set(int32(s)) // any rule may have changed
	}
	return peers, filters
}

// nodeDesc determines a node's peers and filter exactly: its peers are the
// union of the sets its tokens name, and its filter is spelled out.
type nodeDesc struct {
	peers  []uint64
	filter []string
}

// interner numbers node sets and prefix lists by content, across the graph
// states before and after a rebuild.
type interner struct {
	sets     map[string]uint32
	lists    map[*netip.Prefix]uint32 // by the first element of a shared slice
	listKeys map[string]uint32
	buf      []byte
}

func (in *interner) set(b bitset) uint32 {
	k := b.key()
	id, ok := in.sets[k]
	if !ok {
		id = uint32(len(in.sets))
		in.sets[k] = id
	}
	return id
}

func (in *interner) prefixList(ps []netip.Prefix) uint32 {
	if id, ok := in.lists[&ps[0]]; ok {
		return id
	}
	in.buf = in.buf[:0]
	for _, p := range ps {
		in.buf = appendPrefix(in.buf, p)
	}
	id, ok := in.listKeys[string(in.buf)]
	if !ok {
		id = uint32(len(in.listKeys))
		in.listKeys[string(in.buf)] = id
	}
	in.lists[&ps[0]] = id
	return id
}

func appendPrefix(b []byte, p netip.Prefix) []byte {
	a := p.Addr().As16()
	b = append(b, a[:]...)
	return append(b, byte(p.Bits()), byte(p.Addr().BitLen()))
}

// ruleSets are the interned source and destination sets of one rule.
type ruleSets struct{ src, dst uint32 }

func (g *Graph) internRules(in *interner) []ruleSets {
	out := make([]ruleSets, len(g.rules))
	for i, gr := range g.rules {
		out[i] = ruleSets{src: in.set(gr.src), dst: in.set(gr.dst)}
	}
	return out
}

// Token kinds of a peer description.
const (
	tokDst      = 1 // the rule's destinations
	tokSrc      = 2 // the rule's sources
	tokUser     = 3 // every untagged node of the node's user
	tokUserSrcs = 4 // the node's user's nodes among the rule's sources
	tokGrantDst = 5 // the destinations of a grant of the node
	tokGrantSrc = 6 // the granted node (its slot) of a grant reaching the node
)

func (g *Graph) describe(n *gnode, in *interner, ids []ruleSets) nodeDesc {
	var d nodeDesc
	key := selfKey(n)
	tok := func(kind uint64, id uint32) { d.peers = append(d.peers, kind<<56|uint64(id)) }
	for _, ri := range n.srcRules {
		if g.rules[ri].active {
			tok(tokDst, ids[ri].dst)
			if g.rules[ri].r.hasSelf && key != "" {
				tok(tokUser, 0)
			}
		}
	}
	for _, ri := range n.dstRules {
		if g.rules[ri].active {
			tok(tokSrc, ids[ri].src)
		}
	}
	if key != "" {
		for _, ri := range g.p.selfRules {
			if g.rules[ri].active {
				tok(tokUserSrcs, ids[ri].src)
			}
		}
	}
	for _, gg := range g.grants.byNode[n.node.ID] {
		tok(tokGrantDst, in.set(gg.set))
	}
	for _, gg := range n.grantDst {
		if s, ok := g.slots[gg.Node]; ok {
			tok(tokGrantSrc, uint32(s))
		}
	}
	slices.Sort(d.peers)
	d.peers = slices.Compact(d.peers)

	rules := g.Filter(n.node.ID)
	d.filter = make([]string, len(rules))
	var b []byte
	for i, fr := range rules {
		b = binary.BigEndian.AppendUint32(b[:0], in.prefixList(fr.SrcPrefixes))
		b = append(b, byte(len(fr.Protocols)))
		for _, p := range fr.Protocols {
			b = append(b, byte(p))
		}
		for _, pr := range fr.DstPorts {
			b = appendPrefix(b, pr.Prefix)
			b = binary.BigEndian.AppendUint16(b, pr.First)
			b = binary.BigEndian.AppendUint16(b, pr.Last)
		}
		for _, cg := range fr.CapGrant {
			b = appendCapGrant(b, cg)
		}
		d.filter[i] = string(b)
	}
	slices.Sort(d.filter)
	return d
}

// appendCapGrant spells out a capability grant: its destinations, then
// each capability's name and values, length-prefixed, in name order.
func appendCapGrant(b []byte, cg wire.CapGrant) []byte {
	b = append(b, 0xff)
	b = binary.AppendUvarint(b, uint64(len(cg.Dsts)))
	for _, p := range cg.Dsts {
		b = appendPrefix(b, p)
	}
	names := slices.Sorted(maps.Keys(cg.CapMap))
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, name := range names {
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		vals := cg.CapMap[name]
		b = binary.AppendUvarint(b, uint64(len(vals)))
		for _, v := range vals {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return b
}
