package control

import (
	"context"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestPostureOverTheChannel: a posture report in the map request and in
// an update is stored and comes back in the node's own map; an update
// carrying only a posture report (no endpoints, no home relay) leaves the
// node's endpoints as they were; a report with a custom: attribute is
// refused and audited, and the channel stays up.
func TestPostureOverTheChannel(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	a := h.join("192.0.2.1:41641")
	b := h.connect()
	b.register()
	now := time.Now()
	b.send(&wire.MapRequest{Stream: true, Endpoints: addrPorts("192.0.2.2:41641"),
		Posture: &wire.PostureReport{Attrs: map[string]wire.PostureValue{"node:os": {Value: "linux", CollectedAt: now}}}})
	full := b.nextMap()
	if !full.Full || full.Posture == nil || len(full.Posture.Attrs) != 1 || full.Posture.Attrs[0].Value != "linux" {
		t.Fatalf("b's first map: posture %+v", full.Posture)
	}

	b.send(&wire.UpdateRequest{Posture: &wire.PostureReport{Attrs: map[string]wire.PostureValue{
		"node:os": {Value: "linux", CollectedAt: now}, "node:diskEncrypted": {Value: "true", CollectedAt: now}}}})
	poll.UntilTrue(t, 5*time.Second, "the update's report to be stored", func() bool {
		attrs, err := h.st.ListNodeAttrs(ctx, store.NodeID(b.id))
		return err == nil && len(attrs) == 2
	})
	n, err := h.st.GetNode(ctx, store.NodeID(b.id))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Endpoints) != 1 || n.Endpoints[0].String() != "192.0.2.2:41641" {
		t.Fatalf("a posture-only update changed b's endpoints to %v", n.Endpoints)
	}
	if en, _ := h.engine.Node(b.id); len(en.Wire.Endpoints) != 1 {
		t.Fatalf("the engine holds b with endpoints %v", en.Wire.Endpoints)
	}

	b.send(&wire.UpdateRequest{Posture: &wire.PostureReport{Attrs: map[string]wire.PostureValue{"custom:mdmCompliant": {Value: "true"}}}})
	poll.UntilTrue(t, 5*time.Second, "the refused report to be audited", func() bool {
		evs, err := h.st.ListAudit(ctx, store.AuditFilter{Action: "node.posture.report"})
		return err == nil && len(evs) > 0 && evs[0].Outcome == "denied"
	})
	b.send(&wire.UpdateRequest{Endpoints: addrPorts("198.51.100.2:5000")})
	a.waitPeer(b.id, func(p wire.Node, _ bool) bool {
		return len(p.Endpoints) == 1 && p.Endpoints[0].String() == "198.51.100.2:5000"
	})
}
