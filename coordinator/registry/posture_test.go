package registry

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// counting returns the attributes the engine holds for node id (those the
// policy sees).
func (h *harness) counting(id store.NodeID) map[string]string {
	h.t.Helper()
	n, ok := h.engine.Node(wire.NodeID(id))
	if !ok {
		h.t.Fatalf("node %d not in the engine", id)
	}
	return n.Attrs
}

func report(at time.Time, kv ...string) *wire.PostureReport {
	rep := &wire.PostureReport{Attrs: map[string]wire.PostureValue{}}
	for i := 0; i+1 < len(kv); i += 2 {
		rep.Attrs[kv[i]] = wire.PostureValue{Value: kv[i+1], CollectedAt: at}
	}
	return rep
}

// TestReportPosture: a report replaces the node: attributes held, a
// heartbeat confirms them, a report with a custom: or malformed name is
// refused whole (audited, the attributes held kept, a repeat of the same
// refusal not audited again); only real changes are audited.
func TestReportPosture(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	n := h.register(key0(), ann.ID)
	at := h.clock.Now().Add(-time.Second)

	if err := h.r.ReportPosture(ctx, n.ID, report(at, "node:os", "linux", "node:diskEncrypted", "false"), "test"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"node:os": "linux", "node:diskEncrypted": "false"}
	if got := h.counting(n.ID); !maps.Equal(got, want) {
		t.Fatalf("engine attrs %v; want %v", got, want)
	}
	// The same values again, and a heartbeat: no audit events.
	if err := h.r.ReportPosture(ctx, n.ID, report(at, "node:os", "linux", "node:diskEncrypted", "false"), "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.r.ReportPosture(ctx, n.ID, &wire.PostureReport{Unchanged: true}, "test"); err != nil {
		t.Fatal(err)
	}
	if got := h.auditCount("node.posture.report", "ok"); got != 1 {
		t.Fatalf("%d report events after one change, a repeat and a heartbeat; want 1", got)
	}
	// A new report replaces: node:os is no longer known.
	if err := h.r.ReportPosture(ctx, n.ID, report(at, "node:diskEncrypted", "true"), "test"); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"node:diskEncrypted": "true"}
	if got := h.counting(n.ID); !maps.Equal(got, want) {
		t.Fatalf("after replacing: engine attrs %v; want %v", got, want)
	}

	for _, tc := range []struct {
		name string
		rep  *wire.PostureReport
		want error
	}{
		{"custom attribute", report(at, "node:os", "linux", "custom:mdmCompliant", "true"), ErrForbidden},
		{"no namespace", report(at, "os", "linux"), ErrBadRequest},
		{"bad characters", report(at, "node:os name", "linux"), ErrBadRequest},
		{"long name", report(at, "node:"+strings.Repeat("a", MaxAttrName), "x"), ErrBadRequest},
		{"long value", report(at, "node:os", strings.Repeat("x", MaxAttrValue+1)), ErrBadRequest},
		{"control character", report(at, "node:os", "linux\n"), ErrBadRequest},
		{"too many", func() *wire.PostureReport {
			r := report(at)
			for i := range MaxPostureAttrs + 1 {
				r.Attrs["node:a"+strings.Repeat("b", i)] = wire.PostureValue{Value: "x"}
			}
			return r
		}(), ErrBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.r.ReportPosture(ctx, n.ID, tc.rep, "test"); !errors.Is(err, tc.want) {
				t.Fatalf("ReportPosture: %v; want %v", err, tc.want)
			}
			if got := h.counting(n.ID); !maps.Equal(got, want) {
				t.Fatalf("after a refused report: engine attrs %v; want %v", got, want)
			}
		})
	}
	if got := h.auditCount("node.posture.report", "denied"); got != 7 {
		t.Fatalf("%d refused reports audited; want 7", got)
	}
	// The same bad report again and again is refused each time but
	// audited once; after a good report it is audited anew.
	bad := report(at, "node:os", "linux", "custom:mdmCompliant", "true")
	for range 3 {
		if err := h.r.ReportPosture(ctx, n.ID, bad, "test"); !errors.Is(err, ErrForbidden) {
			t.Fatalf("repeated bad report: %v", err)
		}
	}
	if got := h.auditCount("node.posture.report", "denied"); got != 8 {
		t.Fatalf("%d refused reports audited after a repeated one; want 8", got)
	}
	if err := h.r.ReportPosture(ctx, n.ID, report(at, "node:diskEncrypted", "true"), "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.r.ReportPosture(ctx, n.ID, bad, "test"); !errors.Is(err, ErrForbidden) {
		t.Fatal(err)
	}
	if got := h.auditCount("node.posture.report", "denied"); got != 9 {
		t.Fatalf("%d refused reports audited; want 9", got)
	}
}

