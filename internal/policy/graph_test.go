package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestTimeWindowAdvance(t *testing.T) {
	p := mustParse(t, `{
		"tagOwners": {"tag:web": []},
		"acls": [{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:web:443"],
			"when": {"days": ["Fri"], "hours": "22:00-06:00", "tz": "Europe/Berlin"}}],
	}`)
	// Fri 2026-03-27 21:00 Berlin (CET, UTC+1); DST starts Sun 03-29.
	start := time.Date(2026, 3, 27, 20, 0, 0, 0, time.UTC)
	g := NewGraph(p, start, userNode(1, "ann@example.com"), tagNode(2, "tag:web"))
	if f := g.Filter(2); len(f) != 0 {
		t.Fatalf("window closed, filter %v", renderFilter(f))
	}
	open := time.Date(2026, 3, 27, 21, 0, 0, 0, time.UTC) // 22:00 CET
	if got := g.NextChange(); !got.Equal(open) {
		t.Fatalf("NextChange = %v, want %v", got, open)
	}
	if aff := sorted(g.Advance(open.Add(-time.Second))); len(aff) != 0 {
		t.Errorf("Advance before the window: affected %v", aff)
	}
	if aff := sorted(g.Advance(open)); !slices.Equal(aff, []wire.NodeID{1, 2}) {
		t.Errorf("Advance into the window: affected %v, want [1 2]", aff)
	}
	if got := renderFilter(g.Filter(2)); !slices.Equal(got, []string{"100.64.0.1 -> 100.64.0.2:443"}) {
		t.Errorf("open filter %v", got)
	}
	if got := peerList(g, 1); !slices.Equal(got, []wire.NodeID{2}) {
		t.Errorf("peers %v", got)
	}
	// Wraps past midnight into Saturday, closing at 06:00 CET = 05:00 UTC.
	closeAt := time.Date(2026, 3, 28, 5, 0, 0, 0, time.UTC)
	if got := g.NextChange(); !got.Equal(closeAt) {
		t.Fatalf("NextChange = %v, want %v", got, closeAt)
	}
	if aff := sorted(g.Advance(closeAt.Add(time.Minute))); !slices.Equal(aff, []wire.NodeID{1, 2}) {
		t.Errorf("Advance out of the window: affected %v", aff)
	}
	if f := g.Filter(2); len(f) != 0 {
		t.Errorf("closed filter %v", renderFilter(f))
	}
	// Next Friday is in summer time (UTC+2): 22:00 CEST = 20:00 UTC.
	next := time.Date(2026, 4, 3, 20, 0, 0, 0, time.UTC)
	if got := g.NextChange(); !got.Equal(next) {
		t.Errorf("NextChange = %v, want %v", got, next)
	}
	// Going back in time recompiles.
	if aff := sorted(g.Advance(open.Add(time.Hour))); !slices.Equal(aff, []wire.NodeID{1, 2}) {
		t.Errorf("Advance backwards: affected %v", aff)
	}
}

