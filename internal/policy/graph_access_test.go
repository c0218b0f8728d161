package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

const grantPolicy = `{
	"groups": {"group:eng": ["ann@example.com", "bob@example.com"], "group:sre": ["sam@example.com"]},
	"tagOwners": {"tag:prod-db": [], "tag:web": []},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]}],
	"access": [{"src": ["group:eng"], "dst": ["tag:prod-db:5432"], "approvers": ["group:sre"], "maxDuration": "4h"}],
}`

// ruleNames lists the Rule of each filter rule.
func ruleNames(rules []wire.FilterRule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Rule)
	}
	return out
}

func TestGrantLifecycle(t *testing.T) {
	p := mustParse(t, grantPolicy)
	ann1, ann2 := userNode(1, "ann@example.com"), userNode(2, "ann@example.com")
	g := NewGraph(p, t0, ann1, ann2, userNode(3, "bob@example.com"), tagNode(10, "tag:prod-db"), tagNode(11, "tag:prod-db"), tagNode(12, "tag:web"))
	until := t0.Add(2 * time.Hour)
	gr := Grant{ID: "ar-1", Node: 1, Dst: "tag:prod-db:5432", Rule: "access[0]", Until: until}

	if got := peerList(g, 1); !slices.Equal(got, []wire.NodeID{12}) {
		t.Fatalf("peers before: %v", got)
	}
	aff, err := g.SetGrant(gr)
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(aff); !slices.Equal(got, []wire.NodeID{1, 10, 11}) {
		t.Errorf("SetGrant affected %v, want [1 10 11]", got)
	}
	for _, id := range []wire.NodeID{10, 11} {
		f := g.Filter(id)
		want := fmt.Sprintf("100.64.0.1 -> 100.64.0.%d:5432", id)
		if got := renderFilter(f); !slices.Equal(got, []string{want}) {
			t.Errorf("filter of %d: %q, want %q", id, got, want)
		}
		if got := ruleNames(f); !slices.Equal(got, []string{"access[0]/ar-1"}) {
			t.Errorf("rule names of %d: %q", id, got)
		}
		if got := peerList(g, id); !slices.Equal(got, []wire.NodeID{1}) {
			t.Errorf("peers of %d: %v, want [1]", id, got)
		}
	}
	if got := peerList(g, 1); !slices.Equal(got, []wire.NodeID{10, 11, 12}) {
		t.Errorf("peers of the granted node: %v", got)
	}
	// The requester's other device and other users get nothing.
	if got := peerList(g, 2); !slices.Equal(got, []wire.NodeID{12}) {
		t.Errorf("peers of ann's other device: %v", got)
	}
	if got := g.Grants(); len(got) != 1 || got[0] != gr {
		t.Errorf("Grants = %+v", got)
	}
	if nc := g.NextChange(); !nc.Equal(until) {
		t.Errorf("NextChange = %v, want %v", nc, until)
	}

	// Nothing before Until; everything at Until.
	if aff := g.Advance(until.Add(-time.Nanosecond)); len(aff) != 0 {
		t.Errorf("Advance before Until affected %v", aff)
	}
	if got := sorted(g.Advance(until)); !slices.Equal(got, []wire.NodeID{1, 10, 11}) {
		t.Errorf("expiry affected %v, want [1 10 11]", got)
	}
	if f := g.Filter(10); len(f) != 0 || len(g.Grants()) != 0 || !g.NextChange().IsZero() {
		t.Errorf("after expiry: filter %v, grants %v, next %v", renderFilter(f), g.Grants(), g.NextChange())
	}

	// A grant already expired is not added; one replaced moves.
	if aff, err := g.SetGrant(Grant{ID: "ar-2", Node: 1, Dst: "tag:prod-db:5432", Until: until}); err != nil || aff != nil || len(g.Grants()) != 0 {
		t.Errorf("expired grant: %v %v %v", aff, err, g.Grants())
	}
	later := until.Add(time.Hour)
	if _, err := g.SetGrant(Grant{ID: "ar-3", Node: 3, Dst: "tag:prod-db:5432", Rule: "access[0]", Until: later}); err != nil {
		t.Fatal(err)
	}
	aff, err = g.SetGrant(Grant{ID: "ar-3", Node: 3, Dst: "tag:web:22", Rule: "access[0]", Until: later})
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(aff); !slices.Equal(got, []wire.NodeID{3, 10, 11, 12}) {
		t.Errorf("replacing affected %v", got)
	}
	if got := renderFilter(g.Filter(12)); !slices.Contains(got, "100.64.0.3 -> 100.64.0.12:22") {
		t.Errorf("filter of 12 after the replacement: %q", got)
	}

	// A bad destination changes nothing.
	if _, err := g.SetGrant(Grant{ID: "ar-4", Node: 3, Dst: "tag:nope:22", Until: later}); !errors.Is(err, ErrBadDestination) {
		t.Errorf("unknown tag: %v", err)
	}

	// The granted node leaves and comes back before Until.
	if got := sorted(g.Remove(3)); !slices.Equal(got, []wire.NodeID{12}) {
		t.Errorf("granted node leaves: affected %v", got)
	}
	if len(g.Grants()) != 1 || slices.Contains(ruleNames(g.Filter(12)), "access[0]/ar-3") {
		t.Errorf("after the granted node left: grants %v filter %q", g.Grants(), renderFilter(g.Filter(12)))
	}
	if got := sorted(g.Upsert(userNode(3, "bob@example.com"))); !slices.Contains(got, 12) {
		t.Errorf("granted node returns: affected %v", got)
	}
	if got := renderFilter(g.Filter(12)); !slices.Contains(got, "100.64.0.3 -> 100.64.0.12:22") {
		t.Errorf("filter of 12 after the node came back: %q", got)
	}
	// A destination node that joins later is covered.
	if got := sorted(g.Upsert(tagNode(13, "tag:web"))); !slices.Contains(got, 3) {
		t.Errorf("new destination: affected %v, want 3 in it", got)
	}
	if got := renderFilter(g.Filter(13)); !slices.Contains(got, "100.64.0.3 -> 100.64.0.13:22") {
		t.Errorf("filter of the new destination: %q", got)
	}

	if got := sorted(g.RemoveGrant("ar-3")); !slices.Equal(got, []wire.NodeID{3, 12, 13}) {
		t.Errorf("RemoveGrant affected %v", got)
	}
	if g.RemoveGrant("ar-3") != nil || len(g.Grants()) != 0 || len(g.Filter(12)) != 1 {
		t.Errorf("after RemoveGrant: %v %q", g.Grants(), renderFilter(g.Filter(12)))
	}
}

