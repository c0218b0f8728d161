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
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// testPolicy is what the tests below assume: users reach their own nodes,
// tag:db nodes reach each other.
const testPolicy = `{
	"tagOwners": {"tag:db": [], "tag:web": []},
	"acls": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
		{"action": "accept", "src": ["tag:db"], "dst": ["tag:db:*"]},
	],
}`

func mustPolicy(t testing.TB, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(src))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}

// newEngine is New with testPolicy unless cfg sets a policy.
func newEngine(t testing.TB, cfg Config) *Engine {
	if cfg.Policy == nil {
		cfg.Policy = mustPolicy(t, testPolicy)
	}
	return New(cfg)
}

// testNode returns node id of user (login u<user>@example.com) or, with
// tags, a tagged node registered by user.
func testNode(id int, user int64, tags ...string) Node {
	v4 := netip.AddrFrom4([4]byte{100, 64, byte(id >> 8), byte(id)})
	login := ""
	if len(tags) == 0 {
		login = fmt.Sprintf("u%d@example.com", user)
	}
	return Node{
		Wire: wire.Node{
			ID: wire.NodeID(id), Name: fmt.Sprintf("n%d", id), Hostname: fmt.Sprintf("n%d", id),
			Tags: tags, NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
			Addresses: []netip.Prefix{netip.PrefixFrom(v4, 32)}, User: login,
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
	dnsCfg := &wire.DNSConfig{Records: []wire.DNSRecord{{Name: "wiki.mesh.test", Addrs: []netip.Addr{netip.MustParseAddr("100.64.0.9")}}}}
	e := newEngine(t, Config{Domain: "mesh.test", DNS: dnsCfg})
	e.Upsert(testNode(1, 10))
	e.Upsert(testNode(2, 10))
	e.Upsert(testNode(3, 20)) // another user: invisible to 1 and 2
	s1, _ := e.Subscribe(1)
	s3, _ := e.Subscribe(3)

	full := next(t, s1)
	if !full.Full || full.Self.ID != 1 || !slices.Equal(peerIDs(full.Peers), []wire.NodeID{2}) || full.Domain != "mesh.test" {
		t.Fatalf("full map of 1 = %+v", full)
	}
	if full.DNS != dnsCfg {
		t.Fatalf("full map's DNS = %+v, want the engine's", full.DNS)
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
	e := newEngine(t, Config{})
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
	e := newEngine(t, Config{})
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
	e := newEngine(t, Config{Now: clock})
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
	// Node 1's filter may follow in a delta of its own when the stream was
	// read between the two; it must not bring peers back.
	for s1.Pending() > 0 {
		if d := next(t, s1); len(d.Peers)+len(d.PeersChanged)+len(d.PeersPatched) != 0 {
			t.Fatalf("1 got %+v after 2 expired", d)
		}
	}
	// An expired node added later is invisible from the start.
	n5 := testNode(5, 10)
	n5.Wire.KeyExpiry = time.Unix(1, 0)
	e.Upsert(n5)
	nothingQueued(t, s1)
}

func TestSlowStreamGetsFullMap(t *testing.T) {
	e := newEngine(t, Config{MaxQueue: 4})
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
	e := newEngine(t, Config{})
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
	e := newEngine(t, Config{})
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

// filterSources returns every source prefix of a filter, sorted.
func filterSources(rules []wire.FilterRule) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range rules {
		out = append(out, r.SrcPrefixes...)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return slices.Compact(out)
}

const engPolicy = `{
	"groups": {"group:eng": ["u10@example.com"]},
	"tagOwners": {"tag:db": []},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]}],
}`

func TestGroupMemberChangesDestinationFilter(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, engPolicy)})
	e.Upsert(testNode(1, 10))
	e.Upsert(testNode(2, 30, "tag:db"))
	e.Upsert(testNode(3, 20))
	s1, _ := e.Subscribe(1)
	s2, _ := e.Subscribe(2)
	s3, _ := e.Subscribe(3)
	if f := next(t, s1); !slices.Equal(peerIDs(f.Peers), []wire.NodeID{2}) || len(f.PacketFilter) != 0 {
		t.Fatalf("eng laptop: peers %v, filter %+v", peerIDs(f.Peers), f.PacketFilter)
	}
	f := next(t, s2)
	if !slices.Equal(peerIDs(f.Peers), []wire.NodeID{1}) || !slices.Equal(filterSources(f.PacketFilter), []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}) {
		t.Fatalf("db: peers %v, filter %+v", peerIDs(f.Peers), f.PacketFilter)
	}
	if f := next(t, s3); len(f.Peers) != 0 {
		t.Fatalf("outsider sees %v", peerIDs(f.Peers))
	}

	// User 20 joins eng through the identity provider: the db node gets the
	// new peer and a filter admitting it; node 1 hears nothing.
	n3 := testNode(3, 20)
	n3.Groups = []string{"eng"}
	e.Upsert(n3)
	d := next(t, s2)
	if !slices.Equal(peerIDs(d.PeersChanged), []wire.NodeID{3}) || !d.FilterSet ||
		!slices.Equal(filterSources(d.PacketFilter), []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32"), netip.MustParsePrefix("100.64.0.3/32")}) {
		t.Fatalf("db got %+v", d)
	}
	if d := next(t, s3); !d.Full || !slices.Equal(peerIDs(d.Peers), []wire.NodeID{2}) {
		t.Fatalf("new eng member got %+v", d)
	}
	nothingQueued(t, s1)

	// Removing the rule: everyone affected gets a full map with no peers
	// and, on the db node, an empty filter.
	e.SetPolicy(mustPolicy(t, `{"tagOwners": {"tag:db": []}, "acls": []}`))
	for _, s := range []*Stream{s1, s2, s3} {
		if d := next(t, s); !d.Full || len(d.Peers) != 0 || len(d.PacketFilter) != 0 || !d.FilterSet {
			t.Fatalf("stream %d after revocation: %+v", s.NodeID(), d)
		}
	}
	// Putting the same policy in again changes nothing.
	e.SetPolicy(mustPolicy(t, `{"tagOwners": {"tag:db": []}, "acls": []}`))
	for _, s := range []*Stream{s1, s2, s3} {
		nothingQueued(t, s)
	}
}

func TestTimeWindowOpensAndCloses(t *testing.T) {
	var mu sync.Mutex
	// Monday 2026-11-23 08:59:59 UTC.
	now := time.Date(2026, 11, 23, 8, 59, 59, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	e := newEngine(t, Config{Now: clock, Policy: mustPolicy(t, `{
		"tagOwners": {"tag:db": []},
		"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:22"],
			"when": {"hours": "09:00-17:00", "tz": "UTC"}}],
	}`)})
	e.Upsert(testNode(1, 10))
	e.Upsert(testNode(2, 30, "tag:db"))
	s1, _ := e.Subscribe(1)
	if f := next(t, s1); len(f.Peers) != 0 {
		t.Fatalf("before the window: peers %v", peerIDs(f.Peers))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	set(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	e.poke()
	if d := next(t, s1); !slices.Equal(peerIDs(d.Peers), []wire.NodeID{2}) {
		t.Fatalf("in the window: %+v", d)
	}
	set(time.Date(2026, 11, 23, 17, 1, 0, 0, time.UTC))
	e.poke()
	if d := next(t, s1); len(d.Peers) != 0 || len(d.PeersChanged) != 0 {
		t.Fatalf("after the window: %+v", d)
	}
}