func TestMFAExpiry(t *testing.T) {
	p := mustParse(t, `{
		"tagOwners": {"tag:db": []},
		"acls": [
			{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:22"], "mfa": "12h"},
			{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:5432"], "mfa": "1d"},
		],
	}`)
	ann := userNode(1, "ann@example.com")
	ann.MFAAt = t0.Add(-time.Hour)
	bob := userNode(2, "bob@example.com") // never used MFA
	g := NewGraph(p, t0, ann, bob, tagNode(3, "tag:db"))
	if got := renderFilter(g.Filter(3)); !slices.Equal(got, []string{"100.64.0.1 -> 100.64.0.3:22", "100.64.0.1 -> 100.64.0.3:5432"}) {
		t.Fatalf("filter %v", got)
	}
	exp12 := ann.MFAAt.Add(12*time.Hour + time.Nanosecond)
	if got := g.NextChange(); !got.Equal(exp12) {
		t.Fatalf("NextChange = %v, want %v", got, exp12)
	}
	// Exactly 12h old still counts.
	if aff := sorted(g.Advance(ann.MFAAt.Add(12 * time.Hour))); len(aff) != 0 {
		t.Errorf("at 12h: affected %v", aff)
	}
	if aff := sorted(g.Advance(exp12)); !slices.Equal(aff, []wire.NodeID{1, 3}) {
		t.Errorf("after 12h: affected %v, want [1 3]", aff)
	}
	if got := renderFilter(g.Filter(3)); !slices.Equal(got, []string{"100.64.0.1 -> 100.64.0.3:5432"}) {
		t.Errorf("filter after 12h %v", got)
	}
	exp24 := ann.MFAAt.Add(24*time.Hour + time.Nanosecond)
	if got := g.NextChange(); !got.Equal(exp24) {
		t.Fatalf("NextChange = %v, want %v", got, exp24)
	}
	if aff := sorted(g.Advance(exp24.Add(time.Hour))); !slices.Equal(aff, []wire.NodeID{1, 3}) {
		t.Errorf("after 1d: affected %v, want [1 3]", aff)
	}
	if !g.NextChange().IsZero() {
		t.Errorf("NextChange = %v, want never", g.NextChange())
	}
	// A new MFA login brings access back.
	ann.MFAAt = exp24
	if aff := sorted(g.Upsert(ann)); !slices.Equal(aff, []wire.NodeID{3}) {
		t.Errorf("fresh MFA: affected %v", aff)
	}
	if got := peerList(g, 3); !slices.Equal(got, []wire.NodeID{1}) {
		t.Errorf("peers %v", got)
	}
}

// randomPolicies covers every selector kind, conditions and self.
var randomPolicies = []string{`{
	"groups": {"group:a": ["u0@x.com", "u1@x.com"], "group:b": ["u2@x.com"], "group:idp": []},
	"hosts": {"h": "100.64.0.0/29", "n3": "100.64.0.3"},
	"tagOwners": {"tag:t0": [], "tag:t1": [], "tag:t2": []},
	"postures": {"posture:mac": ["node:os == 'macos'"], "posture:new": ["node:osVersion >= '15'"]},
	"acls": [
		{"action": "accept", "src": ["group:a"], "dst": ["tag:t0:22"]},
		{"action": "accept", "src": ["group:idp", "u3@x.com"], "dst": ["tag:t1:80,443", "u0@x.com:22"]},
		{"action": "accept", "src": ["tag:t0"], "dst": ["tag:t1:5432"]},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
		{"action": "accept", "src": ["autogroup:admin"], "dst": ["autogroup:tagged:22"], "mfa": "2h"},
		{"action": "accept", "src": ["group:b", "n3"], "dst": ["h:8000-8999"], "srcPosture": ["posture:mac", "posture:new"]},
		{"action": "accept", "src": ["tag:t2", "10.0.0.0/8"], "dst": ["group:a:9100", "tag:t0:*"], "when": {"hours": "08:00-17:00"}},
		{"action": "accept", "src": ["100.64.0.0/30"], "dst": ["tag:t2:53"], "proto": "udp"},
		{"action": "accept", "src": ["group:a"], "dst": ["tag:t1:7", "autogroup:self:7"]},
		{"action": "accept", "src": ["100.64.0.0/29"], "dst": ["tag:t1:7"]},
		{"action": "accept", "src": ["group:idp", "100.64.0.4/30"], "dst": ["tag:t0:8"], "mfa": "3h"},
		{"action": "accept", "src": ["group:a"], "dst": ["10.1.0.0/16:5432", "192.168.0.0/16:22"]},
		{"action": "accept", "src": ["10.1.2.0/24"], "dst": ["tag:t1:80"]},
		{"action": "accept", "src": ["u2@x.com"], "dst": ["autogroup:internet:*"]},
	],
	"grants": [
		{"src": ["group:b"], "dst": ["10.0.0.0/8", "autogroup:internet"], "ip": ["tcp:443"], "via": ["tag:t1"]},
		{"src": ["tag:t2", "group:idp"], "dst": ["tag:t0", "u4@x.com"], "app": {"example.com/cap/a": [{"x": 1}]}},
		{"src": ["autogroup:member"], "dst": ["autogroup:self"], "app": {"example.com/cap/self": [{}]}, "srcPosture": ["posture:mac"]},
	],
}`, `{
	"groups": {"group:a": ["u1@x.com"], "group:b": ["u2@x.com", "u3@x.com"], "group:idp": []},
	"hosts": {"h": "100.64.0.4/30", "n3": "100.64.0.3"},
	"tagOwners": {"tag:t0": [], "tag:t1": [], "tag:t2": []},
	"postures": {"posture:mac": ["node:os == 'macos'"], "posture:new": ["node:osVersion >= '15'"]},
	"defaultSrcPosture": ["posture:new"],
	"acls": [
		{"action": "accept", "src": ["*"], "dst": ["tag:t0:22"], "srcPosture": []},
		{"action": "accept", "src": ["group:idp"], "dst": ["tag:t1:80,443", "autogroup:self:22"]},
		{"action": "accept", "src": ["tag:t1", "group:a"], "dst": ["tag:t0:5432", "n3:1"], "mfa": "30m"},
		{"action": "accept", "src": ["autogroup:tagged"], "dst": ["autogroup:member:22"], "when": {"days": ["Mon", "Tue"], "hours": "22:00-02:00"}},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["*:443"], "srcPosture": ["posture:mac"]},
		{"action": "accept", "src": ["tag:t0"], "dst": ["*:9000"], "srcPosture": []},
	],
	"grants": [
		{"src": ["*"], "dst": ["*"], "ip": ["tcp:8443"], "via": ["tag:t2"], "srcPosture": []},
		{"src": ["u1@x.com"], "dst": ["tag:t1"], "app": {"example.com/cap/b": [{}]}, "srcPosture": []},
	],
}`}

