package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

const routesPolicy = `{
	"groups": {"group:dba": ["ann@example.com"]},
	"hosts": {"corp-db": "10.20.0.5", "corp": "10.20.0.0/24"},
	"tagOwners": {"tag:router": [], "tag:exit": [], "tag:other": []},
	"acls": [
		{"action": "accept", "src": ["group:dba"], "dst": ["corp-db:5432"]},
		{"action": "accept", "src": ["bob@example.com"], "dst": ["autogroup:internet:443"]},
	],
	"grants": [
		{"src": ["carl@example.com"], "dst": ["10.30.0.0/16"], "ip": ["tcp:80"], "via": ["tag:other"]},
	],
}`

// routesNodes: ann (dba), bob, carl, a router of 10.20.0.0/24 and
// 10.30.0.0/16, an exit node, and a second router of 10.30.0.0/16 tagged
// tag:other.
func routesNodes() []Node {
	rtr := tagNode(10, "tag:router")
	rtr.Routes = []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24"), netip.MustParsePrefix("10.30.0.0/16")}
	exit := tagNode(11, "tag:exit")
	exit.Routes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	other := tagNode(12, "tag:other")
	other.Routes = []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}
	return []Node{userNode(1, "ann@example.com"), userNode(2, "bob@example.com"), userNode(3, "carl@example.com"), rtr, exit, other}
}

// TestRoutedFilters checks what each router's filter allows and who its
// peers are, for a CIDR and host destination, autogroup:internet and via.
func TestRoutedFilters(t *testing.T) {
	g := NewGraph(mustParse(t, routesPolicy), t0, routesNodes()...)
	for _, tc := range []struct {
		id     wire.NodeID
		filter []string
		peers  []wire.NodeID
	}{
		// Only the host behind the router, only port 5432, only ann: not
		// the router's own address, not its other route.
		{10, []string{"100.64.0.1 -> 10.20.0.5:5432"}, []wire.NodeID{1}},
		// The public internet, for bob only.
		{11, []string{"100.64.0.2 -> " + strings.Join(internetText(), ":443,") + ":443"}, []wire.NodeID{2}},
		// via: only the tag:other router carries carl's grant.
		{12, []string{"100.64.0.3 -> 10.30.0.0/16:80 [6]"}, []wire.NodeID{3}},
		{1, nil, []wire.NodeID{10}},
		{2, nil, []wire.NodeID{11}},
		{3, nil, []wire.NodeID{12}},
	} {
		got := renderFilter(g.Filter(tc.id))
		if !slices.Equal(got, tc.filter) {
			t.Errorf("node %d filter:\n got %q\nwant %q", tc.id, got, tc.filter)
		}
		if p := peerList(g, tc.id); !slices.Equal(p, tc.peers) {
			t.Errorf("node %d peers %v, want %v", tc.id, p, tc.peers)
		}
	}
}

func internetText() []string {
	var out []string
	for _, p := range internetRanges {
		out = append(out, shortPrefix(p))
	}
	return out
}

// TestRoutesNeverWiden: a denied port, a denied user, the router's own
// address and its other routes are never in its filter.
func TestRoutesNeverWiden(t *testing.T) {
	p := mustParse(t, routesPolicy)
	g := NewGraph(p, t0, routesNodes()...)
	f := g.Filter(10)
	allows := func(src, dst string, port uint16) bool {
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
		for _, r := range f {
			if !slices.ContainsFunc(r.SrcPrefixes, func(p netip.Prefix) bool { return p.Contains(s) }) {
				continue
			}
			for _, dp := range r.DstPorts {
				if dp.Prefix.Contains(d) && dp.First <= port && port <= dp.Last {
					return true
				}
			}
		}
		return false
	}
	for _, tc := range []struct {
		src, dst string
		port     uint16
		want     bool
	}{
		{"100.64.0.1", "10.20.0.5", 5432, true},  // ann, the allowed port
		{"100.64.0.1", "10.20.0.5", 22, false},   // a denied port
		{"100.64.0.2", "10.20.0.5", 5432, false}, // a denied user
		{"100.64.0.1", "10.20.0.6", 5432, false}, // another host of the subnet
		{"100.64.0.1", "100.64.0.10", 5432, false},
		{"100.64.0.1", "10.30.0.5", 5432, false}, // the router's other route
		{"100.64.0.3", "10.30.0.5", 80, false},   // via names another router
		{"100.64.0.2", "8.8.8.8", 443, false},    // not an exit node
		{"100.64.0.1", "10.20.0.5", 5433, false}, // one port more
	} {
		if got := allows(tc.src, tc.dst, tc.port); got != tc.want {
			t.Errorf("%s -> %s:%d allowed=%v, want %v (filter %q)", tc.src, tc.dst, tc.port, got, tc.want, renderFilter(f))
		}
	}
	// The exit node allows no private or mesh destination.
	for _, r := range g.Filter(11) {
		for _, dp := range r.DstPorts {
			for _, a := range []string{"10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1", "169.254.1.1", "fd7a:115c:a1e0::1", "fd00::1", "fe80::1"} {
				if dp.Prefix.Contains(netip.MustParseAddr(a)) {
					t.Errorf("exit node allows %s through %v", a, dp.Prefix)
				}
			}
		}
	}
}

