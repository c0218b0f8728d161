package flowlog

import (
	"context"
	"fmt"
	"testing"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// BenchmarkIngest stores batches of 1,000 flow records as the control
// session does (validation, source resolution through the netmap
// engine, one transaction with the audit log, dedup by ID) and reports
// records/s; baseline stores the same rows with store.InsertFlows alone
// in the same run. Goal: at least 50,000 records/s.
func BenchmarkIngest(b *testing.B) {
	const batch = 1000
	for _, mode := range []string{"baseline", "ingest"} {
		b.Run(mode, func(b *testing.B) {
			h := newHarness(b)
			ctx := context.Background()
			fb := &wire.FlowBatch{Records: make([]wire.FlowRecord, batch)}
			n := 0
			for b.Loop() {
				for i := range fb.Records {
					fb.Records[i] = rec(fmt.Sprintf("1-b-%d", n), "100.64.0.2:40000", "100.64.0.1:5432")
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
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
