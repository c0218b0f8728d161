package testmesh

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/alert"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/flowspool"
)

// TestDenyReasonsRefined: "no-rule" denies a node reports over its
// control channel are stored with the condition that kept a rule from
// admitting them (posture, MFA, time window) and that rule's id, and the
// time-window one raises alert.time-window naming the rule and its
// window. The laptop reports no posture and has no MFA login; the
// window is closed from yesterday to tomorrow (UTC), whatever the day.
func TestDenyReasonsRefined(t *testing.T) {
	var days []string
	today := time.Now().UTC().Weekday()
	for d := time.Sunday; d <= time.Saturday; d++ {
		if d != today && d != (today+1)%7 && d != (today+6)%7 {
			days = append(days, fmt.Sprintf("%q", d.String()[:3]))
		}
	}
	m := New(t, Options{Policy: `{
		"tagOwners": {"tag:db": ["ann@example.com"]},
		"postures": {"posture:encrypted": ["node:diskEncrypted == true"]},
		"acls": [
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:5432"], "srcPosture": ["posture:encrypted"]},
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:22"], "mfa": "12h"},
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:8080"], "when": {"days": [` + strings.Join(days, ", ") + `]}},
		],
	}`, Coordinator: coordinator.Config{Alerts: &alert.Config{Poll: 50 * time.Millisecond}}})
	ctx := context.Background()
	ann := m.User("ann@example.com")
	spool, err := flowspool.Open(t.TempDir(), 0, nil)
	must(t, err)
	t.Cleanup(func() { spool.Close() })
	db := m.AddNode("db", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:db"}}),
		Tags: []string{"tag:db"}, Flows: spool})
	laptop := m.AddNode("ann-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})})
	for _, n := range []*Node{db, laptop} {
		must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm != nil }))
	}
	dbSelf, lapSelf := db.Netmap().Self, laptop.Netmap().Self
	at := time.Now().Add(-time.Minute).UTC()
	var recs []wire.FlowRecord
	for i, port := range []uint16{5432, 22, 8080, 23} {
		recs = append(recs, wire.FlowRecord{ID: fmt.Sprintf("%d-1-%d", dbSelf.ID, i), Start: at, End: at,
			Src: netip.AddrPortFrom(lapSelf.Addresses[0].Addr(), 40000), Dst: netip.AddrPortFrom(dbSelf.Addresses[0].Addr(), port),
			Proto: 6, PacketsIn: 3, BytesIn: 180, Count: 3, Verdict: "deny", Reason: "no-rule"})
	}
	spool.Append(recs)
	want := map[uint16]string{5432: "posture acls[0]", 22: "mfa acls[1]", 8080: "time-window acls[2]", 23: "no-rule "}
	poll.Until(t, wait, "the refined denies stored", func() error {
		flows, err := m.Coord.Store().ListFlows(ctx, store.FlowFilter{})
		if err != nil {
			return err
		}
		got := map[uint16]string{}
		for _, f := range flows {
			got[f.Dst.Port()] = f.Reason + " " + f.Rule
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("stored %v, want %v", got, want)
		}
		return nil
	})
	poll.Until(t, wait, "the time-window alert", func() error {
		evs, err := m.Coord.Store().ListAudit(ctx, store.AuditFilter{Action: "alert.time-window"})
		if err != nil {
			return err
		}
		if len(evs) == 1 && evs[0].Target == fmt.Sprintf("node:%d", lapSelf.ID) &&
			strings.Contains(evs[0].Detail, "acls[2]") && strings.Contains(evs[0].Detail, "00:00-24:00 UTC") {
			return nil
		}
		return fmt.Errorf("time-window alerts: %+v", evs)
	})
}