// TestStarSourceHasSubnetRoutes: "*" as a source is the mesh plus every
// approved subnet route, not exit routes; "*" as a destination covers a
// router's routes.
func TestStarSourceHasSubnetRoutes(t *testing.T) {
	p := mustParse(t, `{"tagOwners": {"tag:router": []}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}`)
	nodes := routesNodes()
	g := NewGraph(p, t0, nodes...)
	f := g.Filter(10)
	if len(f) != 1 {
		t.Fatalf("filter %q", renderFilter(f))
	}
	src := f[0].SrcPrefixes
	for _, want := range []string{"10.20.0.0/24", "10.30.0.0/16", "100.64.0.0/11"} {
		if !slices.Contains(src, netip.MustParsePrefix(want)) {
			t.Errorf("sources %v lack %s", src, want)
		}
	}
	for _, not := range []string{"0.0.0.0/0", "::/0"} {
		if slices.Contains(src, netip.MustParsePrefix(not)) {
			t.Errorf("sources %v have the exit route %s", src, not)
		}
	}
	var dsts []string
	for _, d := range f[0].DstPorts {
		dsts = append(dsts, shortPrefix(d.Prefix))
	}
	if want := []string{"10.20.0.0/24", "10.30.0.0/16", "100.64.0.10"}; !slices.Equal(dsts, want) {
		t.Errorf("router destinations %v, want %v", dsts, want)
	}
	// Removing the routers drops their routes from every node's sources,
	// and names those nodes as affected.
	aff := g.Remove(10)
	aff = append(aff, g.Remove(12)...)
	if !slices.Contains(aff, 1) {
		t.Errorf("affected %v lacks node 1", aff)
	}
	for _, r := range g.Filter(1) {
		for _, s := range r.SrcPrefixes {
			if s.Addr().Is4() && s.Addr().As4()[0] == 10 {
				t.Errorf("source %v stays after its routers left", s)
			}
		}
	}
}

// TestSubnetSourceMakesRouterPeer: a CIDR source over a router's route
// makes the router a peer of the destinations, without adding its own
// addresses to the sources.
func TestSubnetSourceMakesRouterPeer(t *testing.T) {
	p := mustParse(t, `{"tagOwners": {"tag:router": [], "tag:exit": [], "tag:other": [], "tag:db": []},
		"acls": [{"action": "accept", "src": ["10.30.0.0/16"], "dst": ["tag:db:5432"]}]}`)
	db := tagNode(20, "tag:db")
	g := NewGraph(p, t0, append(routesNodes(), db)...)
	if got := peerList(g, 20); !slices.Equal(got, []wire.NodeID{10, 12}) {
		t.Errorf("db peers %v, want the two routers of 10.30.0.0/16", got)
	}
	if got := renderFilter(g.Filter(20)); !slices.Equal(got, []string{"10.30.0.0/16 -> 100.64.0.20:5432"}) {
		t.Errorf("db filter %q", got)
	}
}

func TestViaErrors(t *testing.T) {
	for _, tc := range []struct{ name, grant, err string }{
		{"not a tag", `{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["ann@example.com"]}`, "is not a tag"},
		{"a node destination", `{"src": ["*"], "dst": ["autogroup:member"], "ip": ["*"], "via": ["tag:r"]}`, "not to autogroup:member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(`{"tagOwners": {"tag:r": []}, "grants": [` + tc.grant + `]}`))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse: %v, want %q", err, tc.err)
			}
		})
	}
}