func TestGrantsSurviveSetPolicy(t *testing.T) {
	p := mustParse(t, grantPolicy)
	g := NewGraph(p, t0, userNode(1, "ann@example.com"), tagNode(10, "tag:prod-db"), tagNode(12, "tag:web"))
	until := t0.Add(time.Hour)
	for _, gr := range []Grant{
		{ID: "ar-1", Node: 1, Dst: "tag:prod-db:5432", Rule: "access[0]", Until: until},
		{ID: "ar-2", Node: 1, Dst: "tag:web:22", Rule: "access[0]", Until: until.Add(time.Hour)},
	} {
		if _, err := g.SetGrant(gr); err != nil {
			t.Fatal(err)
		}
	}
	// The same policy with one more rule: both grants stay, nothing changes
	// for the database.
	p2 := mustParse(t, strings.Replace(grantPolicy, `"acls": [`, `"acls": [{"action": "accept", "src": ["sam@example.com"], "dst": ["tag:web:80"]},`, 1))
	if aff := g.SetPolicy(p2); slices.Contains(aff, 10) {
		t.Errorf("SetPolicy affected %v", aff)
	}
	if len(g.Grants()) != 2 || len(g.Filter(10)) != 1 {
		t.Fatalf("grants after SetPolicy: %v, filter of 10 %q", g.Grants(), renderFilter(g.Filter(10)))
	}
	// A policy without tag:web drops the grant on it.
	p3 := mustParse(t, `{"groups": {"group:eng": []}, "tagOwners": {"tag:prod-db": []}, "acls": []}`)
	aff := sorted(g.SetPolicy(p3))
	if got := g.Grants(); len(got) != 1 || got[0].ID != "ar-1" {
		t.Errorf("grants under a policy without tag:web: %v", got)
	}
	if !slices.Contains(aff, 12) || !slices.Contains(aff, 1) || len(g.Filter(12)) != 0 {
		t.Errorf("dropping a grant: affected %v, filter of 12 %q", aff, renderFilter(g.Filter(12)))
	}
	if nc := g.NextChange(); !nc.Equal(until) {
		t.Errorf("NextChange after SetPolicy = %v", nc)
	}
	g.Advance(until)
	if len(g.Grants()) != 0 || len(g.Filter(10)) != 0 {
		t.Errorf("after expiry: %v", g.Grants())
	}
}