// TestSetAttrs: admins and integrations set and unset custom: attributes
// (with expiry), never node: ones; members cannot; every change and
// refusal is audited with its source.
func TestSetAttrs(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	n := h.register(key0(), ann.ID)
	mdm := Actor{Name: "integration:mdm-sync", Integration: "mdm-sync", Remote: "test"}
	member := Actor{Name: "user:ann@example.com", UserID: ann.ID}
	now := h.clock.Now()

	held, err := h.r.SetAttrs(ctx, mdm, n.ID, map[string]string{"custom:mdmCompliant": "true"}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Source != "integration mdm-sync" || !held[0].ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("held after set: %+v", held)
	}
	if got := h.counting(n.ID); got["custom:mdmCompliant"] != "true" {
		t.Fatalf("engine attrs %v; want custom:mdmCompliant=true", got)
	}
	if _, err := h.r.SetAttrs(ctx, testAdmin, n.ID, map[string]string{"custom:owner": "ops"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		a       Actor
		attrs   map[string]string
		expires time.Time
		want    error
	}{
		{"a member", member, map[string]string{"custom:x": "1"}, time.Time{}, ErrForbidden},
		{"a node: attribute", testAdmin, map[string]string{"node:diskEncrypted": "true"}, time.Time{}, ErrBadRequest},
		{"an integration sets node:", mdm, map[string]string{"node:firewall": "true"}, time.Time{}, ErrBadRequest},
		{"nothing", mdm, nil, time.Time{}, ErrBadRequest},
		{"expired already", mdm, map[string]string{"custom:x": "1"}, now.Add(-time.Second), ErrBadRequest},
		{"no such node", mdm, map[string]string{"custom:x": "1"}, time.Time{}, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := n.ID
			if tc.want == store.ErrNotFound {
				id = 999
			}
			if _, err := h.r.SetAttrs(ctx, tc.a, id, tc.attrs, tc.expires); !errors.Is(err, tc.want) {
				t.Fatalf("SetAttrs: %v; want %v", err, tc.want)
			}
		})
	}
	if _, err := h.r.UnsetAttrs(ctx, member, n.ID, []string{"custom:owner"}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a member unsets: %v", err)
	}
	if _, err := h.r.UnsetAttrs(ctx, mdm, n.ID, []string{"custom:notSet"}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("unset an attribute not set: %v", err)
	}
	if _, err := h.r.UnsetAttrs(ctx, mdm, n.ID, []string{"custom:mdmCompliant"}); err != nil {
		t.Fatal(err)
	}
	if got := h.counting(n.ID); !maps.Equal(got, map[string]string{"custom:owner": "ops"}) {
		t.Fatalf("after unset: engine attrs %v", got)
	}
	if ok, denied := h.auditCount("node.attrs.set", "ok"), h.auditCount("node.attrs.set", "denied"); ok != 2 || denied != 6 {
		t.Fatalf("set events: %d ok, %d denied; want 2 and 6", ok, denied)
	}
	if ok, denied := h.auditCount("node.attrs.unset", "ok"), h.auditCount("node.attrs.unset", "denied"); ok != 1 || denied != 2 {
		t.Fatalf("unset events: %d ok, %d denied; want 1 and 2", ok, denied)
	}
	// Attributes survive a restart of the registry (they are loaded with
	// the nodes) and go when the node is deleted.
	h2, err := New(ctx, Config{Store: h.st, Engine: h.engine, Audit: h.r.audit, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h2.Close()
	if err := h.r.DeleteNode(ctx, testAdmin, n.ID); err != nil {
		t.Fatal(err)
	}
	if all, _ := h.st.ListAllNodeAttrs(ctx); len(all) != 0 {
		t.Fatalf("attributes of a deleted node kept: %+v", all)
	}
}

// TestViewPosture: node: attributes count for the maximum age after their
// last report, custom: ones until they expire; the view names the next
// moment it changes by itself.
func TestViewPosture(t *testing.T) {
	t0 := time.Unix(1_780_000_000, 0).UTC()
	maxAge := 15 * time.Minute
	attrs := []store.NodeAttr{
		{Name: "node:os", Value: "linux", Source: "node", ReportedAt: t0},
		{Name: "custom:mdm", Value: "true", Source: "admin a", ReportedAt: t0, ExpiresAt: t0.Add(time.Minute)},
		{Name: "custom:owner", Value: "ops", Source: "admin a", ReportedAt: t0},
	}
	for _, tc := range []struct {
		name     string
		at       time.Time
		counting map[string]string
		held     int
		next     time.Time
	}{
		{"fresh", t0, map[string]string{"node:os": "linux", "custom:mdm": "true", "custom:owner": "ops"}, 3, t0.Add(time.Minute)},
		{"custom expired", t0.Add(time.Minute), map[string]string{"node:os": "linux", "custom:owner": "ops"}, 2, t0.Add(maxAge)},
		{"node stale", t0.Add(maxAge), map[string]string{"custom:owner": "ops"}, 2, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ViewPosture(attrs, tc.at, maxAge)
			if !maps.Equal(v.Counting, tc.counting) || len(v.Held) != tc.held || !v.Next.Equal(tc.next) {
				t.Fatalf("view at %v: counting %v, held %+v, next %v; want %v, %d held, %v", tc.at, v.Counting, v.Held, v.Next, tc.counting, tc.held, tc.next)
			}
			for _, a := range v.Held {
				if stale := a.Name == "node:os" && !tc.at.Before(t0.Add(maxAge)); a.Stale != stale {
					t.Fatalf("%s stale %v; want %v", a.Name, a.Stale, stale)
				}
			}
		})
	}
}

// FuzzPostureReport: a posture report as a node sends it (an
// UpdateRequest frame, decoded by the wire decoder) never makes the
// check panic, and what the check accepts has only node: names and
// bounded values.
func FuzzPostureReport(f *testing.F) {
	for _, rep := range []*wire.PostureReport{
		report(time.Unix(1_780_000_000, 0), "node:os", "linux", "node:diskEncrypted", "true"),
		report(time.Time{}, "custom:mdm", "true", "node:os", ""),
		report(time.Time{}, "node:", "x", "node:9a", "\x00"),
		{Unchanged: true},
	} {
		b, err := wire.Encode(&wire.UpdateRequest{Posture: rep})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.ReadMessage(bytes.NewReader(b), wire.MaxNodeMessage)
		if err != nil {
			return
		}
		up, ok := m.(*wire.UpdateRequest)
		if !ok || up.Posture == nil || CheckPostureReport(up.Posture) != nil {
			return
		}
		if len(up.Posture.Attrs) > MaxPostureAttrs {
			t.Fatalf("accepted %d attributes", len(up.Posture.Attrs))
		}
		for name, v := range up.Posture.Attrs {
			if !strings.HasPrefix(name, NodeAttrPrefix) || len(name) > MaxAttrName || len(v.Value) > MaxAttrValue || CheckAttrName(name) != nil {
				t.Fatalf("accepted %q=%q", name, v.Value)
			}
		}
	})
}

