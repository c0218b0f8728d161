package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Flow is one flow record a node reported (see wire.FlowRecord), with
// what the coordinator resolved its addresses to when it stored it.
type Flow struct {
	Seq int64 // the row's number in the store (0 before it is stored)
	// ID is the record's stable ID: a record stored twice is kept once.
	ID string
	// Reporter is the node that enforced the flow and reported it.
	Reporter NodeID
	Start    time.Time
	End      time.Time
	Update   bool
	Src, Dst netip.AddrPort
	Proto    uint8
	// SrcNode and DstNode are the nodes that held the addresses (0:
	// none); SrcUser/DstUser their owners' logins (empty for tagged
	// nodes) and SrcTags/DstTags their tags.
	SrcNode, DstNode NodeID
	SrcUser, DstUser string
	SrcTags, DstTags []string
	PacketsIn        uint64
	BytesIn          uint64
	PacketsOut       uint64
	BytesOut         uint64
	Verdict          string // "accept" or "deny"
	Reason           string
	Rule             string
	Count            uint64
}

// FlowFilter selects flows; zero fields match everything. Since and Until
// bound the flow's last packet (End).
type FlowFilter struct {
	Since, Until time.Time
	SrcUser      string
	SrcNodes     []NodeID // any of them
	DstNodes     []NodeID // any of them
	DstAddr      netip.Addr
	DstPort      uint16
	Verdict      string
	Limit        int // 0: a default of 1000
}

// Flow query limits.
const (
	defaultFlowLimit = 1000
	maxFlowLimit     = 100000
	// insertChunk is how many rows one INSERT statement carries.
	insertChunk = 100
)

const flowCols = `flow_id, node_id, start_time, end_time, is_update, src, src_port, dst, dst_port, proto,
	src_node, src_user, src_tags, dst_node, dst_user, dst_tags, packets_in, bytes_in, packets_out, bytes_out,
	verdict, reason, rule, count`

const flowNCols = 24