func TestGrantPrefixDestination(t *testing.T) {
	p := mustParse(t, `{"hosts": {"lab": "100.64.0.8/29"}, "acls": []}`)
	g := NewGraph(p, t0, userNode(1, "ann@example.com"), tagNodeNoTag(9), tagNodeNoTag(20))
	if _, err := g.SetGrant(Grant{ID: "ar-1", Node: 1, Dst: "lab:22,80-90", Until: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := renderFilter(g.Filter(9)); !slices.Equal(got, []string{"100.64.0.1 -> 100.64.0.9:22,100.64.0.9:80-90"}) {
		t.Errorf("filter inside the prefix: %q", got)
	}
	if got := g.Filter(20); len(got) != 0 {
		t.Errorf("filter outside the prefix: %q", renderFilter(got))
	}
}

// tagNodeNoTag is an untagged node of its own user.
func tagNodeNoTag(id int) Node { return userNode(id, fmt.Sprintf("u%d@example.com", id)) }

func TestMFADenials(t *testing.T) {
	p := mustParse(t, `{
		"groups": {"group:eng": ["ann@example.com", "bob@example.com", "carl@example.com"]},
		"tagOwners": {"tag:db": []},
		"postures": {"posture:mac": ["node:os == 'macos'"]},
		"acls": [
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"], "mfa": "15m"},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"], "mfa": "1h", "srcPosture": ["posture:mac"]},
			{"action": "accept", "src": ["group:eng"], "dst": ["autogroup:self:*"], "mfa": "1h", "when": {"days": ["Sat"], "hours": "00:00-24:00", "tz": "UTC"}},
		],
	}`)
	ann := userNode(1, "ann@example.com") // never MFA, no posture
	bob := userNode(2, "bob@example.com")
	bob.MFAAt = t0.Add(-30 * time.Minute) // fresh for 1h, stale for 15m
	bob.Attrs = map[string]string{"node:os": "macos"}
	carl := userNode(3, "carl@example.com")
	carl.MFAAt = t0 // fresh
	g := NewGraph(p, t0, ann, bob, carl, tagNode(5, "tag:db"))
	render := func(id wire.NodeID) []string {
		var out []string
		for _, d := range g.MFADenials(id) {
			out = append(out, fmt.Sprintf("%s %s %v", d.Destination, d.Rule, d.MaxAge))
		}
		return out
	}
	tests := []struct {
		id   wire.NodeID
		want []string
	}{
		{1, []string{"tag:db:5432 acls[0] 15m0s"}}, // fails posture for acls[1]; the Saturday rule is closed
		{2, []string{"tag:db:5432 acls[0] 15m0s"}},
		{3, nil},
		{5, nil}, // tagged: never
	}
	for _, tc := range tests {
		if got := render(tc.id); !slices.Equal(got, tc.want) {
			t.Errorf("node %d: %q, want %q", tc.id, got, tc.want)
		}
	}
	g.PostureChanged()
	// Bob's MFA goes stale for the posture rule too.
	g.Advance(t0.Add(31 * time.Minute))
	if got := sorted(g.PostureChanged()); !slices.Contains(got, 2) {
		t.Errorf("PostureChanged after bob's MFA aged: %v", got)
	}
	if got := render(2); !slices.Equal(got, []string{"tag:db:22 acls[1] 1h0m0s", "tag:db:5432 acls[0] 15m0s"}) {
		t.Errorf("bob after an hour: %q", got)
	}
	// Saturday opens the self rule for everyone with stale MFA.
	sat := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	g.Advance(sat)
	if got := sorted(g.PostureChanged()); !slices.Contains(got, 1) || !slices.Contains(got, 3) {
		t.Errorf("PostureChanged when the window opened: %v", got)
	}
	if got := render(1); !slices.Contains(got, "autogroup:self:* acls[2] 1h0m0s") {
		t.Errorf("ann on Saturday: %q", got)
	}
	// No destination node: nothing to ask for.
	g.Remove(5)
	if got := render(3); slices.Contains(got, "tag:db:5432 acls[0] 15m0s") {
		t.Errorf("carl without a db node: %q", got)
	}
}

// TestGrantsMatchScratch applies random node, clock, policy and grant
// changes and checks after each that the graph equals one compiled from
// scratch with the same grants, that the affected list names every node
// whose filter or peers changed, that the grants in force are exactly the
// unexpired ones, and that MFA denials match and are announced.
func TestGrantsMatchScratch(t *testing.T) {
	policies := []*Policy{mustParse(t, randomPolicies[0]), mustParse(t, randomPolicies[1])}
	dsts := []string{"tag:t1:22", "tag:t0:*", "u1@x.com:80", "h:443", "*:8080", "group:a:22", "n3:1-100", "tag:t2:5432"}
	seeds := uint64(20)
	if raceEnabled || testing.Short() {
		seeds = 6
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 20))
		now := time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)
		pi := 0
		g := NewGraph(policies[pi], now)
		nodes := map[wire.NodeID]Node{}
		model := map[string]Grant{}
		ids := func() []wire.NodeID {
			var out []wire.NodeID
			for id := range nodes {
				out = append(out, id)
			}
			slices.Sort(out)
			return out
		}
		for step := 0; step < 120; step++ {
			before := takeSnapshot(g, ids())
			beforeMFA := map[wire.NodeID][]wire.MFADenial{}
			for _, id := range ids() {
				beforeMFA[id] = g.MFADenials(id)
			}
			var aff []wire.NodeID
			var self wire.NodeID = -1
			op := r.IntN(12)
			switch {
			case op < 4 || len(nodes) < 3:
				n := randomNode(r, r.IntN(14)+1, now)
				nodes[n.ID] = n
				aff, self = g.Upsert(n), n.ID
			case op < 5:
				id := ids()[r.IntN(len(nodes))]
				delete(nodes, id)
				aff, self = g.Remove(id), id
			case op < 8:
				gr := Grant{ID: fmt.Sprintf("ar-%d", r.IntN(6)), Node: wire.NodeID(r.IntN(14) + 1),
					Dst: dsts[r.IntN(len(dsts))], Rule: "access[0]", Until: now.Add(time.Duration(r.IntN(300)+1) * time.Minute)}
				var err error
				if aff, err = g.SetGrant(gr); err != nil {
					t.Fatalf("seed %d step %d: SetGrant: %v", seed, step, err)
				}
				model[gr.ID] = gr
			case op < 9:
				id := fmt.Sprintf("ar-%d", r.IntN(6))
				aff = g.RemoveGrant(id)
				delete(model, id)
			case op < 11:
				now = now.Add(time.Duration(r.IntN(120)) * time.Minute)
				if nc := g.NextChange(); !nc.IsZero() && r.IntN(3) == 0 {
					now = nc
				}
				aff = g.Advance(now)
			default:
				pi = 1 - pi
				aff = g.SetPolicy(policies[pi])
			}
			for id, gr := range model {
				if !gr.Until.After(now) {
					delete(model, id)
				}
			}
			var all []Node
			for _, id := range ids() {
				all = append(all, nodes[id])
			}
			scratch := NewGraph(policies[pi], now, all...)
			var want []Grant
			for _, gr := range model {
				if _, err := scratch.SetGrant(gr); err != nil {
					t.Fatalf("seed %d step %d: scratch SetGrant: %v", seed, step, err)
				}
				want = append(want, gr)
			}
			slices.SortFunc(want, func(a, b Grant) int { return strings.Compare(a.ID, b.ID) })
			if got := g.Grants(); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d op %d: grants %v, want %v", seed, step, op, got, want)
			}
			got, wantSnap := takeSnapshot(g, ids()), takeSnapshot(scratch, ids())
			changed := g.PostureChanged()
			for _, id := range ids() {
				if got[id] != wantSnap[id] {
					t.Fatalf("seed %d step %d op %d: node %d differs from scratch:\nincremental %s\nscratch     %s", seed, step, op, id, got[id], wantSnap[id])
				}
				if slices.Compare(ruleNames(g.Filter(id)), ruleNames(scratch.Filter(id))) != 0 {
					t.Fatalf("seed %d step %d: node %d rule names differ", seed, step, id)
				}
				if id != self && before[id] != "" && before[id] != got[id] && !slices.Contains(aff, id) {
					t.Fatalf("seed %d step %d op %d: node %d changed but not in affected %v:\nbefore %s\nafter  %s", seed, step, op, id, aff, before[id], got[id])
				}
				gm, wm := g.MFADenials(id), scratch.MFADenials(id)
				if !slices.Equal(gm, wm) {
					t.Fatalf("seed %d step %d op %d: node %d MFA denials %v, scratch %v", seed, step, op, id, gm, wm)
				}
				if !slices.Equal(beforeMFA[id], gm) && !slices.Contains(changed, id) {
					t.Fatalf("seed %d step %d op %d: node %d MFA denials changed but not in PostureChanged", seed, step, op, id)
				}
			}
			// NextChange is no later than the first grant's expiry.
			for _, gr := range want {
				if nc := g.NextChange(); nc.IsZero() || nc.After(gr.Until) {
					t.Fatalf("seed %d step %d: NextChange %v after grant %s's Until %v", seed, step, nc, gr.ID, gr.Until)
				}
			}
		}
	}
}

