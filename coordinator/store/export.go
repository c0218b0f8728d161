package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Reads and cursors for the exporter (package export), which sends the
// audit trail to SIEMs: each sink reads the rows after the last one it
// delivered, in ID order, and records how far it got.

// maxAfterLimit bounds one ListAuditAfter batch.
const maxAfterLimit = 10000

func (q queries) ListAuditAfter(ctx context.Context, after int64, n int) ([]AuditEvent, error) {
	if n <= 0 || n > maxAfterLimit {
		n = maxAfterLimit
	}
	return list(ctx, q, "audit events", `SELECT id, time, actor, action, target, remote, outcome, detail FROM audit_events
		WHERE id > ? ORDER BY id LIMIT ?`,
		func(row interface{ Scan(...any) error }) (AuditEvent, error) {
			var e AuditEvent
			var t int64
			err := row.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.Target, &e.Remote, &e.Outcome, &e.Detail)
			e.Time = fromNanos(t)
			return e, err
		}, after, n)
}

func (q queries) CountAuditAfter(ctx context.Context, after int64) (int64, error) {
	var n int64
	if err := q.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_events WHERE id > ?`, after).Scan(&n); err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

func (q queries) SinkCursor(ctx context.Context, sink, source string) (int64, error) {
	var c int64
	err := q.q.QueryRowContext(ctx, `SELECT cursor FROM sink_cursors WHERE sink = ? AND source = ?`, sink, source).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor of sink %s: %w", sink, err)
	}
	return c, nil
}

func (q queries) SetSinkCursor(ctx context.Context, sink, source string, cursor int64) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO sink_cursors (sink, source, cursor) VALUES (?, ?, ?)
		ON CONFLICT (sink, source) DO UPDATE SET cursor = excluded.cursor`, sink, source, cursor)
	if err != nil {
		return fmt.Errorf("record cursor of sink %s: %w", sink, err)
	}
	return nil
}