// randomNode makes node id with random owner, groups, tags, attributes,
// MFA time and address.
func randomNode(r *rand.Rand, id int, now time.Time) Node {
	// Usually a node keeps its addresses (as real nodes do); sometimes they
	// change.
	n := Node{ID: wire.NodeID(id), Addresses: addrs(id, id%2 == 0)}
	n.Addresses[0] = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 0, byte(id % 10)}), 32)
	if r.IntN(4) == 0 {
		n.Addresses = addrs(r.IntN(8)+1, r.IntN(2) == 0)
		n.Addresses[0] = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 0, byte(r.IntN(10))}), 32)
	}
	if r.IntN(4) == 0 {
		for _, t := range []string{"tag:t0", "tag:t1", "tag:t2"} {
			if r.IntN(2) == 0 {
				n.Tags = append(n.Tags, t)
			}
		}
		if len(n.Tags) == 0 {
			n.Tags = []string{"tag:t2"}
		}
	} else {
		n.User = fmt.Sprintf("u%d@x.com", r.IntN(5))
		n.Admin = r.IntN(3) == 0
		if r.IntN(3) == 0 {
			n.Groups = []string{"idp"}
		}
	}
	n.Attrs = map[string]string{}
	if r.IntN(2) == 0 {
		n.Attrs["node:os"] = "macos"
	}
	// Some nodes route subnets or are exit nodes.
	for _, rt := range []string{"10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16", "192.168.1.0/24", "fd00:1::/64", "0.0.0.0/0", "::/0"} {
		if r.IntN(5) == 0 {
			n.Routes = append(n.Routes, netip.MustParsePrefix(rt))
		}
	}
	if r.IntN(2) == 0 {
		n.Attrs["node:osVersion"] = fmt.Sprint(13 + r.IntN(4))
	}
	if r.IntN(2) == 0 {
		n.MFAAt = now.Add(-time.Duration(r.IntN(180)) * time.Minute)
	}
	return n
}

