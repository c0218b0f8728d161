package store

import (
	"context"
	"fmt"
	"time"
)

// Pre-auth keys.

const authKeyCols = `id, prefix, hash, user_id, creator_id, reusable, ephemeral, tags, expiration, created, used_count, revoked`

func scanAuthKey(row interface{ Scan(...any) error }) (AuthKey, error) {
	var k AuthKey
	var tags string
	var exp, created int64
	if err := row.Scan(&k.ID, &k.Prefix, &k.Hash, &k.UserID, &k.CreatorID, &k.Reusable, &k.Ephemeral, &tags, &exp, &created, &k.UsedCount, &k.Revoked); err != nil {
		return k, wrapErr(err)
	}
	k.Expiration, k.Created = fromNanos(exp), fromNanos(created)
	var err error
	k.Tags, err = fromJSON[string](tags, "tags")
	return k, err
}

func (q queries) CreateAuthKey(ctx context.Context, k AuthKey) (AuthKey, error) {
	id, err := q.nextID(ctx, "auth_keys")
	if err != nil {
		return AuthKey{}, fmt.Errorf("create pre-auth key: %w", err)
	}
	_, err = q.q.ExecContext(ctx, `INSERT INTO auth_keys (id, prefix, hash, user_id, creator_id, reusable, ephemeral, tags, expiration, created, used_count, revoked)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, k.Prefix, k.Hash, k.UserID, k.CreatorID, boolInt(k.Reusable), boolInt(k.Ephemeral), jsonText(k.Tags),
		nanos(k.Expiration), nanos(k.Created), k.UsedCount, boolInt(k.Revoked))
	if err != nil {
		return AuthKey{}, fmt.Errorf("create pre-auth key: %w", wrapErr(err))
	}
	return q.GetAuthKey(ctx, AuthKeyID(id))
}

func (q queries) GetAuthKey(ctx context.Context, id AuthKeyID) (AuthKey, error) {
	k, err := scanAuthKey(q.q.QueryRowContext(ctx, `SELECT `+authKeyCols+` FROM auth_keys WHERE id = ?`, id))
	if err != nil {
		return k, fmt.Errorf("pre-auth key %d: %w", id, err)
	}
	return k, nil
}

func (q queries) GetAuthKeyByHash(ctx context.Context, hash []byte) (AuthKey, error) {
	k, err := scanAuthKey(q.q.QueryRowContext(ctx, `SELECT `+authKeyCols+` FROM auth_keys WHERE hash = ?`, hash))
	if err != nil {
		return k, fmt.Errorf("pre-auth key: %w", err)
	}
	return k, nil
}

func (q queries) ListAuthKeys(ctx context.Context) ([]AuthKey, error) {
	return list(ctx, q, "pre-auth keys", `SELECT `+authKeyCols+` FROM auth_keys ORDER BY id`, scanAuthKey)
}

func (q queries) UpdateAuthKey(ctx context.Context, k AuthKey) error {
	return q.execOne(ctx, fmt.Sprintf("update pre-auth key %d", k.ID),
		`UPDATE auth_keys SET used_count = ?, revoked = ?, expiration = ? WHERE id = ?`,
		k.UsedCount, boolInt(k.Revoked), nanos(k.Expiration), k.ID)
}

// API keys.

const apiKeyCols = `id, prefix, hash, user_id, expiration, created, last_used, revoked, role, name`

func scanAPIKey(row interface{ Scan(...any) error }) (APIKey, error) {
	var k APIKey
	var exp, created, used int64
	var role string
	if err := row.Scan(&k.ID, &k.Prefix, &k.Hash, &k.UserID, &exp, &created, &used, &k.Revoked, &role, &k.Name); err != nil {
		return k, wrapErr(err)
	}
	k.Role = APIKeyRole(role)
	k.Expiration, k.Created, k.LastUsed = fromNanos(exp), fromNanos(created), fromNanos(used)
	return k, nil
}

func (q queries) CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error) {
	id, err := q.nextID(ctx, "api_keys")
	if err != nil {
		return APIKey{}, fmt.Errorf("create API key: %w", err)
	}
	_, err = q.q.ExecContext(ctx, `INSERT INTO api_keys (id, prefix, hash, user_id, expiration, created, last_used, revoked, role, name)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, k.Prefix, k.Hash, k.UserID, nanos(k.Expiration), nanos(k.Created), nanos(k.LastUsed), boolInt(k.Revoked),
		string(k.Role), k.Name)
	if err != nil {
		return APIKey{}, fmt.Errorf("create API key: %w", wrapErr(err))
	}
	k, err = scanAPIKey(q.q.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`, id))
	if err != nil {
		return k, fmt.Errorf("API key %d: %w", id, err)
	}
	return k, nil
}

func (q queries) GetAPIKey(ctx context.Context, id APIKeyID) (APIKey, error) {
	k, err := scanAPIKey(q.q.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`, id))
	if err != nil {
		return k, fmt.Errorf("API key %d: %w", id, err)
	}
	return k, nil
}