// TestPostureHeartbeat: a heartbeat refreshes the time of the node's
// report without a delta to anyone; a report older than the maximum age
// stops counting, and the next heartbeat brings it back.
func TestPostureHeartbeat(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	n1 := h.register(key0(), ann.ID)
	n2 := h.register(key0(), ann.ID)
	if err := h.r.ReportPosture(ctx, n1.ID, report(h.clock.Now(), "node:os", "linux"), "test"); err != nil {
		t.Fatal(err)
	}
	s2, err := h.engine.Subscribe(wire.NodeID(n2.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Next(ctx); err != nil {
		t.Fatal(err)
	}
	heartbeat := &wire.PostureReport{Unchanged: true}
	h.clock.Advance(DefaultPostureMaxAge - time.Minute)
	if err := h.r.ReportPosture(ctx, n1.ID, heartbeat, "test"); err != nil {
		t.Fatal(err)
	}
	attrs, err := h.st.ListNodeAttrs(ctx, n1.ID)
	if err != nil || len(attrs) != 1 || !attrs[0].ReportedAt.Equal(h.clock.Now()) {
		t.Fatalf("after a heartbeat: %+v, %v; want reported at %v", attrs, err, h.clock.Now())
	}
	if p := s2.Pending(); p != 0 {
		t.Fatalf("a heartbeat queued %d deltas for a peer", p)
	}
	h.clock.Advance(DefaultPostureMaxAge)
	h.r.publishPosture(ctx, &n1) // what the node's timer does at that moment
	if got := h.counting(n1.ID); len(got) != 0 {
		t.Fatalf("a stale report still counts: %v", got)
	}
	if err := h.r.ReportPosture(ctx, n1.ID, heartbeat, "test"); err != nil {
		t.Fatal(err)
	}
	if got := h.counting(n1.ID); got["node:os"] != "linux" {
		t.Fatalf("after a heartbeat the report does not count again: %v", got)
	}
	if got := h.auditCount("node.posture.report", "ok"); got != 1 {
		t.Fatalf("%d report events; want 1 (heartbeats are not audited)", got)
	}
}
