package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Just-in-time access requests (package coordinator/access): one row per
// request, which becomes its grant once approved. A row keeps the
// requester's login and the node's name as they were at filing, so the
// history reads the same after a user or node is renamed or deleted.

// AccessRequest is one stored just-in-time access request.
type AccessRequest struct {
	ID       int64 // shown as "ar-<ID>"; never reused
	NodeID   NodeID
	NodeName string // at filing
	UserID   UserID
	Login    string // the requester's login at filing
	Dst      string // as requested ("tag:prod-db:5432")
	Rule     string // the access rule that allowed it ("access[0]")
	Reason   string
	// Requested is the duration asked for; Duration the one granted
	// (equal to Requested until an approver shortens it).
	Requested, Duration time.Duration
	State               string // wire.Access* states
	BreakGlass          bool
	Approver            string // who approved, denied or ended it ("user:bob@example.com")
	Note                string // a denial's or revocation's reason
	Created, Decided    time.Time
	Expires, Ended      time.Time
}

// AccessFilter selects access requests; zero fields match everything.
type AccessFilter struct {
	States []string // any of these states
	User   UserID
	Login  string // the requester's login at filing
	Node   NodeID
	Since  time.Time // created at or after
	// ExpiresBy selects grants whose expiry is at or before it.
	ExpiresBy time.Time
	Limit     int // 0: a default of 1000
}

// Limits of ListAccessRequests.
const (
	defaultAccessLimit = 1000
	maxAccessLimit     = 10000
)

const accessCols = `id, node_id, node_name, user_id, login, dst, rule, reason, requested_ns, duration_ns, state,
	break_glass, approver, note, created_at, decided_at, expires_at, ended_at`

func scanAccess(row interface{ Scan(...any) error }) (AccessRequest, error) {
	var r AccessRequest
	var requested, duration, created, decided, expires, ended int64
	var bg int
	err := row.Scan(&r.ID, &r.NodeID, &r.NodeName, &r.UserID, &r.Login, &r.Dst, &r.Rule, &r.Reason, &requested, &duration,
		&r.State, &bg, &r.Approver, &r.Note, &created, &decided, &expires, &ended)
	r.Requested, r.Duration, r.BreakGlass = time.Duration(requested), time.Duration(duration), bg != 0
	r.Created, r.Decided, r.Expires, r.Ended = fromNanos(created), fromNanos(decided), fromNanos(expires), fromNanos(ended)
	return r, err
}

func (q queries) CreateAccessRequest(ctx context.Context, r AccessRequest) (AccessRequest, error) {
	id, err := q.nextID(ctx, "access_requests")
	if err != nil {
		return r, err
	}
	r.ID = id
	_, err = q.q.ExecContext(ctx, `INSERT INTO access_requests (`+accessCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.NodeID, r.NodeName, r.UserID, r.Login, r.Dst, r.Rule, r.Reason, int64(r.Requested), int64(r.Duration), r.State,
		boolInt(r.BreakGlass), r.Approver, r.Note, nanos(r.Created), nanos(r.Decided), nanos(r.Expires), nanos(r.Ended))
	if err != nil {
		return r, fmt.Errorf("create access request: %w", wrapErr(err))
	}
	return r, nil
}

func (q queries) GetAccessRequest(ctx context.Context, id int64) (AccessRequest, error) {
	r, err := scanAccess(q.q.QueryRowContext(ctx, `SELECT `+accessCols+` FROM access_requests WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("access request ar-%d: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get access request: %w", err)
	}
	return r, nil
}

func (q queries) ListAccessRequests(ctx context.Context, f AccessFilter) ([]AccessRequest, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, s := range f.States {
			args = append(args, s)
		}
	}
	if f.User != 0 {
		where, args = append(where, "user_id = ?"), append(args, f.User)
	}
	if f.Login != "" {
		where, args = append(where, "login = ?"), append(args, f.Login)
	}
	if f.Node != 0 {
		where, args = append(where, "node_id = ?"), append(args, f.Node)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, nanos(f.Since))
	}
	if !f.ExpiresBy.IsZero() {
		where, args = append(where, "expires_at <> 0 AND expires_at <= ?"), append(args, nanos(f.ExpiresBy))
	}
	query := `SELECT ` + accessCols + ` FROM access_requests`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAccessLimit
	}
	args = append(args, min(limit, maxAccessLimit))
	return list(ctx, q, "access requests", query+` ORDER BY id DESC LIMIT ?`, scanAccess, args...)
}

func (q queries) UpdateAccessRequest(ctx context.Context, r AccessRequest) error {
	res, err := q.q.ExecContext(ctx, `UPDATE access_requests SET rule = ?, duration_ns = ?, state = ?, break_glass = ?, approver = ?, note = ?,
		decided_at = ?, expires_at = ?, ended_at = ? WHERE id = ?`,
		r.Rule, int64(r.Duration), r.State, boolInt(r.BreakGlass), r.Approver, r.Note, nanos(r.Decided), nanos(r.Expires), nanos(r.Ended), r.ID)
	if err != nil {
		return fmt.Errorf("update access request: %w", wrapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access request ar-%d: %w", r.ID, ErrNotFound)
	}
	return nil
}

func (q queries) NextAccessExpiry(ctx context.Context, state string) (time.Time, error) {
	var t int64
	err := q.q.QueryRowContext(ctx, `SELECT COALESCE(MIN(expires_at), 0) FROM access_requests WHERE state = ? AND expires_at <> 0`, state).Scan(&t)
	if err != nil {
		return time.Time{}, fmt.Errorf("next access expiry: %w", err)
	}
	return fromNanos(t), nil
}

// The Store's own access methods: reads on the read pool, writes of
// several statements in one transaction.

func (s *sqlStore) CreateAccessRequest(ctx context.Context, r AccessRequest) (AccessRequest, error) {
	return writeGet(ctx, s, func(q Queries) (AccessRequest, error) { return q.CreateAccessRequest(ctx, r) })
}

func (s *sqlStore) GetAccessRequest(ctx context.Context, id int64) (AccessRequest, error) {
	return s.r.GetAccessRequest(ctx, id)
}

func (s *sqlStore) ListAccessRequests(ctx context.Context, f AccessFilter) ([]AccessRequest, error) {
	return s.r.ListAccessRequests(ctx, f)
}

func (s *sqlStore) NextAccessExpiry(ctx context.Context, state string) (time.Time, error) {
	return s.r.NextAccessExpiry(ctx, state)
}
