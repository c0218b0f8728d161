package netmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// filterModel is what a node knows of its packet filter, built only from
// the responses it took, the way controlclient builds it.
type filterModel struct {
	filter []wire.FilterRule
	peers  map[wire.NodeID]bool
	deltas int // responses that carried rule deltas
}

func (m *filterModel) apply(t *testing.T, step int, resp *wire.MapResponse) {
	t.Helper()
	if resp.FilterSet && len(resp.FilterDelta) > 0 {
		t.Fatalf("step %d: a response carries both a filter and rule deltas", step)
	}
	if resp.Full {
		m.peers = map[wire.NodeID]bool{}
		for _, p := range resp.Peers {
			m.peers[p.ID] = true
		}
	}
	for _, p := range resp.PeersChanged {
		m.peers[p.ID] = true
	}
	for _, id := range resp.PeersRemoved {
		delete(m.peers, id)
	}
	switch {
	case resp.FilterSet:
		m.filter = resp.PacketFilter
	case len(resp.FilterDelta) > 0:
		f, err := wire.ApplyFilterDelta(m.filter, resp.FilterDelta)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		m.filter, m.deltas = f, m.deltas+1
	}
}

// TestFilterDeltasMatchFullFilters drives an engine through random joins,
// leaves, user and policy changes, letting streams fall behind at random so
// several changes merge into one response, and checks after each step that
// every node's filter, built from deltas alone, is exactly the one computed
// afresh, and its peers those of a full map (a policy change that alters
// filters alone sends no peers). Time passes too, opening and closing a
// window that only adds ports between peers and one that adds peers. A node of the older protocol must never
// see a delta.
func TestFilterDeltasMatchFullFilters(t *testing.T) {
	policies := []string{
		`{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`,
		`{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}`,
		`{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["*:22"]}]}`,
		`{"acls": [
			{"action": "accept", "src": ["u1@example.com", "u2@example.com"], "dst": ["*:22,80"]},
			{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
			{"action": "accept", "src": ["100.64.0.0/28"], "dst": ["u3@example.com:443"]},
		]}`,
		`{"groups": {"group:ops": ["u2@example.com", "u3@example.com"]},
		  "acls": [
			{"action": "accept", "src": ["group:ops"], "dst": ["*:*"], "proto": "tcp"},
			{"action": "accept", "src": ["*"], "dst": ["u1@example.com:53"], "proto": "udp"},
		]}`,
		`{"acls": [
			{"action": "accept", "src": ["autogroup:member"], "dst": ["*:22"]},
			{"action": "accept", "src": ["autogroup:member"], "dst": ["*:443"], "when": {"hours": "09:00-09:40", "tz": "UTC"}},
			{"action": "accept", "src": ["u1@example.com"], "dst": ["u3@example.com:80"], "when": {"hours": "09:20-10:00", "tz": "UTC"}},
		]}`,
	}
	r := rand.New(rand.NewPCG(22, 6))
	clock := time.Date(2026, 1, 5, 8, 50, 0, 0, time.UTC)
	e := newEngine(t, Config{Policy: mustPolicy(t, policies[0]), Now: func() time.Time { return clock }})
	const maxID = 24
	nodes := map[wire.NodeID]Node{}
	mk := func(id int) Node {
		n := testNode(id, int64(1+r.IntN(3)))
		if r.IntN(2) == 0 {
			n.Wire.Addresses = append(n.Wire.Addresses, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x7a, 15: byte(id)}), 128))
		}
		return n
	}
	streams := map[wire.NodeID]*Stream{}
	models := map[wire.NodeID]*filterModel{}
	subscribe := func(id wire.NodeID) {
		version := wire.ProtocolVersion
		if id%5 == 0 {
			version = wire.FilterDeltaVersion - 1
		}
		s, err := e.SubscribeVersion(id, version)
		if err != nil {
			t.Fatal(err)
		}
		streams[id], models[id] = s, &filterModel{}
	}
	for id := 1; id <= maxID/2; id++ {
		n := mk(id)
		nodes[n.ID()] = n
		e.Upsert(n)
		subscribe(n.ID())
	}
	for step := 0; step < 400; step++ {
		id := wire.NodeID(1 + r.IntN(maxID))
		n, present := nodes[id]
		switch op := r.IntN(10); {
		case op == 0:
			e.SetPolicy(mustPolicy(t, policies[r.IntN(len(policies))]))
		case op == 9 && r.IntN(2) == 0: // time passes: windows open and close
			clock = clock.Add(time.Duration(r.IntN(30)) * time.Minute)
			if clock.Hour() >= 10 {
				clock = clock.Add(-80 * time.Minute) // back before the windows: a recompile
			}
			e.due()
		case !present: // a node joins
			n = mk(int(id))
			nodes[id] = n
			e.Upsert(n)
			subscribe(id)
		case op <= 3: // a node leaves
			delete(nodes, id)
			delete(streams, id)
			delete(models, id)
			e.Remove(id, nil)
		case op <= 5: // changes hands
			n.UserID = int64(1 + r.IntN(3))
			n.Wire.User = fmt.Sprintf("u%d@example.com", n.UserID)
			nodes[id] = n
			e.Upsert(n)
		default: // disabled or enabled
			n.Authorized = !n.Authorized
			nodes[id] = n
			e.Upsert(n)
		}
		for sid, s := range streams {
			if r.IntN(3) == 0 {
				continue // falls behind: its changes merge later
			}
			for s.Pending() > 0 {
				resp := next(t, s)
				if len(resp.FilterDelta) > 0 && !s.filterDeltas {
					t.Fatalf("step %d: node %d of the old protocol got rule deltas", step, sid)
				}
				models[sid].apply(t, step, resp)
			}
			e.mu.Lock()
			full := e.fullMap(sid, e.now())
			e.mu.Unlock()
			if got, want := models[sid].filter, full.PacketFilter; !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d: node %d built filter\n%v\nfrom deltas, a full map says\n%v", step, sid, got, want)
			}
			want := map[wire.NodeID]bool{}
			for _, p := range full.Peers {
				want[p.ID] = true
			}
			if got := models[sid].peers; !maps.Equal(got, want) {
				t.Fatalf("step %d: node %d built peers %v from deltas, a full map says %v", step, sid, got, want)
			}
		}
	}
	deltas := 0
	for _, m := range models {
		deltas += m.deltas
	}
	if deltas == 0 {
		t.Fatal("no rule deltas were sent: the test checked nothing")
	}
	t.Logf("%d responses carried rule deltas", deltas)
}

