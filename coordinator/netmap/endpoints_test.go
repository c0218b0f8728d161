package netmap

import (
	"net/netip"
	"testing"
)

// TestSetEndpointsUnchangedPushesNothing: a node repeats its endpoints in
// every update (a posture heartbeat every few minutes carries them), so
// endpoints and home relay equal to those held must not reach its peers
// again.
func TestSetEndpointsUnchangedPushesNothing(t *testing.T) {
	e := newEngine(t, Config{})
	e.Upsert(testNode(1, 10))
	e.Upsert(testNode(2, 10))
	s1, _ := e.Subscribe(1)
	next(t, s1)
	ep := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:41641")}
	if err := e.SetEndpoints(2, ep, 3); err != nil {
		t.Fatal(err)
	}
	if d := next(t, s1); len(d.PeersPatched) != 1 {
		t.Fatalf("first endpoints: delta %+v, want a patch", d)
	}
	if err := e.SetEndpoints(2, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:41641")}, 3); err != nil {
		t.Fatal(err)
	}
	nothingQueued(t, s1)
	// A different home relay, or endpoints, still travel.
	if err := e.SetEndpoints(2, ep, 4); err != nil {
		t.Fatal(err)
	}
	if d := next(t, s1); len(d.PeersPatched) != 1 || *d.PeersPatched[0].HomeRelay != 4 {
		t.Fatalf("new home relay: delta %+v", d)
	}
	if err := e.SetEndpoints(2, nil, 4); err != nil {
		t.Fatal(err)
	}
	if d := next(t, s1); len(d.PeersPatched) != 1 || len(*d.PeersPatched[0].Endpoints) != 0 {
		t.Fatalf("endpoints gone: delta %+v", d)
	}
	if err := e.SetEndpoints(99, nil, 0); err == nil {
		t.Fatal("SetEndpoints of an unknown node succeeded")
	}
}
