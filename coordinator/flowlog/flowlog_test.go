package flowlog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

type harness struct {
	st     store.Store
	engine *netmap.Engine
	in     *Ingest
}

// newHarness runs a real store and netmap engine holding three nodes:
// db (1, tag:db, serving 10.1.0.0/16), ann's laptop (2) and bob's (3).
func newHarness(t testing.TB) *harness {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := netmap.New(netmap.Config{})
	for _, n := range []wire.Node{
		{ID: 1, Name: "db", Tags: []string{"tag:db"}, Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32"), netip.MustParsePrefix("fd7a:115c:a1e0::1/128")},
			Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}},
		{ID: 2, Name: "ann-laptop", User: "ann@example.com", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}},
		{ID: 3, Name: "bob-laptop", User: "bob@example.com", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.3/32")}},
	} {
		e.Upsert(netmap.Node{Wire: n, Authorized: true})
	}
	return &harness{st: st, engine: e, in: New(e, audit.New(st, nil), nil)}
}

var t0 = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)

func rec(id, src, dst string) wire.FlowRecord {
	return wire.FlowRecord{ID: id, Start: t0, End: t0.Add(time.Minute), Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst),
		Proto: 6, PacketsIn: 10, BytesIn: 1000, PacketsOut: 5, BytesOut: 500, Verdict: "accept", Rule: "acls[0]"}
}

func TestStore(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	good := rec("1-a-1", "100.64.0.2:40000", "100.64.0.1:5432")
	good.SrcNode = 3 // a lie: the address is ann's
	routed := rec("1-a-2", "100.64.0.3:40001", "10.1.2.3:22")
	v6 := rec("1-a-3", "[::ffff:100.64.0.3]:40002", "[fd7a:115c:a1e0::1]:443")
	deny := rec("1-a-4", "100.64.0.3:1", "100.64.0.1:23")
	deny.Verdict, deny.Reason, deny.Rule, deny.Count, deny.BytesIn, deny.PacketsIn = "deny", "no-rule", "", 40, 0, 0
	unknownSrc := rec("1-a-5", "192.0.2.7:9", "100.64.0.1:80")
	bad := func(id string, mod func(r *wire.FlowRecord)) wire.FlowRecord {
		r := rec(id, "100.64.0.2:40000", "100.64.0.1:5432")
		mod(&r)
		return r
	}
	refused := []wire.FlowRecord{
		rec("1-b-1", "100.64.0.2:40000", "100.64.0.3:22"), // another node's address
		rec("1-b-2", "100.64.0.2:40000", "10.2.0.1:22"),   // not a route it serves
		bad("", func(r *wire.FlowRecord) {}),
		bad("1-b-4", func(r *wire.FlowRecord) { r.Verdict = "maybe" }),
		bad("1-b-5", func(r *wire.FlowRecord) { r.End = r.Start.Add(-time.Second) }),
		bad("1-b-6", func(r *wire.FlowRecord) { r.BytesIn = 1 << 63 }),
		bad("1-b-7", func(r *wire.FlowRecord) { r.Dst = netip.AddrPort{} }),
	}
	batch := &wire.FlowBatch{Seq: 7, Records: append([]wire.FlowRecord{good, routed, v6, deny, unknownSrc}, refused...), Dropped: 12}
	res, err := h.in.Store(ctx, 1, "192.0.2.1:1234", batch)
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{Stored: 5, Refused: len(refused)}) {
		t.Fatalf("result %+v", res)
	}
	// A resend stores nothing new.
	res, err = h.in.Store(ctx, 1, "192.0.2.1:1234", batch)
	if err != nil || res.Stored != 0 || res.Dupes != 5 {
		t.Fatalf("resend: %+v %v", res, err)
	}
	// Another node's records with the same IDs are its own (and refused
	// here: node 2 holds none of these destinations).
	if res, err := h.in.Store(ctx, 2, "", &wire.FlowBatch{Seq: 1, Records: []wire.FlowRecord{rec("1-a-1", "100.64.0.3:1", "100.64.0.2:22")}}); err != nil || res.Stored != 1 {
		t.Fatalf("node 2's record with node 1's ID: %+v %v", res, err)
	}
	flows, err := h.st.ListFlows(ctx, store.FlowFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]store.Flow{}
	for _, f := range flows {
		if f.Reporter == 1 {
			byID[f.ID] = f
		}
	}
	for _, tc := range []struct {
		id       string
		srcNode  store.NodeID
		srcUser  string
		dst      string
		verdict  string
		bytesIn  uint64
		count    uint64
		dstTagDB bool
	}{
		{"1-a-1", 2, "ann@example.com", "100.64.0.1:5432", "accept", 1000, 0, true},
		{"1-a-2", 3, "bob@example.com", "10.1.2.3:22", "accept", 1000, 0, true},
		{"1-a-3", 3, "bob@example.com", "[fd7a:115c:a1e0::1]:443", "accept", 1000, 0, true},
		{"1-a-4", 3, "bob@example.com", "100.64.0.1:23", "deny", 0, 40, true},
		{"1-a-5", 0, "", "100.64.0.1:80", "accept", 1000, 0, true},
	} {
		f, ok := byID[tc.id]
		if !ok {
			t.Fatalf("%s not stored", tc.id)
		}
		if f.SrcNode != tc.srcNode || f.SrcUser != tc.srcUser || f.Dst.String() != tc.dst || f.Verdict != tc.verdict ||
			f.BytesIn != tc.bytesIn || f.Count != tc.count || f.DstNode != 1 || (len(f.DstTags) == 1 && f.DstTags[0] == "tag:db") != tc.dstTagDB {
			t.Errorf("%s stored as %+v", tc.id, f)
		}
	}
	if len(byID) != 5 {
		t.Errorf("%d of node 1's flows stored, want 5", len(byID))
	}
	events, err := h.st.ListAudit(ctx, store.AuditFilter{Actor: "node:1"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action+"/"+e.Outcome)
	}
	// Two batches (the first and its resend) each refused and reported
	// drops.
	if fmt.Sprint(actions) != "[flows.dropped/error flows.refused/denied flows.dropped/error flows.refused/denied]" {
		t.Errorf("audit events: %v", actions)
	}
}

