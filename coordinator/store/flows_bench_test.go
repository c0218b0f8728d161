package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkInsertFlows stores batches of 1,000 flow records, each in one
// transaction, as the coordinator's ingest does, and reports records/s;
// baseline inserts the same rows into a bare table of the same columns
// (no unique ID, no indexes) in the same run, on each backend.
func BenchmarkInsertFlows(b *testing.B) {
	const batch = 1000
	for _, bk := range backends {
		for _, mode := range []string{"baseline", "flows"} {
			b.Run(bk.name+"/"+mode, func(b *testing.B) {
				s, _ := bk.openTest(b)
				ctx := context.Background()
				if mode == "baseline" {
					_, err := s.(*sqlStore).wdb.ExecContext(ctx, `CREATE TABLE flows_bare AS SELECT * FROM flows WHERE 1 = 0`)
					if err != nil {
						b.Fatal(err)
					}
				}
				rows := make([]Flow, batch)
				n := 0
				b.ResetTimer()
				for b.Loop() {
					for i := range rows {
						rows[i] = testFlow(n, "accept", NodeID(n%200), "ann@example.com", flowT0.Add(time.Duration(n)*time.Millisecond))
						rows[i].ID = "b-" + strconv.Itoa(n)
						n++
					}
					err := s.Tx(ctx, func(q Queries) error {
						if mode == "baseline" {
							return insertBare(ctx, q.(queries), rows)
						}
						_, err := q.InsertFlows(ctx, rows)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// insertBare is InsertFlows into flows_bare, without the conflict clause.
func insertBare(ctx context.Context, q queries, rows []Flow) error {
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), insertChunk)]
		rows = rows[len(chunk):]
		var args []any
		for _, f := range chunk {
			args = append(args, f.ID, int64(f.Reporter), nanos(f.Start), nanos(f.End), f.Update,
				f.Src.Addr().String(), int(f.Src.Port()), f.Dst.Addr().String(), int(f.Dst.Port()), int(f.Proto),
				int64(f.SrcNode), f.SrcUser, jsonList(f.SrcTags), int64(f.DstNode), f.DstUser, jsonList(f.DstTags),
				int64(f.PacketsIn), int64(f.BytesIn), int64(f.PacketsOut), int64(f.BytesOut),
				f.Verdict, f.Reason, f.Rule, int64(f.Count))
		}
		query := buildInsertSQL(len(chunk))
		query = "INSERT INTO flows_bare" + query[len("INSERT INTO flows"):len(query)-len(" ON CONFLICT (node_id, flow_id) DO NOTHING")]
		if _, err := q.q.ExecContext(ctx, query, args...); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkFlowQuery runs filtered flow queries over a flows table of
// 10 M rows (WARREN_BENCH_FLOWS overrides the count), generated with
// one INSERT ... SELECT: 30 days of flows from 100 users to 200 nodes,
// one in 20 denied. It reports the time of one query (goal: < 1 s).
func BenchmarkFlowQuery(b *testing.B) {
	total := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("WARREN_BENCH_FLOWS")); err == nil && v > 0 {
		total = v
	}
	s, _ := openTest(b)
	ctx := context.Background()
	now := flowT0.Add(30 * 24 * time.Hour)
	start := time.Now()
	if err := fillFlows(ctx, s.(*sqlStore), total, flowT0, now); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d flows in %v", total, time.Since(start).Round(time.Millisecond))
	for _, tc := range []struct {
		name string
		f    FlowFilter
	}{
		{"since=1h", FlowFilter{Since: now.Add(-time.Hour), Limit: 100}},
		{"since=1h/user/denied", FlowFilter{Since: now.Add(-time.Hour), SrcUser: "user7@example.com", Verdict: "deny"}},
		{"since=24h/dst/port", FlowFilter{Since: now.Add(-24 * time.Hour), DstNodes: []NodeID{17}, DstPort: 5432}},
		{"since=30d/user/dst/denied", FlowFilter{SrcUser: "user7@example.com", DstNodes: []NodeID{17}, Verdict: "deny"}},
		{"since=30d/denied", FlowFilter{Verdict: "deny"}},
		{"since=30d/src", FlowFilter{SrcNodes: []NodeID{1007}, Limit: 100}},
	} {
		b.Run(fmt.Sprintf("rows=%d/%s", total, tc.name), func(b *testing.B) {
			var n int
			for b.Loop() {
				got, err := s.ListFlows(ctx, tc.f)
				if err != nil {
					b.Fatal(err)
				}
				n = len(got)
			}
			b.ReportMetric(float64(n), "rows/op")
		})
	}
}

// fillFlows inserts n synthetic flows spread evenly over [from, to) with
// one statement, dropping the indexes while it does and building them
// again after (as a bulk load would).
func fillFlows(ctx context.Context, s *sqlStore, n int, from, to time.Time) error {
	span := to.Sub(from).Nanoseconds() / int64(n)
	for _, q := range []string{
		`DROP INDEX flows_time`, `DROP INDEX flows_src_user`, `DROP INDEX flows_dst_node`,
		fmt.Sprintf(`WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < %d)
		INSERT INTO flows (`+flowCols+`)
		SELECT 'g-' || i, 1 + i %% 200, %d + i * %d - 1000000000, %d + i * %d, 0,
			'100.64.' || (i %% 100 / 250) || '.' || (1 + i %% 100), 40000 + i %% 20000, '100.65.0.' || (1 + i / 3 %% 200), CASE i %% 4 WHEN 0 THEN 5432 WHEN 1 THEN 22 WHEN 2 THEN 443 ELSE 8080 END, 6,
			1000 + i %% 100, 'user' || (i / 13 %% 100) || '@example.com', '[]', 1 + i / 3 %% 200, '', '["tag:db"]',
			10, 1000, 8, 800, CASE WHEN i / 7 %% 20 = 0 THEN 'deny' ELSE 'accept' END, CASE WHEN i / 7 %% 20 = 0 THEN 'no-rule' ELSE '' END, 'acls[0]', 0
		FROM seq`, n, from.UnixNano(), span, from.UnixNano(), span),
		`CREATE INDEX flows_time ON flows(end_time)`,
		`CREATE INDEX flows_src_user ON flows(src_user, end_time, dst_node, verdict)`,
		`CREATE INDEX flows_dst_node ON flows(dst_node, end_time, verdict, dst_port)`,
		`ANALYZE`,
	} {
		if _, err := s.wdb.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.60s: %w", q, err)
		}
	}
	return nil
}