func TestExplainNamesGrant(t *testing.T) {
	p := mustParse(t, grantPolicy)
	ann, db := userNode(1, "ann@example.com"), tagNode(10, "tag:prod-db")
	ann2 := userNode(2, "ann@example.com")
	until := t0.Add(2 * time.Hour)
	grants := []Grant{{ID: "ar-12", Node: 1, Dst: "tag:prod-db:5432", Rule: "access[0]", Until: until}}
	tests := []struct {
		name string
		q    Query
		want string // Decision.String prefix
	}{
		{"granted", Query{SrcNode: &ann, DstNode: &db, Port: 5432, At: t0, Grants: grants},
			"allowed by grant ar-12 (access[0], until 2026-11-25T03:00:00Z): tag:prod-db:5432"},
		{"by destination selector", Query{SrcNode: &ann, Dst: "tag:prod-db", Port: 5432, At: t0, Grants: grants}, "allowed by grant ar-12"},
		{"other port", Query{SrcNode: &ann, DstNode: &db, Port: 22, At: t0, Grants: grants}, "denied"},
		{"other device of the same user", Query{SrcNode: &ann2, DstNode: &db, Port: 5432, At: t0, Grants: grants}, "denied"},
		{"the user, not a device", Query{Src: "ann@example.com", DstNode: &db, Port: 5432, At: t0, Grants: grants}, "denied"},
		{"after Until", Query{SrcNode: &ann, DstNode: &db, Port: 5432, At: until, Grants: grants}, "denied"},
		{"no time: in force", Query{SrcNode: &ann, DstNode: &db, Port: 5432, Grants: grants}, "allowed by grant ar-12"},
		{"sctp", Query{SrcNode: &ann, DstNode: &db, Port: 5432, Proto: "sctp", At: t0, Grants: grants}, "denied"},
		{"a rule first", Query{SrcNode: &ann, Dst: "tag:web", Port: 443, At: t0,
			Grants: []Grant{{ID: "ar-1", Node: 1, Dst: "tag:web:443", Until: until}}}, "allowed by acls rule #1"},
	}
	for _, tc := range tests {
		d, err := p.Explain(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !strings.HasPrefix(d.String(), tc.want) {
			t.Errorf("%s: %s, want %s...", tc.name, d, tc.want)
		}
		if d.Allowed != strings.HasPrefix(tc.want, "allowed") {
			t.Errorf("%s: Allowed = %v", tc.name, d.Allowed)
		}
	}
}
