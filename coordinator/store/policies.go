package store

import (
	"context"
	"fmt"
)

// Policy history.

const defaultPolicyLimit = 100

func (q queries) SavePolicy(ctx context.Context, p PolicyVersion) (PolicyVersion, error) {
	err := q.q.QueryRowContext(ctx, `INSERT INTO policies (hash, source, author, diff, created) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		p.Hash, p.Source, p.Author, p.Diff, nanos(p.Created)).Scan(&p.ID)
	if err != nil {
		return p, fmt.Errorf("save policy: %w", err)
	}
	return p, nil
}

func (q queries) LatestPolicy(ctx context.Context) (PolicyVersion, error) {
	ps, err := q.ListPolicies(ctx, 1)
	if err != nil {
		return PolicyVersion{}, err
	}
	if len(ps) == 0 {
		return PolicyVersion{}, fmt.Errorf("policy: %w", ErrNotFound)
	}
	return ps[0], nil
}

func (q queries) ListPolicies(ctx context.Context, limit int) ([]PolicyVersion, error) {
	if limit <= 0 {
		limit = defaultPolicyLimit
	}
	return list(ctx, q, "policies", `SELECT id, hash, source, author, diff, created FROM policies ORDER BY id DESC LIMIT ?`,
		func(row interface{ Scan(...any) error }) (PolicyVersion, error) {
			var p PolicyVersion
			var created int64
			err := row.Scan(&p.ID, &p.Hash, &p.Source, &p.Author, &p.Diff, &created)
			p.Created = fromNanos(created)
			return p, err
		}, limit)
}