// TestViaEmpty: "via": [] and null mean no via, as Tailscale documents.
func TestViaEmpty(t *testing.T) {
	for _, via := range []string{"[]", "null"} {
		p := mustParse(t, `{"grants": [{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": `+via+`}]}`)
		if len(p.rules) != 1 || p.rules[0].via != nil {
			t.Errorf("via %s: rules %+v", via, p.rules)
		}
	}
}

// TestPolicyTestsRoutedDestinations: a policy's tests judge addresses
// behind routers by the rules, through any router.
func TestPolicyTestsRoutedDestinations(t *testing.T) {
	const defs = `"groups": {"group:dba": ["ann@example.com"]},
		"hosts": {"corp-db": "10.20.0.5"},
		"acls": [
			{"action": "accept", "src": ["group:dba"], "dst": ["corp-db:5432", "10.20.0.0/24:443"]},
			{"action": "accept", "src": ["bob@example.com"], "dst": ["autogroup:internet:443"]},
			{"action": "accept", "src": ["carl@example.com"], "dst": ["*:80"]},
		],`
	for _, tc := range []struct {
		name, tests string
		ok          bool
	}{
		{"allowed port and host", `{"src": "ann@example.com", "accept": ["10.20.0.5:5432", "10.20.0.9:443", "corp-db:443"]}`, true},
		{"denied port", `{"src": "ann@example.com", "accept": ["10.20.0.5:22"]}`, false},
		{"denied port as deny", `{"src": "ann@example.com", "deny": ["10.20.0.5:22", "10.20.1.5:443"]}`, true},
		{"denied user", `{"src": "bob@example.com", "accept": ["10.20.0.5:5432"]}`, false},
		{"internet", `{"src": "bob@example.com", "accept": ["8.8.8.8:443", "2001:db8::1:443"], "deny": ["10.1.2.3:443", "100.64.0.9:443", "8.8.8.8:80"]}`, true},
		{"internet is not private", `{"src": "bob@example.com", "accept": ["192.168.1.1:443"]}`, false},
		{"star reaches every address", `{"src": "carl@example.com", "accept": ["10.20.0.5:80", "8.8.8.8:80"], "deny": ["10.20.0.5:81"]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(`{` + defs + `"tests": [` + tc.tests + `]}`))
			if (err == nil) != tc.ok {
				t.Errorf("Parse: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// filtersStayLocal checks that every destination in every node's filter
// lies inside the node's own addresses or its approved routes: routes
// never open anything else on a node. It returns what is wrong, or "".
func filtersStayLocal(g *Graph, nodes []Node) string {
	for _, n := range nodes {
		local := append(slices.Clone(n.Addresses), normalRoutes(n.Routes)...)
		for _, r := range g.Filter(n.ID) {
			for _, d := range r.DstPorts {
				if !insideAny(local, d.Prefix) {
					return fmt.Sprintf("node %d: filter destination %v is outside its addresses and routes %v", n.ID, d.Prefix, local)
				}
			}
			for _, cg := range r.CapGrant {
				for _, p := range cg.Dsts {
					if !insideAny(n.Addresses, p) {
						return fmt.Sprintf("node %d: capability destination %v is not its own address", n.ID, p)
					}
				}
			}
		}
	}
	return ""
}

// TestViaAppCapsGoNowhere: a grant with via delivers its capabilities to
// no node, not to a mesh node inside its destinations.
func TestViaAppCapsGoNowhere(t *testing.T) {
	p := mustParse(t, `{"tagOwners": {"tag:router": []}, "grants": [
		{"src": ["*"], "dst": ["100.64.0.0/24"], "app": {"example.com/cap/x": [{}]}, "via": ["tag:router"]},
		{"src": ["*"], "dst": ["100.64.0.0/24"], "app": {"example.com/cap/y": [{}]}},
	]}`)
	rtr := tagNode(10, "tag:router")
	rtr.Routes = []netip.Prefix{netip.MustParsePrefix("100.64.0.0/24")}
	g := NewGraph(p, t0, userNode(1, "ann@example.com"), rtr)
	for _, id := range []wire.NodeID{1, 10} {
		for _, line := range renderFilter(g.Filter(id)) {
			if strings.Contains(line, "cap/x") {
				t.Errorf("node %d got the via grant's capability: %s", id, line)
			}
		}
	}
	if f := renderFilter(g.Filter(1)); len(f) != 1 || !strings.Contains(f[0], "cap/y") {
		t.Errorf("node 1 filter %q, want the direct grant's capability", f)
	}
}
