package store

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var flowT0 = time.Unix(1_700_000_000, 0).UTC()

func testFlow(i int, verdict string, dstNode NodeID, user string, at time.Time) Flow {
	return Flow{
		ID: fmt.Sprintf("1-0-%d", i), Reporter: dstNode, Start: at.Add(-time.Second), End: at,
		Src: netip.MustParseAddrPort("100.64.0.2:40000"), Dst: netip.AddrPortFrom(netip.MustParseAddr("100.64.0.1"), uint16(5000+i%3)),
		Proto: 6, SrcNode: 2, SrcUser: user, DstNode: dstNode, DstTags: []string{"tag:db"},
		PacketsIn: 3, BytesIn: 300, PacketsOut: 2, BytesOut: 200, Verdict: verdict, Rule: "acls[0]",
	}
}

func TestFlowsInsertDedupListPrune(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		var batch []Flow
		for i := range 250 { // more than one INSERT's chunk
			v := "accept"
			if i%5 == 0 {
				v = "deny"
			}
			user := "ann@example.com"
			if i%2 == 1 {
				user = "bob@example.com"
			}
			batch = append(batch, testFlow(i, v, NodeID(1+i%2), user, flowT0.Add(time.Duration(i)*time.Minute)))
		}
		var added int64
		must(t, s.Tx(ctx, func(q Queries) (err error) { added, err = q.InsertFlows(ctx, batch); return err }))
		if added != 250 {
			t.Fatalf("added %d, want 250", added)
		}
		// A resend, whole or partly, adds nothing.
		again, err := s.InsertFlows(ctx, batch[100:])
		must(t, err)
		if again != 0 {
			t.Fatalf("resend added %d", again)
		}
		for _, tc := range []struct {
			name string
			f    FlowFilter
			want int
		}{
			{"all", FlowFilter{}, 250},
			{"limit", FlowFilter{Limit: 7}, 7},
			{"since", FlowFilter{Since: flowT0.Add(200 * time.Minute)}, 50},
			{"until", FlowFilter{Until: flowT0.Add(9 * time.Minute)}, 10},
			{"denied", FlowFilter{Verdict: "deny"}, 50},
			{"user", FlowFilter{SrcUser: "bob@example.com"}, 125},
			{"dst node", FlowFilter{DstNodes: []NodeID{1}}, 125},
			{"dst nodes", FlowFilter{DstNodes: []NodeID{1, 2}}, 250},
			{"src node", FlowFilter{SrcNodes: []NodeID{3}}, 0},
			{"dst addr and port", FlowFilter{DstAddr: netip.MustParseAddr("100.64.0.1"), DstPort: 5001}, 83},
			{"all of them", FlowFilter{SrcUser: "ann@example.com", DstNodes: []NodeID{1}, Verdict: "deny", Since: flowT0.Add(100 * time.Minute)}, 15},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListFlows(ctx, tc.f)
				must(t, err)
				if len(got) != tc.want {
					t.Fatalf("%d flows, want %d", len(got), tc.want)
				}
				for i := 1; i < len(got); i++ {
					if got[i].End.After(got[i-1].End) {
						t.Fatalf("not newest first at %d", i)
					}
				}
			})
		}
		got, err := s.ListFlows(ctx, FlowFilter{Limit: 1})
		must(t, err)
		want := batch[249]
		want.Seq = got[0].Seq
		if fmt.Sprint(got[0]) != fmt.Sprint(want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got[0], want)
		}
		// Pruning in bounded batches.
		var pruned int64
		for range 100 {
			n, err := s.PruneFlows(ctx, flowT0.Add(100*time.Minute), 30)
			must(t, err)
			pruned += n
			if n < 30 {
				break
			}
		}
		if pruned != 100 {
			t.Fatalf("pruned %d, want 100", pruned)
		}
		left, err := s.ListFlows(ctx, FlowFilter{})
		must(t, err)
		if len(left) != 150 {
			t.Fatalf("%d flows left, want 150", len(left))
		}
	})
}

func TestAuditFilters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		for i, e := range []AuditEvent{
			{Actor: "user:ann@example.com", Action: "node.delete", Target: "node:1", Outcome: "ok"},
			{Actor: "user:bob@example.com", Action: "node.delete", Target: "node:2", Outcome: "denied"},
			{Actor: "user:ann@example.com", Action: "user.disable", Target: "user:2", Outcome: "ok"},
		} {
			e.Time = flowT0.Add(time.Duration(i) * time.Hour)
			must(t, s.AppendAudit(ctx, e))
		}
		for _, tc := range []struct {
			name string
			f    AuditFilter
			want int
		}{
			{"all", AuditFilter{}, 3},
			{"actor", AuditFilter{Actor: "user:ann@example.com"}, 2},
			{"action and actor", AuditFilter{Actor: "user:ann@example.com", Action: "node.delete"}, 1},
			{"target", AuditFilter{Target: "node:2"}, 1},
			{"outcome", AuditFilter{Outcome: "denied"}, 1},
			{"until", AuditFilter{Until: flowT0.Add(time.Hour)}, 2},
			{"since and until", AuditFilter{Since: flowT0.Add(time.Hour), Until: flowT0.Add(time.Hour)}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListAudit(ctx, tc.f)
				must(t, err)
				if len(got) != tc.want {
					t.Fatalf("%d events, want %d", len(got), tc.want)
				}
			})
		}
	})
}