// TestIncrementalMatchesScratch applies random changes to a graph and
// checks after each that it equals a graph compiled from scratch, and
// that the affected list names every node whose filter or peers changed.
func TestIncrementalMatchesScratch(t *testing.T) {
	policies := make([]*Policy, len(randomPolicies))
	for i, src := range randomPolicies {
		policies[i] = mustParse(t, src)
	}
	seeds := uint64(30)
	if raceEnabled || testing.Short() {
		seeds = 8
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		now := time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC) // Monday
		pi := 0
		g := NewGraph(policies[pi], now)
		nodes := map[wire.NodeID]Node{}
		ids := func() []wire.NodeID {
			var out []wire.NodeID
			for id := range nodes {
				out = append(out, id)
			}
			slices.Sort(out)
			return out
		}
		for step := 0; step < 150; step++ {
			before := takeSnapshot(g, ids())
			beforeDen := map[wire.NodeID][]wire.PostureDenial{}
			for _, id := range ids() {
				beforeDen[id] = g.Denials(id)
			}
			var aff []wire.NodeID
			var self wire.NodeID = -1
			op := r.IntN(10)
			switch {
			case op < 5 || len(nodes) < 3:
				n := randomNode(r, r.IntN(14)+1, now)
				nodes[n.ID] = n
				aff, self = g.Upsert(n), n.ID
			case op < 7:
				id := ids()[r.IntN(len(nodes))]
				delete(nodes, id)
				aff, self = g.Remove(id), id
			case op < 9:
				now = now.Add(time.Duration(r.IntN(240)) * time.Minute)
				if nc := g.NextChange(); !nc.IsZero() && r.IntN(3) == 0 {
					now = nc
				}
				aff = g.Advance(now)
			default:
				pi = 1 - pi
				aff = g.SetPolicy(policies[pi])
			}
			if msg := g.checkConsistent(); msg != "" {
				t.Fatalf("seed %d step %d op %d: %s", seed, step, op, msg)
			}
			var cur []Node
			for _, id := range ids() {
				cur = append(cur, nodes[id])
			}
			if msg := filtersStayLocal(g, cur); msg != "" {
				t.Fatalf("seed %d step %d op %d: %s", seed, step, op, msg)
			}
			var all []Node
			for _, id := range ids() {
				all = append(all, nodes[id])
			}
			scratch := NewGraph(policies[pi], now, all...)
			got, want := takeSnapshot(g, ids()), takeSnapshot(scratch, ids())
			postureChanged := g.PostureChanged()
			for _, id := range ids() {
				gd, wd := g.Denials(id), scratch.Denials(id)
				if !slices.Equal(gd, wd) {
					t.Fatalf("seed %d step %d op %d: node %d denials differ from scratch:\nincremental %v\nscratch     %v", seed, step, op, id, gd, wd)
				}
				if !slices.Equal(beforeDen[id], gd) && !slices.Contains(postureChanged, id) {
					t.Fatalf("seed %d step %d op %d: node %d denials changed but not in PostureChanged %v:\nbefore %v\nafter  %v", seed, step, op, id, postureChanged, beforeDen[id], gd)
				}
			}
			for _, id := range ids() {
				if msg := compactMatches(g.CompactFilter(id), scratch.Filter(id)); msg != "" {
					t.Fatalf("seed %d step %d op %d: node %d: %s", seed, step, op, id, msg)
				}
				if got[id] != want[id] {
					t.Fatalf("seed %d step %d op %d: node %d differs from scratch:\nincremental %s\nscratch     %s", seed, step, op, id, got[id], want[id])
				}
				if id != self && before[id] != "" && before[id] != got[id] && !slices.Contains(aff, id) {
					t.Fatalf("seed %d step %d op %d: node %d changed but not in affected %v:\nbefore %s\nafter  %s", seed, step, op, id, aff, before[id], got[id])
				}
			}
			// NextChange is exact: nothing changes before it.
			if nc := g.NextChange(); !nc.IsZero() && nc.After(now.Add(time.Second)) {
				probe := NewGraph(policies[pi], nc.Add(-time.Second), all...)
				if a, b := takeSnapshot(probe, ids()), want; !mapsEqual(a, b) {
					t.Fatalf("seed %d step %d: something changed before NextChange %v", seed, step, nc)
				}
			}
		}
	}
}

