// Package audit records who did what, when, from where and how it ended:
// every event goes to the store (for history and the admin API) and to the
// structured log (for a SIEM reading JSON lines).
//
// A change to the coordinator's state and its audit event commit in one
// store transaction (Log.Commit), so the store never holds a change without
// its record, nor a record of a change that did not happen. Events that
// change nothing (a refusal, a sign-in attempt) are written on their own
// (Log.Record).
//
// Events must never carry a secret: callers pass display prefixes of keys,
// never plaintext keys or tokens.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
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
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	onEvent func(Event) // see OnEvent
}

// OnEvent makes l call fn with each event once it is stored (or, for
// Record, once storing it was tried), after its log line: metrics count
// sign-ins and policy loads with it. Call it before l is used; fn must
// not block.
func (l *Log) OnEvent(fn func(Event)) { l.onEvent = fn }

// New returns a Log writing to st and logger (either may be nil).
func New(st store.Store, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{store: st, log: logger, now: time.Now}
}

// Record writes e on its own, for events that change no state. A failure
// to store the event is logged, never hidden, and returned so callers that
// must not proceed without an audit trail can stop.
func (l *Log) Record(ctx context.Context, e Event) error {
	row := l.row(&e)
	l.logLine(ctx, e, row.Detail)
	if l.store == nil {
		return nil
	}
	err := l.store.AppendAudit(context.WithoutCancel(ctx), row)
	if err != nil {
		l.log.Error("audit event not stored", "action", e.Action, "err", err)
	}
	if l.onEvent != nil {
		l.onEvent(e)
	}
	return err
}

// Tx is a store transaction that also collects the audit events of the
// change it makes; see Log.Commit.
type Tx struct {
	store.Queries
	events []Event
}

// Record adds e to the transaction: it is stored if, and only if, the
// transaction commits.
func (t *Tx) Record(e Event) { t.events = append(t.events, e) }

// Commit runs fn in one store transaction and appends the events fn
// recorded on its Tx in that same transaction, so that the change and its
// audit record commit together or not at all. If fn fails, or the events
// cannot be stored, nothing is kept and the error is returned. The events'
// log lines are written once the transaction has committed.
func (l *Log) Commit(ctx context.Context, fn func(tx *Tx) error) error {
	if l.store == nil {
		return fmt.Errorf("audit: no store to commit to")
	}
	var events []Event
	var details []string
	err := l.store.Tx(ctx, func(q store.Queries) error {
		tx := &Tx{Queries: q}
		if err := fn(tx); err != nil {
			return err
		}
		events, details = tx.events, make([]string, len(tx.events))
		for i := range events {
			row := l.row(&events[i])
			details[i] = row.Detail
			if err := q.AppendAudit(ctx, row); err != nil {
				return fmt.Errorf("change not made: its audit event could not be stored: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, e := range events {
		l.logLine(ctx, e, details[i])
		if l.onEvent != nil {
			l.onEvent(e)
		}
	}
	return nil
}

// row fills in e's defaults and returns its stored form.
func (l *Log) row(e *Event) store.AuditEvent {
	if e.Outcome == "" {
		e.Outcome = OK
	}
	detail := "{}"
	if len(e.Detail) > 0 {
		if b, err := json.Marshal(e.Detail); err == nil {
			detail = string(b)
		}
	}
	return store.AuditEvent{Time: l.now(), Actor: e.Actor, Action: e.Action, Target: e.Target,
		Remote: e.Remote, Outcome: e.Outcome, Detail: detail}
}

// logLine writes e to the structured log.
func (l *Log) logLine(ctx context.Context, e Event, detail string) {
	level := slog.LevelInfo
	if e.Outcome != OK {
		level = slog.LevelWarn
	}
	l.log.Log(ctx, level, "audit", "actor", e.Actor, "action", e.Action, "target", e.Target,
		"remote", e.Remote, "outcome", e.Outcome, "detail", json.RawMessage(detail))
}
