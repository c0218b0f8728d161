package store

import (
	"context"
	"fmt"
	"time"
)

// Node attributes (device posture), see NodeAttr.

const attrCols = `node_id, name, value, source, collected_at, reported_at, expires_at`

func scanAttr(row interface{ Scan(...any) error }) (NodeAttr, error) {
	var a NodeAttr
	var collected, reported, expires int64
	if err := row.Scan(&a.Node, &a.Name, &a.Value, &a.Source, &collected, &reported, &expires); err != nil {
		return a, wrapErr(err)
	}
	a.CollectedAt, a.ReportedAt, a.ExpiresAt = fromNanos(collected), fromNanos(reported), fromNanos(expires)
	return a, nil
}

func (q queries) ListNodeAttrs(ctx context.Context, id NodeID) ([]NodeAttr, error) {
	return list(ctx, q, "node attributes", `SELECT `+attrCols+` FROM node_attrs WHERE node_id = ? ORDER BY name`, scanAttr, id)
}

func (q queries) ListAllNodeAttrs(ctx context.Context) ([]NodeAttr, error) {
	return list(ctx, q, "node attributes", `SELECT `+attrCols+` FROM node_attrs ORDER BY node_id, name`, scanAttr)
}

func (q queries) PutNodeAttr(ctx context.Context, a NodeAttr) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO node_attrs (`+attrCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (node_id, name) DO UPDATE SET value = excluded.value, source = excluded.source,
		collected_at = excluded.collected_at, reported_at = excluded.reported_at, expires_at = excluded.expires_at`,
		a.Node, a.Name, a.Value, a.Source, nanos(a.CollectedAt), nanos(a.ReportedAt), nanos(a.ExpiresAt))
	if err != nil {
		return fmt.Errorf("set attribute %s of node %d: %w", a.Name, a.Node, wrapErr(err))
	}
	return q.appendChange(ctx, ChangeNode, int64(a.Node))
}

func (q queries) DeleteNodeAttr(ctx context.Context, id NodeID, name string) error {
	err := q.execOne(ctx, fmt.Sprintf("delete attribute %s of node %d", name, id),
		`DELETE FROM node_attrs WHERE node_id = ? AND name = ?`, id, name)
	if err != nil {
		return err
	}
	return q.appendChange(ctx, ChangeNode, int64(id))
}

func (q queries) TouchNodeAttrs(ctx context.Context, id NodeID, prefix string, at time.Time) (int64, error) {
	// substr, not LIKE or GLOB: the prefix is matched literally.
	res, err := q.q.ExecContext(ctx, `UPDATE node_attrs SET reported_at = ? WHERE node_id = ? AND substr(name, 1, ?) = ?`,
		nanos(at), id, len(prefix), prefix)
	if err != nil {
		return 0, fmt.Errorf("refresh attributes of node %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("refresh attributes of node %d: %w", id, err)
	}
	if n > 0 {
		if err := q.appendChange(ctx, ChangeNode, int64(id)); err != nil {
			return 0, err
		}
	}
	return n, nil
}