// TestJoinSendsRuleDeltas checks the point of deltas: when a node joins a
// mesh where every member reaches everyone, each peer of the new protocol gets
// only the new source, and a peer of the old one the whole filter, its
// sources compacted (consecutive addresses merge into one prefix).
func TestJoinSendsRuleDeltas(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, `{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["*:*"]}]}`)})
	for id := 1; id <= 3; id++ {
		e.Upsert(testNode(id, 1))
	}
	fresh, _ := e.SubscribeVersion(1, wire.ProtocolVersion)
	old, _ := e.SubscribeVersion(2, wire.FilterDeltaVersion-1)
	next(t, fresh)
	next(t, old)
	joiner := testNode(4, 1)
	e.Upsert(joiner)
	got := next(t, fresh)
	want := []wire.FilterRuleDelta{{Index: 0, Rule: got.FilterDelta[0].Rule, Add: joiner.Wire.Addresses}}
	if got.FilterSet || !reflect.DeepEqual(got.FilterDelta, want) {
		t.Fatalf("new-protocol peer got filter %v (set %v), deltas %v; want deltas %v", got.PacketFilter, got.FilterSet, got.FilterDelta, want)
	}
	if got := next(t, old); !got.FilterSet || len(got.FilterDelta) > 0 || len(got.PacketFilter) != 1 ||
		!reflect.DeepEqual(got.PacketFilter[0].SrcPrefixes, prefixes("100.64.0.1/32", "100.64.0.2/31", "100.64.0.4/32")) {
		t.Fatalf("old-protocol peer got filter %v (set %v), deltas %v; want the whole filter", got.PacketFilter, got.FilterSet, got.FilterDelta)
	}
}

// TestPolicyFilterChangeSendsNoPeers checks that a policy change that
// alters every filter but nobody's peers sends each node its filter
// alone, as rule deltas when only sources moved.
func TestPolicyFilterChangeSendsNoPeers(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, `{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["*:*"]}]}`)})
	for id := 1; id <= 3; id++ {
		e.Upsert(testNode(id, 1))
	}
	s, _ := e.SubscribeVersion(1, wire.ProtocolVersion)
	next(t, s)
	e.SetPolicy(mustPolicy(t, `{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["*:22"]}]}`))
	got := next(t, s)
	if got.Full || len(got.PeersChanged) > 0 || !got.FilterSet || len(got.PacketFilter) != 1 || got.PacketFilter[0].DstPorts[0].First != 22 {
		t.Fatalf("after a ports change got %+v, want the new filter alone", got)
	}
	e.SetPolicy(mustPolicy(t, `{"acls": [{"action": "accept", "src": ["u2@example.com", "u1@example.com"], "dst": ["*:22"]}]}`))
	nothingQueued(t, s) // the same filter
	e.Upsert(testNode(4, 3))
	next(t, s) // the new peer
	e.SetPolicy(mustPolicy(t, `{"acls": [{"action": "accept", "src": ["u3@example.com"], "dst": ["*:22"]}]}`))
	if got := next(t, s); !got.Full || len(got.Peers) != 1 {
		t.Fatalf("after a change of peers got %+v, want a full map", got)
	}
}

// TestTimeWindowSendsFilterOnly: a time window that opens a rule between
// nodes that are peers already sends them the filter alone; one that makes
// new peers sends full maps.
func TestTimeWindowSendsFilterOnly(t *testing.T) {
	clock := time.Date(2026, 1, 5, 8, 59, 0, 0, time.UTC)
	e := newEngine(t, Config{Now: func() time.Time { return clock }, Policy: mustPolicy(t, `{
		"tagOwners": {"tag:db": []},
		"acls": [
			{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:member:22"]},
			{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:member:443"], "when": {"hours": "09:00-10:00", "tz": "UTC"}},
			{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:5432"], "when": {"hours": "11:00-12:00", "tz": "UTC"}},
		]}`)})
	for id := 1; id <= 3; id++ {
		e.Upsert(testNode(id, int64(id)))
	}
	e.Upsert(testNode(4, 1, "tag:db"))
	var streams []*Stream
	for id := 1; id <= 4; id++ {
		s, _ := e.SubscribeVersion(wire.NodeID(id), wire.ProtocolVersion)
		next(t, s)
		streams = append(streams, s)
	}
	clock = clock.Add(time.Minute) // 09:00: port 443 opens between the members
	e.due()
	for _, s := range streams[:3] {
		if got := next(t, s); got.Full || !got.FilterSet || len(got.PacketFilter) != 2 {
			t.Fatalf("node %d at 09:00 got %+v, want its filter alone, of two rules", s.NodeID(), got)
		}
	}
	nothingQueued(t, streams[3])
	clock = clock.Add(2 * time.Hour) // 11:00: 443 closes, the members reach the database
	e.due()
	for _, s := range streams {
		if got := next(t, s); !got.Full {
			t.Fatalf("node %d at 11:00 got %+v, want a full map (new peers)", s.NodeID(), got)
		}
	}
}
