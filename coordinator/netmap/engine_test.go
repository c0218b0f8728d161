package netmap

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

func testNode(id int, user int64, tags ...string) Node {
	v4 := netip.AddrFrom4([4]byte{100, 64, byte(id >> 8), byte(id)})
	return Node{
		Wire: wire.Node{
			ID: wire.NodeID(id), Name: fmt.Sprintf("n%d", id), Hostname: fmt.Sprintf("n%d", id),
			Tags: tags, NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
			Addresses: []netip.Prefix{netip.PrefixFrom(v4, 32)},
		},
		UserID:     user,
		Authorized: true,
	}
}

// next reads one response or fails the test if none arrives quickly.
func next(t *testing.T, s *Stream) *wire.MapResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("stream %d: %v", s.NodeID(), err)
	}
	return resp
}

// nothingQueued fails if the stream has something to say.
func nothingQueued(t *testing.T, s *Stream) {
	t.Helper()
	if n := s.Pending(); n != 0 {
		t.Fatalf("stream %d has %d queued deltas, want none", s.NodeID(), n)
	}
}

func peerIDs(ns []wire.Node) []wire.NodeID {
	var ids []wire.NodeID
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	return ids
}

func TestFullMapAndDeltas(t *testing.T) {
	e := New(Config{Domain: "mesh.test"})
	e.Upsert(testNode(1, 10))
	e.Upsert(testNode(2, 10))
	e.Upsert(testNode(3, 20)) // another user: invisible to 1 and 2
	s1, _ := e.Subscribe(1)
	s3, _ := e.Subscribe(3)

	full := next(t, s1)
	if !full.Full || full.Self.ID != 1 || !slices.Equal(peerIDs(full.Peers), []wire.NodeID{2}) || full.Domain != "mesh.test" {
		t.Fatalf("full map of 1 = %+v", full)
	}
	if !full.FilterSet || len(full.PacketFilter) != 1 {
		t.Fatalf("filter = %+v", full.PacketFilter)
	}
	if f3 := next(t, s3); len(f3.Peers) != 0 {
		t.Fatalf("node 3 sees %v", peerIDs(f3.Peers))
	}

	// A new node of user 10 reaches 1's stream; 3 hears nothing.
	e.Upsert(testNode(4, 10))
	d := next(t, s1)
	if d.Full || !slices.Equal(peerIDs(d.PeersChanged), []wire.NodeID{4}) || d.Version != full.Version+1 {
		t.Fatalf("delta = %+v", d)
	}
	nothingQueued(t, s3)

	// Endpoints and online state travel as patches.
	ep := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:41641")}
	if err := e.SetEndpoints(2, ep, 3); err != nil {
		t.Fatal(err)
	}
	if err := e.SetOnline(2, true, time.Unix(5, 0)); err != nil {
		t.Fatal(err)
	}
	d = next(t, s1)
	if len(d.PeersPatched) != 1 || !slices.Equal(*d.PeersPatched[0].Endpoints, ep) || !*d.PeersPatched[0].Online || *d.PeersPatched[0].HomeRelay != 3 {
		t.Fatalf("patch delta = %+v", d)
	}

	e.Remove(4, nil)
	if d = next(t, s1); !slices.Equal(d.PeersRemoved, []wire.NodeID{4}) {
		t.Fatalf("removal delta = %+v", d)
	}
	nothingQueued(t, s3)
	if err := e.SetOnline(99, true, time.Now()); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("SetOnline(unknown) = %v", err)
	}
}

func TestMergeCoalesces(t *testing.T) {
	e := New(Config{})
	e.Upsert(testNode(1, 10))
	s1, _ := e.Subscribe(1)
	next(t, s1)
	e.Upsert(testNode(2, 10))
	on := true
	_ = e.SetOnline(2, on, time.Unix(9, 0))
	e.Upsert(testNode(3, 10))
	e.Remove(3, nil)
	d := next(t, s1)
	if len(d.PeersChanged) != 1 || !d.PeersChanged[0].Online || d.PeersChanged[0].LastSeen.Unix() != 9 {
		t.Fatalf("patch not folded into the added record: %+v", d.PeersChanged)
	}
	if !slices.Equal(d.PeersRemoved, []wire.NodeID{3}) || len(d.PeersPatched) != 0 {
		t.Fatalf("delta = %+v", d)
	}
}

