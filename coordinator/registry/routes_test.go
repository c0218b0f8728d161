package registry

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// enabled returns the routes the engine holds for node id.
func (h *harness) enabled(id store.NodeID) string {
	h.t.Helper()
	n, ok := h.engine.Node(wire.NodeID(id))
	if !ok {
		h.t.Fatalf("node %d not in the engine", id)
	}
	return routes.Format(n.Wire.Routes)
}

// TestAdvertiseAndApproveRoutes: advertised routes carry nothing until an
// admin approves them; approval and disabling reach the engine at once;
// only admins approve; every change and refusal is audited.
func TestAdvertiseAndApproveRoutes(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	router := h.register(key0(), ann.ID, "tag:db")
	laptop := h.register(key0(), ann.ID)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.r.AdvertiseRoutes(ctx, router.ID, prefixes("fd00:20::/64", "10.20.0.0/24", "10.20.0.0/24"), "test"))
	if got := h.enabled(router.ID); got != "" {
		t.Fatalf("unapproved routes in force: %q", got)
	}
	n, _ := h.st.GetNode(ctx, router.ID)
	if routes.Format(n.AdvertisedRoutes) != "10.20.0.0/24,fd00:20::/64" || n.ApprovedRoutes != nil {
		t.Fatalf("stored advertised %v approved %v", n.AdvertisedRoutes, n.ApprovedRoutes)
	}
	// The same list again (a reconnect) is not a change.
	must(h.r.AdvertiseRoutes(ctx, router.ID, prefixes("10.20.0.0/24", "fd00:20::/64"), "test"))
	if got := h.auditCount("node.routes.advertise", "ok"); got != 1 {
		t.Fatalf("%d advertise events, want 1", got)
	}

	member := Actor{Name: "user:ann@example.com", UserID: ann.ID}
	for _, tc := range []struct {
		name string
		a    Actor
		id   store.NodeID
		ps   []netip.Prefix
		want error
	}{
		{"a member approves", member, router.ID, prefixes("10.20.0.0/24"), ErrForbidden},
		{"a member approves their own laptop's", member, laptop.ID, prefixes("10.20.0.0/24"), ErrForbidden},
		{"not advertised", testAdmin, router.ID, prefixes("10.21.0.0/24"), ErrBadRequest},
		{"host bits", testAdmin, router.ID, []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.20.0.1"), 24)}, ErrBadRequest},
		{"nothing", testAdmin, router.ID, nil, ErrBadRequest},
		{"no such node", testAdmin, 999, prefixes("10.20.0.0/24"), store.ErrNotFound},
	} {
		if _, err := h.r.ApproveRoutes(ctx, tc.a, tc.id, tc.ps); !errors.Is(err, tc.want) {
			t.Errorf("%s: ApproveRoutes = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := h.enabled(router.ID); got != "" {
		t.Fatalf("refused approvals put %q in force", got)
	}
	if got := h.auditCount("node.routes.approve", "denied"); got != 6 {
		t.Fatalf("%d denied approvals audited, want 6", got)
	}

	_, err := h.r.ApproveRoutes(ctx, testAdmin, router.ID, prefixes("10.20.0.0/24"))
	must(err)
	if got := h.enabled(router.ID); got != "10.20.0.0/24" {
		t.Fatalf("after approval, in force: %q", got)
	}
	// The node stops advertising it: it carries nothing, but the approval
	// stays for when it comes back.
	must(h.r.AdvertiseRoutes(ctx, router.ID, prefixes("fd00:20::/64"), "test"))
	if got := h.enabled(router.ID); got != "" {
		t.Fatalf("withdrawn route still in force: %q", got)
	}
	must(h.r.AdvertiseRoutes(ctx, router.ID, prefixes("10.20.0.0/24", "fd00:20::/64"), "test"))
	if got := h.enabled(router.ID); got != "10.20.0.0/24" {
		t.Fatalf("re-advertised approved route: in force %q", got)
	}
	if _, err := h.r.DisableRoutes(ctx, member, router.ID, prefixes("10.20.0.0/24")); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a member disabled a route: %v", err)
	}
	if _, err := h.r.DisableRoutes(ctx, testAdmin, router.ID, prefixes("fd00:20::/64")); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("disabling an unapproved route: %v", err)
	}
	_, err = h.r.DisableRoutes(ctx, testAdmin, router.ID, prefixes("10.20.0.0/24"))
	must(err)
	if got := h.enabled(router.ID); got != "" {
		t.Fatalf("after disabling, in force: %q", got)
	}
	if ok, denied := h.auditCount("node.routes.disable", "ok"), h.auditCount("node.routes.disable", "denied"); ok != 1 || denied != 2 {
		t.Fatalf("disable audits: %d ok, %d denied; want 1 and 2", ok, denied)
	}
}

