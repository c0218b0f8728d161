package controlclient

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// refPeers is the plain way to apply peer changes, the one mapState used
// before it merged sorted lists: a map by ID, sorted again after every
// response. It is the oracle of TestMergePeersMatchesReference and the
// baseline of BenchmarkApplyDelta.
type refPeers map[wire.NodeID]wire.Node

func (m refPeers) apply(resp *wire.MapResponse) []wire.Node {
	if resp.Full {
		clear(m)
		for _, p := range resp.Peers {
			m[p.ID] = p
		}
	}
	for _, p := range resp.PeersChanged {
		m[p.ID] = p
	}
	for _, id := range resp.PeersRemoved {
		delete(m, id)
	}
	for _, pp := range resp.PeersPatched {
		p, ok := m[pp.ID]
		if !ok {
			continue
		}
		p.Apply(&pp)
		m[pp.ID] = p
	}
	return slices.SortedFunc(maps.Values(m), func(a, b wire.Node) int { return cmp.Compare(a.ID, b.ID) })
}

// randomResponse is a full map or a delta over peers 1..maxID, with
// repeats, changes to peers removed in the same response and patches to
// unknown peers.
func randomResponse(r *rand.Rand, version uint64, full bool) *wire.MapResponse {
	const maxID = 40
	node := func() wire.Node {
		id := wire.NodeID(1 + r.IntN(maxID))
		return wire.Node{ID: id, Name: fmt.Sprintf("n%d-%d", id, r.IntN(1000))}
	}
	resp := &wire.MapResponse{Version: version, Full: full}
	if full {
		for range r.IntN(maxID) {
			resp.Peers = append(resp.Peers, node())
		}
		// A full map names each peer once.
		slices.SortFunc(resp.Peers, byID)
		resp.Peers = slices.CompactFunc(resp.Peers, func(a, b wire.Node) bool { return a.ID == b.ID })
		r.Shuffle(len(resp.Peers), func(i, j int) { resp.Peers[i], resp.Peers[j] = resp.Peers[j], resp.Peers[i] })
		return resp
	}
	for range r.IntN(5) {
		resp.PeersChanged = append(resp.PeersChanged, node())
	}
	for range r.IntN(4) {
		resp.PeersRemoved = append(resp.PeersRemoved, wire.NodeID(1+r.IntN(maxID)))
	}
	for range r.IntN(5) {
		online := r.IntN(2) == 0
		relay := r.IntN(9)
		eps := []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(255))}), 41641)}
		pp := wire.PeerPatch{ID: wire.NodeID(1 + r.IntN(maxID)), Online: &online}
		if r.IntN(2) == 0 {
			pp.HomeRelay, pp.Endpoints = &relay, &eps
		}
		resp.PeersPatched = append(resp.PeersPatched, pp)
	}
	return resp
}

// TestMergePeersMatchesReference applies random full maps and deltas to a
// mapState and to the plain reference, and checks after each that the
// peers are the same, and that snapshots taken earlier never change.
func TestMergePeersMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 19))
	for seed := 0; seed < 20; seed++ {
		var s mapState
		ref := refPeers{}
		type kept struct {
			nm    *Netmap
			peers []wire.Node
		}
		var snaps []kept
		joinID := wire.NodeID(1000)
		for step := 1; step <= 200; step++ {
			resp := randomResponse(r, uint64(step), step == 1 || r.IntN(40) == 0)
			if step > 1 && r.IntN(4) == 0 { // joins: new IDs after every other
				resp = &wire.MapResponse{Version: uint64(step)}
				for range 1 + r.IntN(3) {
					joinID++
					resp.PeersChanged = append(resp.PeersChanged, wire.Node{ID: joinID, Name: fmt.Sprint(joinID)})
				}
			}
			if err := s.apply(resp); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			want := ref.apply(resp)
			if got := s.snapshot().Peers; !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Fatalf("seed %d step %d: peers\n%v\nwant\n%v\nafter %+v", seed, step, got, want, resp)
			}
			nm := s.snapshot()
			snaps = append(snaps, kept{nm, slices.Clone(nm.Peers)})
		}
		for i, k := range snaps {
			if !reflect.DeepEqual(k.nm.Peers, k.peers) {
				t.Fatalf("seed %d: snapshot %d changed after later responses", seed, i)
			}
		}
	}
}

// BenchmarkApplyDelta measures a node with many peers applying one small
// delta (one peer's new endpoints) and taking the snapshot the client
// hands out, against the reference (a map, sorted again per response) in
// the same run.
func BenchmarkApplyDelta(b *testing.B) {
	for _, peers := range []int{1000, 10000} {
		full := &wire.MapResponse{Version: 1, Full: true}
		for i := 1; i <= peers; i++ {
			full.Peers = append(full.Peers, wire.Node{ID: wire.NodeID(i), Name: fmt.Sprintf("n%d", i),
				Addresses: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 32)}})
		}
		eps := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641")}
		delta := func(v uint64) *wire.MapResponse {
			return &wire.MapResponse{Version: v, PeersPatched: []wire.PeerPatch{{ID: wire.NodeID(1 + int(v)%peers), Endpoints: &eps}}}
		}
		join := func(v uint64) *wire.MapResponse {
			return &wire.MapResponse{Version: v, PeersChanged: []wire.Node{{ID: wire.NodeID(peers + int(v)), Name: "new"}}}
		}
		b.Run(fmt.Sprintf("peers=%d/join/reference", peers), func(b *testing.B) {
			ref := refPeers{}
			ref.apply(full)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				nm := ref.apply(join(uint64(i + 2)))
				_ = slices.Clone(nm)
			}
		})
		b.Run(fmt.Sprintf("peers=%d/join/merge", peers), func(b *testing.B) {
			var s mapState
			if err := s.apply(full); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := s.apply(join(uint64(i + 2))); err != nil {
					b.Fatal(err)
				}
				_ = s.snapshot()
			}
		})
		b.Run(fmt.Sprintf("peers=%d/reference", peers), func(b *testing.B) {
			ref := refPeers{}
			ref.apply(full)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				nm := ref.apply(delta(uint64(i + 2)))
				_ = slices.Clone(nm) // the snapshot the client hands out
			}
		})
		b.Run(fmt.Sprintf("peers=%d/merge", peers), func(b *testing.B) {
			var s mapState
			if err := s.apply(full); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := s.apply(delta(uint64(i + 2))); err != nil {
					b.Fatal(err)
				}
				_ = s.snapshot()
			}
		})
	}
}
