package export

import (
	"context"

	"github.com/warrenmesh/warren/coordinator/store"
)

// Source is a table of rows a sink delivers in order: the audit trail
// (AuditSource) and, later, the flows.
type Source interface {
	// Name names the source in the sinks' cursors ("audit"); it must not
	// change between releases.
	Name() string
	// After returns up to n events whose cursors are above cursor, in
	// cursor order. Cursors are never reused.
	After(ctx context.Context, cursor int64, n int) ([]Event, error)
	// Backlog counts the events above cursor.
	Backlog(ctx context.Context, cursor int64) (int64, error)
}

// Cursors keep how far each sink has delivered each source; the store
// is one.
type Cursors interface {
	SinkCursor(ctx context.Context, sink, source string) (int64, error)
	SetSinkCursor(ctx context.Context, sink, source string, cursor int64) error
}

// AuditSource is the store's audit trail.
type AuditSource struct {
	Store interface {
		ListAuditAfter(ctx context.Context, after int64, n int) ([]store.AuditEvent, error)
		CountAuditAfter(ctx context.Context, after int64) (int64, error)
	}
}

// Backlog implements Source.
func (s AuditSource) Backlog(ctx context.Context, cursor int64) (int64, error) {
	return s.Store.CountAuditAfter(ctx, cursor)
}

// Name implements Source.
func (AuditSource) Name() string { return "audit" }

// After implements Source.
func (s AuditSource) After(ctx context.Context, cursor int64, n int) ([]Event, error) {
	rows, err := s.Store.ListAuditAfter(ctx, cursor, n)
	if err != nil {
		return nil, err
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = FromAudit(r)
	}
	return out, nil
}

// FlowSource is the store's flow logs.
type FlowSource struct {
	Store interface {
		ListFlowsAfter(ctx context.Context, after int64, n int) ([]store.Flow, error)
		CountFlowsAfter(ctx context.Context, after int64) (int64, error)
	}
}

// Name implements Source.
func (FlowSource) Name() string { return "flows" }

// After implements Source.
func (s FlowSource) After(ctx context.Context, cursor int64, n int) ([]Event, error) {
	rows, err := s.Store.ListFlowsAfter(ctx, cursor, n)
	if err != nil {
		return nil, err
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = FromFlow(r)
	}
	return out, nil
}

// Backlog implements Source.
func (s FlowSource) Backlog(ctx context.Context, cursor int64) (int64, error) {
	return s.Store.CountFlowsAfter(ctx, cursor)
}