// TestAdvertiseBadRoutes: a list with any bad route is refused whole,
// audited, and leaves the stored routes as they were.
func TestAdvertiseBadRoutes(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	router := h.register(key0(), ann.ID, "tag:db")
	if err := h.r.AdvertiseRoutes(ctx, router.ID, prefixes("10.20.0.0/24"), "test"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]netip.Prefix{
		prefixes("10.20.0.0/24", "100.64.0.0/10"),
		prefixes("0.0.0.0/0"),
		prefixes("::/0", "10.20.0.0/24"),
		prefixes("fd7a:115c:a1e0::/64"),
		{netip.PrefixFrom(netip.MustParseAddr("10.9.0.1"), 16)},
		{{}},
		make([]netip.Prefix, routes.MaxAdvertised+1),
	} {
		if err := h.r.AdvertiseRoutes(ctx, router.ID, bad, "test"); !errors.Is(err, ErrBadRequest) || !errors.Is(err, routes.ErrInvalid) {
			t.Errorf("AdvertiseRoutes(%d routes: %v…) = %v; want a bad request", len(bad), bad[:min(len(bad), 2)], err)
		}
	}
	n, _ := h.st.GetNode(ctx, router.ID)
	if routes.Format(n.AdvertisedRoutes) != "10.20.0.0/24" {
		t.Fatalf("after refusals, stored %v", n.AdvertisedRoutes)
	}
	if got := h.auditCount("node.routes.advertise", "denied"); got != 7 {
		t.Fatalf("%d refusals audited, want 7", got)
	}
}

// TestAutoApproveRoutes: the policy's autoApprovers approve what they
// cover at advertisement, and routes waiting when the policy changes; the
// exit pair goes together; approvals stay when the approver goes.
func TestAutoApproveRoutes(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	ops := h.user("ops@example.com")
	router := h.register(key0(), ann.ID, "tag:db")
	laptop := h.register(key0(), ops.ID)
	other := h.register(key0(), ann.ID)
	h.setPolicy(`{
		"groups": {"group:ops": ["ops@example.com"]},
		"tagOwners": {"tag:db": ["ann@example.com"], "tag:web": []},
		"autoApprovers": {"routes": {"10.20.0.0/16": ["tag:db"], "192.168.0.0/16": ["group:ops"]}, "exitNode": ["tag:db"]},
		"acls": [],
	}`)
	if err := h.r.AdvertiseRoutes(ctx, router.ID, prefixes("10.20.1.0/24", "10.30.0.0/24", "0.0.0.0/0", "::/0"), "test"); err != nil {
		t.Fatal(err)
	}
	if got := h.enabled(router.ID); got != "0.0.0.0/0,10.20.1.0/24,::/0" {
		t.Fatalf("auto-approved: %q", got)
	}
	if err := h.r.AdvertiseRoutes(ctx, laptop.ID, prefixes("192.168.7.0/24"), "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.r.AdvertiseRoutes(ctx, other.ID, prefixes("192.168.8.0/24"), "test"); err != nil {
		t.Fatal(err)
	}
	if got, got2 := h.enabled(laptop.ID), h.enabled(other.ID); got != "192.168.7.0/24" || got2 != "" {
		t.Fatalf("group approver: ops's laptop %q, ann's %q", got, got2)
	}

	// A policy change approves what waits for it, audited with the policy
	// as actor; and approvals already made stay when approvers go.
	p := mustPolicy(t, `{
		"groups": {"group:ops": ["ops@example.com"]},
		"tagOwners": {"tag:db": ["ann@example.com"], "tag:web": []},
		"autoApprovers": {"routes": {"10.30.0.0/24": ["tag:db"], "192.168.8.0/24": ["ann@example.com"]}},
		"acls": [],
	}`)
	h.r.AutoApprove(ctx, p)
	if got := h.enabled(router.ID); got != "0.0.0.0/0,10.20.1.0/24,10.30.0.0/24,::/0" {
		t.Fatalf("after the policy change, router: %q", got)
	}
	if got := h.enabled(other.ID); got != "192.168.8.0/24" {
		t.Fatalf("after the policy change, ann's node: %q", got)
	}
	evs, err := h.st.ListAudit(ctx, store.AuditFilter{Action: "node.routes.approve"})
	if err != nil {
		t.Fatal(err)
	}
	var byPolicy []string
	for _, e := range evs {
		if e.Actor == "policy" && e.Outcome == "ok" {
			byPolicy = append(byPolicy, e.Target)
		}
	}
	slices.Sort(byPolicy)
	if want := []string{"node:" + itoa(int64(router.ID)), "node:" + itoa(int64(other.ID))}; !slices.Equal(byPolicy, sorted(want)) {
		t.Fatalf("policy approvals audited for %v, want %v", byPolicy, want)
	}
}

func key0() key.MachinePublic { return key.MachinePublic{} }

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func sorted(ss []string) []string {
	slices.Sort(ss)
	return ss
}

func mustPolicy(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