func (q queries) GetAPIKeyByHash(ctx context.Context, hash []byte) (APIKey, error) {
	k, err := scanAPIKey(q.q.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE hash = ?`, hash))
	if err != nil {
		return k, fmt.Errorf("API key: %w", err)
	}
	return k, nil
}

func (q queries) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	return list(ctx, q, "API keys", `SELECT `+apiKeyCols+` FROM api_keys ORDER BY id`, scanAPIKey)
}

func (q queries) UpdateAPIKey(ctx context.Context, k APIKey) error {
	return q.execOne(ctx, fmt.Sprintf("update API key %d", k.ID),
		`UPDATE api_keys SET last_used = ?, revoked = ?, expiration = ? WHERE id = ?`,
		nanos(k.LastUsed), boolInt(k.Revoked), nanos(k.Expiration), k.ID)
}

// Audit events.

// Audit listing limits.
const (
	defaultAuditLimit = 1000
	maxAuditLimit     = 10000
)

func (q queries) AppendAudit(ctx context.Context, e AuditEvent) error {
	if e.Detail == "" {
		e.Detail = "{}"
	}
	// The ID comes from high_water, never reused even when every older
	// event was pruned: the log sinks' cursors are audit IDs.
	id, err := q.nextID(ctx, "audit_events")
	if err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	_, err = q.q.ExecContext(ctx, `INSERT INTO audit_events (id, time, actor, action, target, remote, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		id, nanos(e.Time), e.Actor, e.Action, e.Target, e.Remote, e.Outcome, e.Detail)
	if err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	return nil
}

func (q queries) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM audit_events WHERE time < ?`, nanos(before))
	if err != nil {
		return 0, fmt.Errorf("prune audit events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune audit events: %w", err)
	}
	return n, nil
}

func (q queries) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	limit = min(limit, maxAuditLimit)
	until := nanos(f.Until)
	if until == 0 {
		until = 1<<63 - 1
	}
	return list(ctx, q, "audit events", `SELECT id, time, actor, action, target, remote, outcome, detail FROM audit_events
		WHERE time >= ? AND time <= ? AND (? = '' OR action = ?) AND (? = '' OR actor = ?) AND (? = '' OR target = ?) AND (? = '' OR outcome = ?)
		ORDER BY time DESC, id DESC LIMIT ?`,
		func(row interface{ Scan(...any) error }) (AuditEvent, error) {
			var e AuditEvent
			var t int64
			err := row.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.Target, &e.Remote, &e.Outcome, &e.Detail)
			e.Time = fromNanos(t)
			return e, err
		}, nanos(f.Since), until, f.Action, f.Action, f.Actor, f.Actor, f.Target, f.Target, f.Outcome, f.Outcome, limit)
}