// compactMatches reports how compact, a CompactFilter, differs from full,
// a Filter from scratch, with its sources compacted ("": it does not).
func compactMatches(compact, full []wire.FilterRule) string {
	if len(compact) != len(full) {
		return fmt.Sprintf("compact filter has %d rules, scratch %d", len(compact), len(full))
	}
	for i := range full {
		if want := CompactPrefixes(full[i].SrcPrefixes); !slices.Equal(compact[i].SrcPrefixes, want) {
			return fmt.Sprintf("rule %d: compact sources %v, scratch compacts to %v", i, compact[i].SrcPrefixes, want)
		}
	}
	return ""
}

func TestRemoveAndReuse(t *testing.T) {
	p := mustParse(t, `{"tagOwners": {"tag:db": []}, "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:22", "autogroup:self:*"]}]}`)
	g := NewGraph(p, t0, userNode(1, "ann@example.com"), userNode(2, "ann@example.com"), tagNode(3, "tag:db"))
	if aff := sorted(g.Remove(2)); !slices.Equal(aff, []wire.NodeID{1, 3}) {
		t.Errorf("Remove: affected %v, want [1 3]", aff)
	}
	if aff := sorted(g.Remove(2)); aff != nil {
		t.Errorf("second Remove: %v", aff)
	}
	if g.Filter(2) != nil {
		t.Error("filter of a removed node")
	}
	if aff := sorted(g.Upsert(userNode(4, "bob@example.com"))); !slices.Equal(aff, []wire.NodeID{3}) {
		t.Errorf("Upsert into a reused slot: affected %v", aff)
	}
	if got := peerList(g, 1); !slices.Equal(got, []wire.NodeID{3}) {
		t.Errorf("peers of 1: %v", got)
	}
}

// TestUpsertAffectsFew checks the common case stays small: a laptop
// joining a group affects only the nodes of rules it joins.
func TestUpsertAffectsFew(t *testing.T) {
	p := mustParse(t, `{
		"groups": {"group:eng": [], "group:sales": []},
		"tagOwners": {"tag:db": [], "tag:crm": []},
		"acls": [
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
			{"action": "accept", "src": ["group:sales"], "dst": ["tag:crm:443"]},
		],
	}`)
	var nodes []Node
	for i := 1; i <= 50; i++ {
		n := userNode(i, fmt.Sprintf("u%d@x.com", i))
		n.Groups = []string{"sales"}
		nodes = append(nodes, n)
	}
	nodes = append(nodes, tagNode(100, "tag:db"), tagNode(101, "tag:crm"))
	g := NewGraph(p, t0, nodes...)
	laptop := nodes[0]
	laptop.Groups = []string{"eng"}
	if aff := sorted(g.Upsert(laptop)); !slices.Equal(aff, []wire.NodeID{100, 101}) {
		t.Errorf("affected %v, want [100 101]", aff)
	}
	if aff := sorted(g.Upsert(laptop)); len(aff) != 0 {
		t.Errorf("unchanged node: affected %v", aff)
	}
}

// checkConsistent verifies that every node's rule lists match the rule
// bitsets and that free slots are in no set.
func (g *Graph) checkConsistent() string {
	for s, n := range g.nodes {
		for ri, gr := range g.rules {
			inS := n != nil && slices.Contains(n.srcRules, int32(ri))
			inD := n != nil && slices.Contains(n.dstRules, int32(ri))
			inG := n != nil && slices.Contains(n.gatedRules, int32(ri))
			if inS != gr.src.has(int32(s)) || inD != gr.dst.has(int32(s)) || inG != gr.gated.has(int32(s)) {
				return fmt.Sprintf("slot %d (node %v) and rule %d disagree", s, n != nil, ri)
			}
		}
	}
	for ri, gr := range g.rules {
		if gr.ndst != gr.dst.count() {
			return fmt.Sprintf("rule %d counts %d destinations, has %d", ri, gr.ndst, gr.dst.count())
		}
	}
	return ""
}

func sorted(ids []wire.NodeID) []wire.NodeID {
	slices.Sort(ids)
	return ids
}
