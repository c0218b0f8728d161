package netmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// routesPolicy lets user 1 use one of the router's two subnets and the
// exit node, and user 2 the other subnet, the exit node's own address and
// the subnet behind it, but not its exit route.
const routesPolicy = `{
	"tagOwners": {"tag:router": [], "tag:exit": []},
	"acls": [
		{"action": "accept", "src": ["u1@example.com"], "dst": ["10.20.0.0/24:443"]},
		{"action": "accept", "src": ["u1@example.com"], "dst": ["autogroup:internet:*"]},
		{"action": "accept", "src": ["u2@example.com"], "dst": ["10.30.0.0/24:*"]},
		{"action": "accept", "src": ["u2@example.com"], "dst": ["tag:exit:22", "10.40.0.0/24:*"]},
	],
}`

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

// peerRoutes returns the routes each peer carries in ns.
func peerRoutes(ns []wire.Node) map[wire.NodeID][]netip.Prefix {
	m := make(map[wire.NodeID][]netip.Prefix)
	for _, n := range ns {
		m[n.ID] = n.Routes
	}
	return m
}

func wantRoutes(t *testing.T, who string, got map[wire.NodeID][]netip.Prefix, id wire.NodeID, want ...string) {
	t.Helper()
	if !slices.Equal(got[id], prefixes(want...)) {
		t.Errorf("%s sees node %d with routes %v, want %v", who, id, got[id], want)
	}
}

// TestPeersLearnOnlyUsableRoutes: a node learns a router's route only if
// some rule lets it use it, and learns it when a policy change does.
func TestPeersLearnOnlyUsableRoutes(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, routesPolicy)})
	router := testNode(10, 9, "tag:router")
	router.Wire.Routes = prefixes("10.20.0.0/24", "10.30.0.0/24")
	exit := testNode(11, 9, "tag:exit")
	exit.Wire.Routes = prefixes("0.0.0.0/0", "10.40.0.0/24", "::/0")
	for _, n := range []Node{testNode(1, 1), testNode(2, 2), router, exit} {
		e.Upsert(n)
	}
	s1, _ := e.Subscribe(1)
	s2, _ := e.Subscribe(2)
	sr, _ := e.Subscribe(10)

	m1 := peerRoutes(next(t, s1).Peers)
	wantRoutes(t, "user 1", m1, 10, "10.20.0.0/24")
	wantRoutes(t, "user 1", m1, 11, "0.0.0.0/0", "::/0")
	m2 := peerRoutes(next(t, s2).Peers)
	wantRoutes(t, "user 2", m2, 10, "10.30.0.0/24")
	wantRoutes(t, "user 2", m2, 11, "10.40.0.0/24")
	if self := next(t, sr).Self; !slices.Equal(self.Routes, router.Wire.Routes) {
		t.Errorf("the router's own record has routes %v, want all of %v", self.Routes, router.Wire.Routes)
	}

	// A new router record (a re-approval) reaches each peer filtered.
	router.Wire.Hostname = "renamed"
	e.Upsert(router)
	wantRoutes(t, "user 1 (delta)", peerRoutes(next(t, s1).PeersChanged), 10, "10.20.0.0/24")
	wantRoutes(t, "user 2 (delta)", peerRoutes(next(t, s2).PeersChanged), 10, "10.30.0.0/24")
	next(t, sr)

	// The policy now lets user 1 use the second subnet: user 1 learns it,
	// user 2 hears nothing about the router.
	e.SetPolicy(mustPolicy(t, routesPolicy[:len(routesPolicy)-4]+`
		{"action": "accept", "src": ["u1@example.com"], "dst": ["10.30.0.5:22"]},
	],
}`))
	wantRoutes(t, "user 1 after the policy change", peerRoutes(next(t, s1).PeersChanged), 10, "10.20.0.0/24", "10.30.0.0/24")
	nothingQueued(t, s2)
}

