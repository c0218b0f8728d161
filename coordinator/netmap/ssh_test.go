package netmap

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// sshPolicy lets members log in to tag:prod (which they reach on port 22)
// as any user but root, recorded by tag:rec nodes.
const sshPolicy = `{
	"groups": {"group:eng": ["u10@example.com"]},
	"tagOwners": {"tag:prod": [], "tag:rec": []},
	"acls": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:prod:22", "autogroup:self:*"]},
		{"action": "accept", "src": ["tag:prod"], "dst": ["tag:rec:80"]},
	],
	"ssh": [
		{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": "1h"},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:prod"], "users": ["autogroup:nonroot"], "recorder": ["tag:rec"]},
	],
}`

// applySSH is what a node does with the SSH policy of a response.
func applySSH(cur *wire.SSHPolicy, resp *wire.MapResponse) *wire.SSHPolicy {
	if resp.Full || resp.SSH != nil {
		return resp.SSH
	}
	return cur
}

// TestSSHPolicyInNetmaps follows a destination's SSH policy through a
// peer joining, being disabled, and policy changes.
func TestSSHPolicyInNetmaps(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, sshPolicy)})
	e.Upsert(testNode(1, 10))
	e.Upsert(testNode(3, 0, "tag:prod"))
	e.Upsert(testNode(4, 0, "tag:rec"))
	s1, _ := e.Subscribe(1)
	s3, _ := e.Subscribe(3)
	full := next(t, s3)
	want := &wire.SSHPolicy{Rules: []wire.SSHRule{
		{Rule: "ssh[0]", Sources: []wire.NodeID{1}, Users: []string{"root"}, Action: wire.SSHCheck, CheckPeriod: 3600e9},
		{Rule: "ssh[1]", Sources: []wire.NodeID{1}, Users: []string{"autogroup:nonroot"}, Action: wire.SSHAccept,
			Record: &wire.SSHRecording{Recorders: []wire.NodeID{4}, RecorderTags: []string{"tag:rec"}}},
	}}
	if !sameSSH(full.SSH, want) {
		t.Fatalf("full map SSH = %s, want %s", render(full.SSH), render(want))
	}
	if f := next(t, s1); f.SSH != nil {
		t.Fatalf("a laptop no rule targets got %+v", f.SSH)
	}

	// Another member's laptop joins: it is a source of the accept rule.
	e.Upsert(testNode(2, 20))
	d := next(t, s3)
	if d.SSH == nil || !slices.Equal(d.SSH.Rules[1].Sources, []wire.NodeID{1, 2}) || !slices.Equal(d.SSH.Rules[0].Sources, []wire.NodeID{1}) {
		t.Fatalf("after a join: %s", render(d.SSH))
	}
	if !slices.Equal(peerIDs(d.PeersChanged), []wire.NodeID{2}) {
		t.Fatalf("after a join, peers changed %v", peerIDs(d.PeersChanged))
	}

	// Its user is disabled: it leaves the peers and the Sources together.
	off := testNode(2, 20)
	off.Disabled = true
	e.Upsert(off)
	d = next(t, s3)
	if d.SSH == nil || !slices.Equal(d.SSH.Rules[1].Sources, []wire.NodeID{1}) || !slices.Equal(d.PeersRemoved, []wire.NodeID{2}) {
		t.Fatalf("after disabling: %s, removed %v", render(d.SSH), d.PeersRemoved)
	}
	nothingQueued(t, s1)

	// A policy without ssh: the destination is told it has no rules now.
	e.SetPolicy(mustPolicy(t, testPolicy))
	cur := applySSH(want, next(t, s3))
	if !sameSSH(cur, nil) { // a full map (its peers changed) or an empty policy
		t.Fatalf("after dropping the ssh section: %s", render(cur))
	}
}

