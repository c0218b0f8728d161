// Package audit records who did what, when, from where and how it ended:
// every event goes to the store (for history and the admin API) and to the
// structured log (for a SIEM reading JSON lines).
//
// Events must never carry a secret: callers pass display prefixes of keys,
// never plaintext keys or tokens.
package audit

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// Outcomes of an event.
const (
	OK     = "ok"
	Denied = "denied"
	Failed = "error"
)

// Event is one audited action. Time is filled in when zero.
type Event struct {
	Actor   string
	Action  string
	Target  string
	Remote  string
	Outcome string
	Detail  map[string]any
}

// Log writes audit events.
type Log struct {
	store store.Queries
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Log writing to st and logger (either may be nil).
func New(st store.Queries, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{store: st, log: logger, now: time.Now}
}

// Record writes e. A failure to store the event is logged, never hidden,
// and returned so callers that must not proceed without an audit trail can
// stop.
func (l *Log) Record(ctx context.Context, e Event) error {
	if e.Outcome == "" {
		e.Outcome = OK
	}
	detail := "{}"
	if len(e.Detail) > 0 {
		b, err := json.Marshal(e.Detail)
		if err == nil {
			detail = string(b)
		}
	}
	level := slog.LevelInfo
	if e.Outcome != OK {
		level = slog.LevelWarn
	}
	l.log.Log(ctx, level, "audit", "actor", e.Actor, "action", e.Action, "target", e.Target,
		"remote", e.Remote, "outcome", e.Outcome, "detail", json.RawMessage(detail))
	if l.store == nil {
		return nil
	}
	err := l.store.AppendAudit(context.WithoutCancel(ctx), store.AuditEvent{
		Time: l.now(), Actor: e.Actor, Action: e.Action, Target: e.Target,
		Remote: e.Remote, Outcome: e.Outcome, Detail: detail,
	})
	if err != nil {
		l.log.Error("audit event not stored", "action", e.Action, "err", err)
	}
	return err
}