func TestStoreRefusesTooMany(t *testing.T) {
	h := newHarness(t)
	recs := make([]wire.FlowRecord, MaxBatch+1)
	if _, err := h.in.Store(context.Background(), 1, "", &wire.FlowBatch{Records: recs}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("got %v, want ErrTooMany", err)
	}
	if _, err := h.in.Store(context.Background(), 99, "", &wire.FlowBatch{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown node: got %v", err)
	}
}

// FuzzFlowBatch decodes a FlowBatch payload as the control session does
// and stores it: whatever the bytes, no panic, and every stored row is a
// valid record of the reporting node.
func FuzzFlowBatch(f *testing.F) {
	h := newHarness(f)
	// Conditional rules, so that denies are refined (WhyDenied) too.
	p, err := policy.Parse([]byte(`{
		"tagOwners": {"tag:db": []},
		"postures": {"posture:enc": ["node:diskEncrypted == true"]},
		"acls": [
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:5432", "10.1.0.0/16:22"], "srcPosture": ["posture:enc"]},
			{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:db:1-100"], "mfa": "1h", "when": {"days": ["Sat"], "hours": "09:00-17:00"}},
			{"action": "accept", "src": ["*"], "proto": "udp", "dst": ["10.1.0.0/24:*"], "when": {"days": ["Mon"]}},
		],
	}`))
	if err != nil {
		f.Fatal(err)
	}
	h.engine.SetPolicy(p)
	seed, _ := wire.Encode(&wire.FlowBatch{Seq: 1, Records: []wire.FlowRecord{rec("1-f-1", "100.64.0.2:1", "100.64.0.1:2")}, Dropped: 3})
	f.Add(seed[wire.HeaderSize:])
	f.Add([]byte(`{"seq":2,"records":[{"id":"x","start":"2024-01-01T00:00:00Z","end":"2024-01-01T00:00:01Z","src":"1.2.3.4:5","dst":"10.1.0.9:1","verdict":"deny","count":18446744073709551615}]}`))
	f.Add([]byte(`{"records":[{}]}`))
	f.Add([]byte(`{"seq":3,"records":[{"id":"y","start":"2024-01-06T10:00:00Z","end":"2024-01-06T10:00:01Z","src":"100.64.0.3:5","dst":"100.64.0.1:22","proto":6,"verdict":"deny","reason":"no-rule","count":2}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := wire.Decode(wire.TypeFlowBatch, payload)
		if err != nil {
			return
		}
		b := m.(*wire.FlowBatch)
		if _, err := h.in.Store(context.Background(), 1, "", b); err != nil && !errors.Is(err, ErrTooMany) {
			t.Fatalf("store: %v", err)
		}
		flows, err := h.st.ListFlows(context.Background(), store.FlowFilter{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		self, _ := h.engine.Node(1)
		for _, fl := range flows {
			r := wire.FlowRecord{ID: fl.ID, Start: fl.Start, End: fl.End, Src: fl.Src, Dst: fl.Dst, Verdict: fl.Verdict}
			if err := validate(r, self.Wire); err != nil && !errors.Is(err, errInvalid) {
				t.Fatalf("stored %+v: %v", fl, err)
			}
		}
	})
}
