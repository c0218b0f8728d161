package flowlog

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestStoreRefinesDenyReasons stores a real batch of "no-rule" denies
// through the real store under a policy with a posture rule, an mfa rule
// and a time-windowed rule, and reads back the reasons and rules the
// policy gives them.
func TestStoreRefinesDenyReasons(t *testing.T) {
	at := t0 // an hour ago
	// A window open every day but the record's (UTC): closed at the
	// record's time, whatever the day the test runs.
	var days []string
	for d := time.Sunday; d <= time.Saturday; d++ {
		if d != at.Weekday() {
			days = append(days, fmt.Sprintf("%q", d.String()[:3]))
		}
	}
	src := `{
		"tagOwners": {"tag:db": []},
		"postures": {"posture:managed": ["node:diskEncrypted == true"]},
		"acls": [
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:5432"], "srcPosture": ["posture:managed"]},
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:22"], "mfa": "1h"},
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:8080", "10.1.0.0/16:8080"], "when": {"days": [` + strings.Join(days, ", ") + `]}},
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:80"]},
		],
	}`
	p, err := policy.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := netmap.New(netmap.Config{Policy: p})
	e.Upsert(netmap.Node{Authorized: true, Wire: wire.Node{ID: 1, Name: "db", Tags: []string{"tag:db"},
		Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}, Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}})
	e.Upsert(netmap.Node{Authorized: true, MFAAt: at.Add(-2 * time.Hour), Attrs: map[string]string{"node:diskEncrypted": "false"},
		Wire: wire.Node{ID: 2, Name: "ann-laptop", User: "ann@example.com", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}}})
	e.Upsert(netmap.Node{Authorized: true,
		Wire: wire.Node{ID: 3, Name: "bob-laptop", User: "bob@example.com", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.3/32")}}})
	in := New(e, audit.New(st, nil), nil)

	deny := func(id, from, to string) wire.FlowRecord {
		return wire.FlowRecord{ID: id, Start: at, End: at, Src: netip.MustParseAddrPort(from), Dst: netip.MustParseAddrPort(to),
			Proto: 6, PacketsIn: 3, BytesIn: 180, Count: 3, Verdict: "deny", Reason: ReasonNoRule}
	}
	malformed := deny("d-8", "100.64.0.2:1", "100.64.0.1:5432")
	malformed.Reason = "malformed"
	accept := deny("d-9", "100.64.0.2:1", "100.64.0.1:80")
	accept.Verdict, accept.Reason, accept.Rule, accept.Count = "accept", "", "acls[3]", 0
	tests := []struct {
		rec          wire.FlowRecord
		reason, rule string
	}{
		{deny("d-1", "100.64.0.2:40000", "100.64.0.1:5432"), policy.DenyPosture, "acls[0]"},
		{deny("d-2", "100.64.0.2:40001", "100.64.0.1:22"), policy.DenyMFA, "acls[1]"},
		{deny("d-3", "100.64.0.2:40002", "100.64.0.1:8080"), policy.DenyTimeWindow, "acls[2]"},
		{deny("d-4", "100.64.0.2:40003", "10.1.2.3:8080"), policy.DenyTimeWindow, "acls[2]"}, // behind the route
		{deny("d-5", "100.64.0.2:40004", "100.64.0.1:23"), ReasonNoRule, ""},                 // no rule at all
		{deny("d-6", "100.64.0.3:40000", "100.64.0.1:5432"), ReasonNoRule, ""},               // bob: no rule selects him
		{deny("d-7", "192.0.2.7:40000", "100.64.0.1:5432"), ReasonNoRule, ""},                // not a mesh node
		{malformed, "malformed", ""},
		{accept, "", "acls[3]"},
	}
	b := &wire.FlowBatch{Seq: 1}
	for _, tc := range tests {
		b.Records = append(b.Records, tc.rec)
	}
	res, err := in.Store(context.Background(), 1, "", b)
	if err != nil || res.Stored != len(tests) {
		t.Fatalf("Store: %+v %v", res, err)
	}
	flows, err := st.ListFlows(context.Background(), store.FlowFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]store.Flow{}
	for _, f := range flows {
		byID[f.ID] = f
	}
	for _, tc := range tests {
		f := byID[tc.rec.ID]
		if f.Reason != tc.reason || f.Rule != tc.rule {
			t.Errorf("%s (%s -> %s): stored reason %q rule %q, want %q %q", tc.rec.ID, tc.rec.Src, tc.rec.Dst, f.Reason, f.Rule, tc.reason, tc.rule)
		}
	}
	if got := e.RuleWindow("acls[2]"); !strings.Contains(got, "UTC") {
		t.Errorf("RuleWindow(acls[2]) = %q", got)
	}
}
