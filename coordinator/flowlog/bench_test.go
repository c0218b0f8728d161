package flowlog

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// BenchmarkIngest stores batches of 1,000 flow records as the control
// session does (validation, source resolution through the netmap
// engine, one transaction with the audit log, dedup by ID) and reports
// records/s; baseline stores the same rows with store.InsertFlows alone
// in the same run. Goal: at least 50,000 records/s. denies stores
// "no-rule" denies from ann's laptop that the policy (50 rules selecting
// her, each with a condition she fails) refines to "mfa".
func BenchmarkIngest(b *testing.B) {
	const batch = 1000
	var pol strings.Builder
	pol.WriteString(`{"tagOwners": {"tag:db": []}, "postures": {"posture:enc": ["node:diskEncrypted == true"]}, "acls": [
		{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:5432"], "mfa": "1h"},`)
	for i := range 49 {
		fmt.Fprintf(&pol, `{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:%d"], "srcPosture": ["posture:enc"]},`, 6000+i)
	}
	pol.WriteString(`]}`)
	p, err := policy.Parse([]byte(pol.String()))
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"baseline", "ingest", "denies"} {
		b.Run(mode, func(b *testing.B) {
			h := newHarness(b)
			h.engine.SetPolicy(p)
			ctx := context.Background()
			fb := &wire.FlowBatch{Records: make([]wire.FlowRecord, batch)}
			n := 0
			for b.Loop() {
				for i := range fb.Records {
					fb.Records[i] = rec(fmt.Sprintf("1-b-%d", n), "100.64.0.2:40000", "100.64.0.1:5432")
					if mode == "denies" {
						r := &fb.Records[i]
						r.Verdict, r.Reason, r.Rule, r.Count = "deny", ReasonNoRule, "", 3
					}
					n++
				}
				fb.Seq++
				if mode == "baseline" {
					rows := make([]store.Flow, len(fb.Records))
					for i, r := range fb.Records {
						rows[i] = store.Flow{ID: r.ID, Reporter: 1, Start: r.Start, End: r.End, Src: r.Src, Dst: r.Dst, Proto: r.Proto,
							SrcNode: 2, SrcUser: "ann@example.com", DstNode: 1, DstTags: []string{"tag:db"},
							PacketsIn: r.PacketsIn, BytesIn: r.BytesIn, PacketsOut: r.PacketsOut, BytesOut: r.BytesOut, Verdict: r.Verdict, Rule: r.Rule}
					}
					if err := h.st.Tx(ctx, func(q store.Queries) error { _, err := q.InsertFlows(ctx, rows); return err }); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if res, err := h.in.Store(ctx, 1, "", fb); err != nil || res.Stored != batch {
					b.Fatalf("%+v %v", res, err)
				}
				if mode == "denies" && n == batch {
					if fl, err := h.st.ListFlows(ctx, store.FlowFilter{Limit: 1}); err != nil || len(fl) != 1 || fl[0].Reason != "mfa" {
						b.Fatalf("stored %+v %v, want reason mfa", fl, err)
					}
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
