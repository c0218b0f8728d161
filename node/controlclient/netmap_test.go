package controlclient

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestApply(t *testing.T) {
	var s mapState
	if err := s.apply(&wire.MapResponse{Version: 1}); !errors.Is(err, ErrDeltaBeforeFull) {
		t.Fatalf("delta first: %v", err)
	}
	self := wire.Node{ID: 1, Name: "me"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.apply(&wire.MapResponse{Version: 1, Full: true, Self: &self, Domain: "d",
		Peers: []wire.Node{{ID: 3, Name: "c"}, {ID: 2, Name: "b"}}, FilterSet: true,
		PacketFilter: []wire.FilterRule{{}}}))
	if nm := s.snapshot(); len(nm.Peers) != 2 || nm.Peers[0].ID != 2 || nm.Domain != "d" || len(nm.PacketFilter) != 1 {
		t.Fatalf("after full map: %+v", nm)
	}
	online := true
	eps := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}
	must(s.apply(&wire.MapResponse{Version: 2,
		PeersChanged: []wire.Node{{ID: 4, Name: "d"}},
		PeersRemoved: []wire.NodeID{3},
		PeersPatched: []wire.PeerPatch{{ID: 2, Online: &online, Endpoints: &eps}, {ID: 99, Online: &online}},
	}))
	nm := s.snapshot()
	b, ok := nm.Peer(2)
	if len(nm.Peers) != 2 || !ok || !b.Online || b.Endpoints[0] != eps[0] {
		t.Fatalf("after delta: %+v", nm)
	}
	if _, ok := nm.Peer(3); ok {
		t.Fatal("removed peer still present")
	}
	if p, ok := nm.PeerByName("d"); !ok || p.ID != 4 {
		t.Fatal("added peer missing")
	}
	if len(nm.PacketFilter) != 1 {
		t.Fatal("a delta without FilterSet changed the filter")
	}
	if err := s.apply(&wire.MapResponse{Version: 2}); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("same version twice: %v", err)
	}
	// The snapshot handed out earlier is not changed by later deltas.
	must(s.apply(&wire.MapResponse{Version: 3, PeersRemoved: []wire.NodeID{2, 4}}))
	if len(nm.Peers) != 2 || len(s.snapshot().Peers) != 0 {
		t.Fatal("snapshots share state")
	}
	// Posture: a full map sets it, a delta with it replaces it, a delta
	// without it keeps it, and a full map without it clears it.
	denied := &wire.PostureStatus{Denials: []wire.PostureDenial{{Destination: "tag:db:5432", Posture: "posture:managed", Reason: "node:diskEncrypted is false (needs == true)"}}}
	must(s.apply(&wire.MapResponse{Version: 10, Full: true, Self: &self, Posture: denied}))
	if p := s.snapshot().Posture; p != denied {
		t.Fatalf("posture after a full map: %+v", p)
	}
	must(s.apply(&wire.MapResponse{Version: 11, PeersRemoved: []wire.NodeID{5}}))
	if p := s.snapshot().Posture; p != denied {
		t.Fatalf("posture after a delta without it: %+v", p)
	}
	fixed := &wire.PostureStatus{}
	must(s.apply(&wire.MapResponse{Version: 12, Posture: fixed}))
	if p := s.snapshot().Posture; p != fixed {
		t.Fatalf("posture after a delta with it: %+v", p)
	}
	must(s.apply(&wire.MapResponse{Version: 13, Posture: denied}))
	must(s.apply(&wire.MapResponse{Version: 14, Full: true, Self: &self}))
	if p := s.snapshot().Posture; p != nil {
		t.Fatalf("posture after a full map without it: %+v", p)
	}
}

// TestApplySSH: a full map sets the SSH policy (nil included, which
// admits nobody); a delta with one replaces it, a delta without keeps it.
func TestApplySSH(t *testing.T) {
	self := wire.Node{ID: 1, Name: "me"}
	pol := &wire.SSHPolicy{Rules: []wire.SSHRule{{Rule: "ssh[0]", Sources: []wire.NodeID{2}, Users: []string{"autogroup:nonroot"}, Action: wire.SSHAccept}}}
	other := &wire.SSHPolicy{}
	steps := []struct {
		resp *wire.MapResponse
		want *wire.SSHPolicy
	}{
		{&wire.MapResponse{Version: 1, Full: true, Self: &self, SSH: pol}, pol},
		{&wire.MapResponse{Version: 2, PeersRemoved: []wire.NodeID{5}}, pol},
		{&wire.MapResponse{Version: 3, SSH: other}, other},
		{&wire.MapResponse{Version: 4, SSH: pol}, pol},
		{&wire.MapResponse{Version: 5, Full: true, Self: &self}, nil},
		{&wire.MapResponse{Version: 6}, nil},
		{&wire.MapResponse{Version: 7, SSH: pol}, pol},
	}
	var s mapState
	for _, st := range steps {
		if err := s.apply(st.resp); err != nil {
			t.Fatalf("version %d: %v", st.resp.Version, err)
		}
		if got := s.snapshot().SSH; got != st.want {
			t.Errorf("version %d: SSH %+v, want %+v", st.resp.Version, got, st.want)
		}
	}
}