// InsertFlows stores flows, skipping those whose ID its reporter already
// stored,
// and returns how many it added. Call it in a transaction (Store.Tx) to
// store a batch whole or not at all.
func (q queries) InsertFlows(ctx context.Context, flows []Flow) (int64, error) {
	var added int64
	args := make([]any, 0, insertChunk*flowNCols)
	for len(flows) > 0 {
		chunk := flows[:min(len(flows), insertChunk)]
		flows = flows[len(chunk):]
		args = args[:0]
		for _, f := range chunk {
			args = append(args, f.ID, int64(f.Reporter), nanos(f.Start), nanos(f.End), f.Update,
				f.Src.Addr().String(), int(f.Src.Port()), f.Dst.Addr().String(), int(f.Dst.Port()), int(f.Proto),
				int64(f.SrcNode), f.SrcUser, jsonList(f.SrcTags), int64(f.DstNode), f.DstUser, jsonList(f.DstTags),
				int64(f.PacketsIn), int64(f.BytesIn), int64(f.PacketsOut), int64(f.BytesOut),
				f.Verdict, f.Reason, f.Rule, int64(f.Count))
		}
		res, err := q.q.ExecContext(ctx, insertFlowsSQL(len(chunk)), args...)
		if err != nil {
			return added, fmt.Errorf("insert flows: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return added, fmt.Errorf("insert flows: %w", err)
		}
		added += n
	}
	return added, nil
}

var fullInsertSQL = buildInsertSQL(insertChunk)

func insertFlowsSQL(n int) string {
	if n == insertChunk {
		return fullInsertSQL
	}
	return buildInsertSQL(n)
}

func buildInsertSQL(n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", flowNCols), ",") + ")"
	return `INSERT INTO flows (` + flowCols + `) VALUES ` + strings.TrimSuffix(strings.Repeat(row+",", n), ",") + ` ON CONFLICT (node_id, flow_id) DO NOTHING`
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

// ListFlows returns the flows f selects, newest (by End) first.
func (q queries) ListFlows(ctx context.Context, f FlowFilter) ([]Flow, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if !f.Since.IsZero() {
		add("end_time >= ?", nanos(f.Since))
	}
	if !f.Until.IsZero() {
		add("end_time <= ?", nanos(f.Until))
	}
	if f.SrcUser != "" {
		add("src_user = ?", f.SrcUser)
	}
	if len(f.SrcNodes) > 0 {
		where = append(where, "src_node IN ("+placeholders(len(f.SrcNodes))+")")
		for _, id := range f.SrcNodes {
			args = append(args, int64(id))
		}
	}
	if len(f.DstNodes) > 0 {
		where = append(where, "dst_node IN ("+placeholders(len(f.DstNodes))+")")
		for _, id := range f.DstNodes {
			args = append(args, int64(id))
		}
	}
	if f.DstAddr.IsValid() {
		add("dst = ?", f.DstAddr.Unmap().String())
	}
	if f.DstPort != 0 {
		add("dst_port = ?", int(f.DstPort))
	}
	if f.Verdict != "" {
		add("verdict = ?", f.Verdict)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultFlowLimit
	}
	query := `SELECT id, ` + flowCols + ` FROM flows`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY end_time DESC, id DESC LIMIT ?`
	args = append(args, min(limit, maxFlowLimit))
	return list(ctx, q, "flows", query, scanFlow, args...)
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func scanFlow(row interface{ Scan(...any) error }) (Flow, error) {
	var f Flow
	var start, end, reporter, srcNode, dstNode, pin, bin, pout, bout, count int64
	var srcPort, dstPort, proto int
	var src, dst, srcTags, dstTags string
	err := row.Scan(&f.Seq, &f.ID, &reporter, &start, &end, &f.Update, &src, &srcPort, &dst, &dstPort, &proto,
		&srcNode, &f.SrcUser, &srcTags, &dstNode, &f.DstUser, &dstTags, &pin, &bin, &pout, &bout,
		&f.Verdict, &f.Reason, &f.Rule, &count)
	if err != nil {
		return f, err
	}
	f.Reporter, f.SrcNode, f.DstNode = NodeID(reporter), NodeID(srcNode), NodeID(dstNode)
	f.Start, f.End = fromNanos(start), fromNanos(end)
	sa, _ := netip.ParseAddr(src)
	da, _ := netip.ParseAddr(dst)
	f.Src, f.Dst = netip.AddrPortFrom(sa, uint16(srcPort)), netip.AddrPortFrom(da, uint16(dstPort))
	f.Proto = uint8(proto)
	f.PacketsIn, f.BytesIn, f.PacketsOut, f.BytesOut, f.Count = uint64(pin), uint64(bin), uint64(pout), uint64(bout), uint64(count)
	_ = json.Unmarshal([]byte(srcTags), &f.SrcTags)
	_ = json.Unmarshal([]byte(dstTags), &f.DstTags)
	return f, nil
}

// PruneFlows deletes up to limit flows whose last packet is older than
// before (0: 10000), and returns how many it deleted; callers repeat it
// while it deletes limit, so no one statement holds the writer for long.
func (q queries) PruneFlows(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		limit = 10000
	}
	res, err := q.q.ExecContext(ctx, `DELETE FROM flows WHERE id IN (SELECT id FROM flows WHERE end_time < ? ORDER BY end_time LIMIT ?)`, nanos(before), limit)
	if err != nil {
		return 0, fmt.Errorf("prune flows: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune flows: %w", err)
	}
	return n, nil
}

// Reads for the log sinks (package export) and the alerts (package
// alert): flows in row order after a cursor, their count, and denied
// packets per source address since a time.

func (q queries) ListFlowsAfter(ctx context.Context, after int64, n int) ([]Flow, error) {
	if n <= 0 || n > maxAfterLimit {
		n = maxAfterLimit
	}
	return list(ctx, q, "flows", `SELECT id, `+flowCols+` FROM flows WHERE id > ? ORDER BY id LIMIT ?`, scanFlow, after, n)
}

func (q queries) CountFlowsAfter(ctx context.Context, after int64) (int64, error) {
	var n int64
	if err := q.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM flows WHERE id > ?`, after).Scan(&n); err != nil {
		return 0, fmt.Errorf("count flows: %w", err)
	}
	return n, nil
}

// DeniedBySource sums the denied packets (an aggregate's count, else 1)
// per source address whose flows ended at or after since.
func (q queries) DeniedBySource(ctx context.Context, since time.Time) (map[string]int64, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT src, SUM(CASE WHEN count > 0 THEN count ELSE 1 END) FROM flows
		WHERE end_time >= ? AND verdict = 'deny' GROUP BY src`, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("count denied flows: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var src string
		var n int64
		if err := rows.Scan(&src, &n); err != nil {
			return nil, fmt.Errorf("count denied flows: %w", err)
		}
		out[src] = n
	}
	return out, rows.Err()
}

// HourBaseline counts the accepted flows to node dst that ended in
// [from, to), in all and in the hour of the day hour (0-23, UTC): how
// usual an access at that hour is for that destination.
func (q queries) HourBaseline(ctx context.Context, dst NodeID, hour int, from, to time.Time) (total, atHour int64, err error) {
	const hourNanos = int64(time.Hour)
	err = q.q.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN (end_time / ?) % 24 = ? THEN 1 ELSE 0 END), 0)
		FROM flows WHERE dst_node = ? AND end_time >= ? AND end_time < ? AND verdict = 'accept'`,
		hourNanos, hour, int64(dst), from.UnixNano(), to.UnixNano()).Scan(&total, &atHour)
	if err != nil {
		return 0, 0, fmt.Errorf("hour baseline: %w", err)
	}
	return total, atHour, nil
}