// TestSSHPeerIdentity: peer records carry the owner's groups as the policy
// sees them and the postures the node passes, updated on policy changes.
func TestSSHPeerIdentity(t *testing.T) {
	const pol = `{"groups": {"group:eng": ["u10@example.com"]}, "postures": {"posture:enc": ["node:diskEncrypted == true"]},
		"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]}`
	e := newEngine(t, Config{Policy: mustPolicy(t, pol)})
	a := testNode(1, 10)
	a.Groups = []string{"ops"}
	a.Attrs = map[string]string{"node:diskEncrypted": "true"}
	e.Upsert(a)
	e.Upsert(testNode(2, 10))
	s2, _ := e.Subscribe(2)
	full := next(t, s2)
	if len(full.Peers) != 1 || !slices.Equal(full.Peers[0].Groups, []string{"group:eng"}) || !slices.Equal(full.Peers[0].Postures, []string{"posture:enc"}) {
		t.Fatalf("peer record %+v", full.Peers)
	}
	// The policy declares group:ops: the peer's record now shows it.
	e.SetPolicy(mustPolicy(t, `{"groups": {"group:eng": ["u10@example.com"], "group:ops": []},
		"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]}`))
	d := next(t, s2)
	if len(d.PeersChanged) != 1 || !slices.Equal(d.PeersChanged[0].Groups, []string{"group:eng", "group:ops"}) || d.PeersChanged[0].Postures != nil {
		t.Fatalf("after the policy change: %+v", d)
	}
}

// TestSSHIncrementalMatchesScratch applies random joins, changes,
// disables, removals and policy changes, and checks after each that the
// SSH policy every node holds (its full map with the deltas applied)
// equals one compiled from scratch.
func TestSSHIncrementalMatchesScratch(t *testing.T) {
	pols := []*policy.Policy{mustPolicy(t, sshPolicy), mustPolicy(t, `{
		"tagOwners": {"tag:prod": [], "tag:rec": []},
		"acls": [{"action": "accept", "src": ["autogroup:member", "tag:rec"], "dst": ["tag:prod:22", "tag:rec:*"]}],
		"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:prod", "tag:rec"], "users": ["ubuntu"], "recorder": ["tag:rec"], "enforceRecorder": false}],
	}`)}
	e := newEngine(t, Config{Policy: pols[0]})
	rng := rand.New(rand.NewPCG(23, 3))
	const nodes = 12
	node := func(id int) Node {
		switch id % 4 {
		case 0:
			return testNode(id, 0, "tag:prod")
		case 1:
			return testNode(id, 0, "tag:rec")
		}
		return testNode(id, int64(10*(id%3)))
	}
	streams := map[wire.NodeID]*Stream{}
	held := map[wire.NodeID]*wire.SSHPolicy{}
	for step := 0; step < 300; step++ {
		id := 1 + rng.IntN(nodes)
		switch op := rng.IntN(10); {
		case op < 4:
			n := node(id)
			n.Disabled = rng.IntN(4) == 0
			e.Upsert(n)
			if streams[wire.NodeID(id)] == nil {
				s, err := e.Subscribe(wire.NodeID(id))
				if err != nil {
					t.Fatal(err)
				}
				streams[wire.NodeID(id)] = s
			}
		case op < 6:
			n := node(id)
			n.Wire.Tags = nil
			n.Wire.User, n.UserID = "u10@example.com", 10 // re-tagged as a user's
			if _, ok := e.Node(wire.NodeID(id)); ok {
				e.Upsert(n)
			}
		case op < 8:
			e.Remove(wire.NodeID(id), nil)
			delete(streams, wire.NodeID(id))
			delete(held, wire.NodeID(id))
		default:
			e.SetPolicy(pols[rng.IntN(2)])
		}
		for sid, s := range streams {
			for s.Pending() > 0 {
				held[sid] = applySSH(held[sid], next(t, s))
			}
			e.mu.Lock()
			want := e.sshPolicyOf(e.nodes[sid], e.now())
			e.mu.Unlock()
			if !sameSSH(held[sid], want) {
				t.Fatalf("step %d: node %d holds %s, want %s", step, sid, render(held[sid]), render(want))
			}
		}
	}
}

func render(p *wire.SSHPolicy) string {
	if p == nil {
		return "nil"
	}
	out := ""
	for _, r := range p.Rules {
		out += r.Rule + " " + r.Action + " src="
		for _, s := range r.Sources {
			out += string(rune('0'+s%10)) + ","
		}
		if r.Record != nil {
			out += " rec="
			for _, s := range r.Record.Recorders {
				out += string(rune('0'+s%10)) + ","
			}
		}
		out += "; "
	}
	return "[" + out + "]"
}
