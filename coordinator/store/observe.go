package store

import (
	"context"
	"database/sql"
	"time"
)

// timedQuerier times each statement of q for Options.Observe. A query's
// time ends when its rows are ready, not when they are read.
type timedQuerier struct {
	q       querier
	op      string
	observe func(op string, d time.Duration)
}

// timed wraps q with observe, or returns q itself when observe is nil.
func timed(q querier, op string, observe func(op string, d time.Duration)) querier {
	if observe == nil {
		return q
	}
	return timedQuerier{q: q, op: op, observe: observe}
}

func (t timedQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer t.since(time.Now())
	return t.q.ExecContext(ctx, query, args...)
}

func (t timedQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	defer t.since(time.Now())
	return t.q.QueryContext(ctx, query, args...)
}

func (t timedQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	defer t.since(time.Now())
	return t.q.QueryRowContext(ctx, query, args...)
}

func (t timedQuerier) since(start time.Time) { t.observe(t.op, time.Since(start)) }