func TestVisibilityChange(t *testing.T) {
	e := New(Config{})
	e.Upsert(testNode(1, 10))
	e.Upsert(testNode(2, 10))
	e.Upsert(testNode(3, 20, "tag:db"))
	e.Upsert(testNode(4, 30, "tag:db"))
	s1, _ := e.Subscribe(1)
	s2, _ := e.Subscribe(2)
	s4, _ := e.Subscribe(4)
	next(t, s1)
	next(t, s2)
	if f := next(t, s4); !slices.Equal(peerIDs(f.Peers), []wire.NodeID{3}) {
		t.Fatalf("tag:db peers = %v", peerIDs(f.Peers))
	}
	// Node 2 becomes tag:db: 1 loses it, 4 gains it, 2 gets a new full map.
	e.Upsert(testNode(2, 10, "tag:db"))
	if d := next(t, s1); !slices.Equal(d.PeersRemoved, []wire.NodeID{2}) {
		t.Fatalf("1 got %+v", d)
	}
	if d := next(t, s4); !slices.Equal(peerIDs(d.PeersChanged), []wire.NodeID{2}) {
		t.Fatalf("4 got %+v", d)
	}
	if d := next(t, s2); !d.Full || !slices.Equal(peerIDs(d.Peers), []wire.NodeID{3, 4}) {
		t.Fatalf("2 got %+v", d)
	}
}

func TestExpiryCutsPeers(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := New(Config{Now: clock})
	n2 := testNode(2, 10)
	n2.Wire.KeyExpiry = time.Unix(1010, 0)
	e.Upsert(testNode(1, 10))
	e.Upsert(n2)
	s1, _ := e.Subscribe(1)
	s2, _ := e.Subscribe(2)
	next(t, s1)
	if f := next(t, s2); len(f.Peers) != 1 {
		t.Fatalf("before expiry 2 sees %v", peerIDs(f.Peers))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	mu.Lock()
	now = time.Unix(1011, 0)
	mu.Unlock()
	e.poke()
	if d := next(t, s1); !slices.Equal(d.PeersRemoved, []wire.NodeID{2}) {
		t.Fatalf("1 got %+v, want 2 removed", d)
	}
	if d := next(t, s2); !d.Full || len(d.Peers) != 0 || !d.Self.Expired || len(d.PacketFilter) != 0 {
		t.Fatalf("expired node got %+v", d)
	}
	cancel()
	<-done
	// An expired node added later is invisible from the start.
	n5 := testNode(5, 10)
	n5.Wire.KeyExpiry = time.Unix(1, 0)
	e.Upsert(n5)
	nothingQueued(t, s1)
}

func TestSlowStreamGetsFullMap(t *testing.T) {
	e := New(Config{MaxQueue: 4})
	e.Upsert(testNode(1, 10))
	s1, _ := e.Subscribe(1)
	next(t, s1)
	for i := 2; i < 20; i++ {
		e.Upsert(testNode(i, 10))
	}
	if s1.Pending() != 1 {
		t.Fatalf("queue not collapsed: %d pending", s1.Pending())
	}
	if d := next(t, s1); !d.Full || len(d.Peers) != 18 {
		t.Fatalf("got full=%v with %d peers", d.Full, len(d.Peers))
	}
}

func TestReconnectVersionsAndReplace(t *testing.T) {
	e := New(Config{})
	e.Upsert(testNode(1, 10))
	s, _ := e.Subscribe(1)
	v1 := next(t, s).Version
	s2, _ := e.Subscribe(1)
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrReplaced) {
		t.Fatalf("old stream: %v, want ErrReplaced", err)
	}
	if v2 := next(t, s2).Version; v2 <= v1 {
		t.Fatalf("version went from %d to %d across reconnect", v1, v2)
	}
	gone := errors.New("deleted by admin")
	e.Remove(1, gone)
	if _, err := s2.Next(context.Background()); !errors.Is(err, gone) {
		t.Fatalf("removed node's stream: %v", err)
	}
	if _, err := e.Subscribe(1); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("Subscribe(removed) = %v", err)
	}
}

func TestNextHonoursContext(t *testing.T) {
	e := New(Config{})
	e.Upsert(testNode(1, 10))
	s, _ := e.Subscribe(1)
	next(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next = %v", err)
	}
	s.Close()
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
}
