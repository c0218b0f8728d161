package registry

import (
	"cmp"
	"context"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// TestListNodePageSeesWhatListNodesSees checks that the paged list shows
// each actor the nodes ListNodes does (all for an admin, a member's own),
// with the same owner, presence and expiry, and nothing to an actor
// without a user.
func TestListNodePageSeesWhatListNodesSees(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann, bob := h.user("ann@example.com"), h.user("bob@example.com")
	for range 3 {
		h.register(key.MachinePublic{}, ann.ID)
		h.register(key.MachinePublic{}, bob.ID)
	}
	h.register(key.MachinePublic{}, ann.ID, "tag:db")
	first := h.register(key.MachinePublic{}, bob.ID)
	h.r.Connected(ctx, first.ID, nil, 0)
	defer h.r.Disconnected(ctx, first.ID)
	for _, a := range []Actor{testAdmin, {Name: "user:ann@example.com", UserID: ann.ID}, {Name: "user:bob@example.com", UserID: bob.ID},
		{Name: "integration", Integration: "x"}} {
		all, err := h.r.ListNodes(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(all, func(x, y NodeInfo) int { return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.ID, y.ID)) })
		var paged []NodeInfo
		for off := 0; ; off += 2 {
			page, total, err := h.r.ListNodePage(ctx, a, store.NodePageFilter{Offset: off, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if total != len(all) {
				t.Fatalf("%s: %d in all, ListNodes has %d", a.Name, total, len(all))
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
		}
		if len(paged) != len(all) {
			t.Fatalf("%s: %d paged, ListNodes has %d", a.Name, len(paged), len(all))
		}
		for i := range all {
			p, w := paged[i], all[i]
			if p.ID != w.ID || p.User != w.User || p.Online != w.Online || p.Expired != w.Expired {
				t.Errorf("%s: node %d: paged %+v, ListNodes %+v", a.Name, i, p, w)
			}
		}
	}
}
