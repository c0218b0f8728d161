package store

import (
	"context"
	"fmt"
)

// High-water marks: IDs and mesh addresses are never handed out twice, even
// after the highest is deleted, so an ID in the audit log or an address in
// a peer's old netmap names one entity forever. The high_water table
// (migration 6) holds the highest value ever given out for each name.

// inUse is, for each high-water name, the query for the highest value in
// use now (a floor, should rows have been inserted with explicit values).
var inUse = map[string]string{
	// A deleted user's ID lives on as the UserID of the tagged nodes they
	// registered: those must never pass to another user.
	"users": `SELECT MAX(m) FROM (SELECT COALESCE(MAX(id), 0) AS m FROM users
		UNION ALL SELECT COALESCE(MAX(user_id), 0) FROM nodes) AS hw`,
	"nodes":      `SELECT COALESCE(MAX(id), 0) FROM nodes`,
	"nodes.ipv4": `SELECT COALESCE(MAX(ipv4_num), 0) FROM nodes`,
	"auth_keys":  `SELECT COALESCE(MAX(id), 0) FROM auth_keys`,
	"api_keys":   `SELECT COALESCE(MAX(id), 0) FROM api_keys`,
	// The log sinks' cursors are audit IDs (see ListAuditAfter).
	"audit_events": `SELECT COALESCE(MAX(id), 0) FROM audit_events`,
	// "ar-12" in the audit log names one access request forever.
	"access_requests": `SELECT COALESCE(MAX(id), 0) FROM access_requests`,
}

// nextID returns the next ID for name (a key of inUse), one above every
// value ever handed out, and records it as handed out. Run it in the
// transaction that inserts the row; if that rolls back, so does this.
func (q queries) nextID(ctx context.Context, name string) (int64, error) {
	var id int64
	err := q.q.QueryRowContext(ctx, `UPDATE high_water SET value = `+q.d.greatest()+`(value, (`+inUse[name]+`)) + 1
		WHERE name = ? RETURNING value`, name).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("next %s ID: %w", name, wrapErr(err))
	}
	return id, nil
}

// highWater returns the highest value ever handed out for name.
func (q queries) highWater(ctx context.Context, name string) (int64, error) {
	var v int64
	err := q.q.QueryRowContext(ctx, `SELECT `+q.d.greatest()+`(value, (`+inUse[name]+`)) FROM high_water WHERE name = ?`, name).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("highest %s: %w", name, wrapErr(err))
	}
	return v, nil
}

// raiseHighWater records v as handed out for name.
func (q queries) raiseHighWater(ctx context.Context, name string, v int64) error {
	if _, err := q.q.ExecContext(ctx, `UPDATE high_water SET value = `+q.d.greatest()+`(value, ?) WHERE name = ?`, v, name); err != nil {
		return fmt.Errorf("record highest %s: %w", name, wrapErr(err))
	}
	return nil
}
