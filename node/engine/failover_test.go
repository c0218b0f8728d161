package engine

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// twoRouters returns two routers for 10.20.0.0/24, IDs 3 and 5, online.
func twoRouters() (a, b wire.Node) {
	pfx := netip.MustParsePrefix
	a = wire.Node{ID: 3, NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(), Online: true,
		Addresses: []netip.Prefix{pfx("100.64.0.3/32")}, Routes: []netip.Prefix{pfx("10.20.0.0/24")},
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}}
	b = wire.Node{ID: 5, NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(), Online: true,
		Addresses: []netip.Prefix{pfx("100.64.0.5/32")}, Routes: []netip.Prefix{pfx("10.20.0.0/24")},
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}}
	return a, b
}

// TestAssignRoutesFailover: which of two routers carries a prefix, by
// their Online flags and this node's demotions.
func TestAssignRoutesFailover(t *testing.T) {
	t.Parallel()
	a, b := twoRouters()
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name       string
		aOn, bOn   bool
		aDem, bDem time.Time // zero: not demoted
		wantA      bool
	}{
		{"both fine: the lowest ID", true, true, time.Time{}, time.Time{}, true},
		{"lowest offline", false, true, time.Time{}, time.Time{}, false},
		{"lowest demoted", true, true, t0, time.Time{}, false},
		{"both demoted, the lowest first: back to it", true, true, t0, t0.Add(time.Second), true},
		{"both demoted, the other first", true, true, t0.Add(time.Second), t0, false},
		{"lowest demoted, the other offline: demoted beats offline", true, false, t0, time.Time{}, true},
		{"both offline: the lowest ID", false, false, time.Time{}, time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := a, b
			a.Online, b.Online = tc.aOn, tc.bOn
			dem := map[key.NodePublic]time.Time{}
			if !tc.aDem.IsZero() {
				dem[a.NodeKey] = tc.aDem
			}
			if !tc.bDem.IsZero() {
				dem[b.NodeKey] = tc.bDem
			}
			want := b.NodeKey
			if tc.wantA {
				want = a.NodeKey
			}
			for _, order := range [][]wire.Node{{a, b}, {b, a}} {
				if got := assignRoutes(order, dem)[a.Routes[0]]; got != want {
					t.Errorf("carrier %v, want %v (a=%v b=%v)", got.ShortString(), want.ShortString(), a.NodeKey.ShortString(), b.NodeKey.ShortString())
				}
			}
		})
	}
}

// TestLiftDemotions: a demotion ends only when the router shows it came
// back (a new disco key, or Online false then true) or leaves the netmap.
func TestLiftDemotions(t *testing.T) {
	t.Parallel()
	a, _ := twoRouters()
	for _, tc := range []struct {
		name      string
		prev      wire.Node
		next      func(wire.Node) wire.Node
		gone      bool
		wantLifts bool
	}{
		{"unchanged", a, func(n wire.Node) wire.Node { return n }, false, false},
		{"still online", a, func(n wire.Node) wire.Node { n.Endpoints = nil; return n }, false, false},
		{"went offline", a, func(n wire.Node) wire.Node { n.Online = false; return n }, false, false},
		{"restarted: new disco key", a, func(n wire.Node) wire.Node { n.DiscoKey = key.NewDisco().Public(); return n }, false, true},
		{"back online", func() wire.Node { n := a; n.Online = false; return n }(), func(n wire.Node) wire.Node { n.Online = true; return n }, false, true},
		{"left the netmap", a, nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Engine{demoted: map[key.NodePublic]time.Time{a.NodeKey: time.Now()}}
			prev := map[key.NodePublic]wire.Node{a.NodeKey: tc.prev}
			next := map[key.NodePublic]wire.Node{}
			if !tc.gone {
				next[a.NodeKey] = tc.next(tc.prev)
			}
			e.liftDemotions(prev, next)
			if _, still := e.demoted[a.NodeKey]; still == tc.wantLifts {
				t.Errorf("demoted after = %v, want %v", still, !tc.wantLifts)
			}
		})
	}
}

// TestSilentRouterDemoted runs a real engine with two routers for one
// prefix that never answer (their endpoints lead nowhere): traffic into
// the prefix goes to the lowest-ID router, which is demoted once its
// packets go unanswered, and the prefix moves to the other; when that one
// is silent too, the prefix goes back to the one demoted longest ago.
func TestSilentRouterDemoted(t *testing.T) {
	t.Parallel()
	e, err := New(Config{NodeKey: key.NewNode(), Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, b := twoRouters()
	if err := e.SetNetmap([]wire.Node{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	primary := func() key.NodePublic {
		for k, rs := range e.PrimaryRoutes() {
			if len(rs) == 1 && rs[0] == a.Routes[0] {
				return k
			}
		}
		return key.NodePublic{}
	}
	if primary() != a.NodeKey {
		t.Fatalf("primary before any traffic is not the lowest ID")
	}
	send := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := e.DialContext(ctx, "udp", netip.MustParseAddrPort("10.20.0.5:53"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []wire.Node{b, a} {
		start := time.Now()
		send()
		poll.UntilTrue(t, 20*time.Second, "the prefix moves to "+want.NodeKey.ShortString(), func() bool { return primary() == want.NodeKey })
		t.Logf("moved to router %d %v after the first unanswered packet", want.ID, time.Since(start).Round(time.Millisecond))
	}
}

// TestOfflineRouterLosesRoutes: the netmaps a client gets when the
// coordinator publishes a router offline (its control channel closed)
// and online again move the prefix off it and back, and a router that
// comes back online is no longer demoted.
func TestOfflineRouterLosesRoutes(t *testing.T) {
	t.Parallel()
	e, err := New(Config{NodeKey: key.NewNode(), Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, b := twoRouters()
	off := a
	off.Online = false
	for i, step := range []struct {
		peers   []wire.Node
		demoteA bool // demote a on this node before the netmap
		want    key.NodePublic
	}{
		{[]wire.Node{a, b}, false, a.NodeKey},
		{[]wire.Node{off, b}, false, b.NodeKey},
		{[]wire.Node{a, b}, false, a.NodeKey},
		{[]wire.Node{a, b}, true, b.NodeKey},    // demoted, still online: stays off
		{[]wire.Node{off, b}, false, b.NodeKey}, // offline
		{[]wire.Node{a, b}, false, a.NodeKey},   // back online: the demotion is lifted
	} {
		if step.demoteA {
			e.demote(a.NodeKey, demoteAfter)
		}
		if err := e.SetNetmap(step.peers, nil); err != nil {
			t.Fatal(err)
		}
		if got := e.PrimaryRoutes()[step.want]; len(got) != 1 || got[0] != a.Routes[0] {
			t.Errorf("step %d: %v does not carry %v (primary routes %v)", i, step.want.ShortString(), a.Routes[0], e.PrimaryRoutes())
		}
	}
}