func TestAddrRanges(t *testing.T) {
	rs := newAddrRanges(prefixes("100.64.0.1/32", "100.64.0.0/30", "10.0.0.0/8", "fd7a:115c:a1e0::/48", "100.64.0.8/31"))
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"100.64.0.0", true}, {"100.64.0.3", true}, {"100.64.0.4", false}, {"100.64.0.9", true},
		{"10.255.255.255", true}, {"11.0.0.0", false}, {"9.255.255.255", false},
		{"fd7a:115c:a1e0::1", true}, {"fd7a:115c:a1e1::", false}, {"::ffff:10.1.2.3", false},
	} {
		if got := rs.contains(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("contains(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
	all := newAddrRanges(prefixes("0.0.0.0/0", "::/0"))
	if !all.contains(netip.MustParseAddr("255.255.255.255")) || !all.contains(netip.MustParseAddr("::")) {
		t.Error("the whole address space misses its ends")
	}
}

// TestAddrRangesMatchPrefixes checks contains and xor against
// netip.Prefix.Contains on random prefixes and addresses of both
// families, the ends of the address space included.
func TestAddrRangesMatchPrefixes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func(v6 bool) netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		switch r.IntN(4) {
		case 0: // the low end
			b = [16]byte{}
		case 1: // the high end
			for i := range b {
				b[i] = 0xff
			}
		}
		if v6 {
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	prefix := func() netip.Prefix {
		v6 := r.IntN(2) == 0
		bits := r.IntN(33)
		if v6 {
			bits = r.IntN(129)
		}
		return netip.PrefixFrom(addr(v6), bits).Masked()
	}
	in := func(ps []netip.Prefix, a netip.Addr) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for round := 0; round < 2000; round++ {
		var pa, pb []netip.Prefix
		for range r.IntN(6) {
			pa = append(pa, prefix())
		}
		pb = slices.Clone(pa)
		for range r.IntN(3) {
			pb = append(pb, prefix())
		}
		if len(pb) > 0 && r.IntN(2) == 0 {
			pb = pb[1:]
		}
		a, b := newAddrRanges(pa), newAddrRanges(pb)
		x := a.xor(b)
		probes := []netip.Addr{addr(false), addr(true)}
		for _, p := range append(slices.Clone(pa), pb...) {
			probes = append(probes, p.Addr(), lastAddr(p), p.Addr().Prev(), lastAddr(p).Next())
		}
		for _, q := range probes {
			if !q.IsValid() {
				continue
			}
			if got, want := a.contains(q), in(pa, q); got != want {
				t.Fatalf("%v contains %v = %v, want %v", pa, q, got, want)
			}
			if got, want := x.contains(q), in(pa, q) != in(pb, q); got != want {
				t.Fatalf("xor of %v and %v contains %v = %v, want %v", pa, pb, q, got, want)
			}
		}
	}
}

// lastAddr is the highest address in p (masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	for i := off + p.Bits(); i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// TestRouteDeltasMatchFullMaps applies random policy, route and membership
// changes and checks, after each, that every node's peers as its deltas
// built them carry exactly the routes a fresh full map would give it.
func TestRouteDeltasMatchFullMaps(t *testing.T) {
	wider := routesPolicy[:len(routesPolicy)-4] + `
		{"action": "accept", "src": ["u1@example.com"], "dst": ["10.30.0.5:22"]},
	],
}`
	policies := []string{routesPolicy, wider, `{
		"tagOwners": {"tag:router": [], "tag:exit": []},
		"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
	}`, `{
		"tagOwners": {"tag:router": [], "tag:exit": []},
		"acls": [
			{"action": "accept", "src": ["u1@example.com", "u3@example.com"], "dst": ["10.30.0.0/25:80", "10.40.0.0/24:*"]},
			{"action": "accept", "src": ["u2@example.com"], "dst": ["autogroup:internet:443", "tag:router:22"]},
		],
	}`}
	routeSets := [][]string{nil, {"10.20.0.0/24"}, {"10.20.0.0/24", "10.30.0.0/24"}, {"0.0.0.0/0", "10.40.0.0/24", "::/0"}, {"10.0.0.0/8", "10.30.0.0/24"}}
	r := rand.New(rand.NewPCG(7, 11))
	e := newEngine(t, Config{Policy: mustPolicy(t, policies[0])})
	nodes := map[wire.NodeID]Node{}
	for id := 1; id <= 9; id++ {
		n := testNode(id, int64(id%3+1))
		if id > 6 {
			n = testNode(id, 9, []string{"tag:router", "tag:exit"}[id%2])
			n.Wire.Routes = prefixes(routeSets[r.IntN(len(routeSets))]...)
		}
		nodes[n.ID()] = n
		e.Upsert(n)
	}
	models := map[wire.NodeID]map[wire.NodeID][]netip.Prefix{}
	streams := map[wire.NodeID]*Stream{}
	for id := range nodes {
		streams[id], _ = e.Subscribe(id)
		models[id] = map[wire.NodeID][]netip.Prefix{}
	}
	for step := 0; step < 300; step++ {
		switch op := r.IntN(4); {
		case op == 0:
			e.SetPolicy(mustPolicy(t, policies[r.IntN(len(policies))]))
		case op == 1: // a router's routes change
			id := wire.NodeID(7 + r.IntN(3))
			n := nodes[id]
			n.Wire.Routes = prefixes(routeSets[r.IntN(len(routeSets))]...)
			nodes[id] = n
			e.Upsert(n)
		case op == 2: // a laptop changes hands
			id := wire.NodeID(1 + r.IntN(6))
			n := nodes[id]
			n.UserID = int64(1 + r.IntN(3))
			n.Wire.User = fmt.Sprintf("u%d@example.com", n.UserID)
			nodes[id] = n
			e.Upsert(n)
		default: // a laptop leaves or comes back
			id := wire.NodeID(1 + r.IntN(6))
			n := nodes[id]
			n.Authorized = !n.Authorized
			nodes[id] = n
			e.Upsert(n)
		}
		for id, s := range streams {
			for s.Pending() > 0 {
				resp := next(t, s)
				m := models[id]
				if resp.Full {
					clear(m)
					for _, p := range resp.Peers {
						m[p.ID] = p.Routes
					}
				}
				for _, p := range resp.PeersChanged {
					m[p.ID] = p.Routes
				}
				for _, p := range resp.PeersRemoved {
					delete(m, p)
				}
			}
			// What the node should know, computed afresh from the routers'
			// filters rather than from the engine's remembered views.
			e.mu.Lock()
			want := e.fullMap(id, e.now())
			got := peerRoutes(want.Peers)
			for pid := range got {
				if p := e.nodes[pid]; len(p.Wire.Routes) > 0 {
					got[pid] = newRouteView(p, e.graph.Filter(pid)).record(&p.Wire, e.nodes[id]).Routes
				}
			}
			e.mu.Unlock()
			if !maps.EqualFunc(got, models[id], slices.Equal) {
				t.Fatalf("step %d: node %d built peers' routes %v from deltas, its filters say %v", step, id, models[id], got)
			}
		}
	}
}
