// Package alert turns what the coordinator records into alerts: it reads
// the audit trail in order, after a cursor kept in the store, and for each
// event a rule names (an admin action, a new device) records an alert
// event, "alert.<rule>", in the audit trail itself, in the same store
// transaction that moves its cursor, so every event is judged exactly
// once, across restarts. A deny-burst rule counts denied flows per source
// node over a sliding window, and finds a source's last burst alert in
// the audit trail, so a restart does not raise it again. Rules over the
// stored flows (an unusual hour, a try outside a rule's time window)
// read them in order after their own cursor, the same way. Alert events reach the SIEM sinks like any
// other event, and an alert webhook is an export sink limited to them.
//
// It must never change the state it watches, and never block the
// coordinator: it runs on its own goroutine and only appends.
package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
)

// Rule names, the suffixes of the alert events' actions.
const (
	RuleAdminAction = "admin-action"
	RuleNewDevice   = "new-device"
	RuleDenyBurst   = "deny-burst"
	RulePosture     = "posture-failure"
	RuleUnusualHour = "unusual-hour"
	RuleTimeWindow  = "time-window"
)

// ActionPrefix starts every alert event's action.
const ActionPrefix = "alert."

// DefaultAdminActions are the audited actions that alert by default: what
// an intruder with admin rights, or a break-glass change, would do.
var DefaultAdminActions = []string{
	"policy.apply", "user.disable", "user.delete", "user.role", "user.enable",
	"apikey.create", "node.routes.approve", "node.tag", "node.delete",
}

// Defaults.
const (
	DefaultPoll       = time.Second
	DefaultDenyBurst  = 100
	DefaultDenyWindow = 5 * time.Minute
	// An hour of the day is unusual for a destination when none of its
	// accepted flows in the baseline (the 14 days before the last day)
	// fell in it, and it had at least DefaultHourBaselineMin flows.
	DefaultHourBaseline    = 14 * 24 * time.Hour
	DefaultHourBaselineMin = 50
	cursorName             = "alerts"
	batch                  = 500
)

// DenyCounter counts denied flow records (packets, for aggregates) per
// reporting source node since a time; the store of flow logs is one.
type DenyCounter interface {
	DeniedBySource(ctx context.Context, since time.Time) (map[string]int64, error)
}

// FlowHistory is the stored flow logs as the unusual-hour rule reads
// them; the store is one.
type FlowHistory interface {
	ListFlowsAfter(ctx context.Context, after int64, n int) ([]store.Flow, error)
	HourBaseline(ctx context.Context, dst store.NodeID, hour int, from, to time.Time) (total, atHour int64, err error)
}

// Config configures the alerter. The zero value alerts on
// DefaultAdminActions and new devices; deny bursts need Denies.
type Config struct {
	// AdminActions replaces DefaultAdminActions when not nil (empty: none).
	AdminActions []string
	// NoNewDevice turns the new-device rule off.
	NoNewDevice bool
	// Denies, if set, enables the deny-burst rule: DenyBurst denied
	// packets from one source within DenyWindow raise one alert per
	// source and window.
	Denies     DenyCounter
	DenyBurst  int64
	DenyWindow time.Duration
	// Flows, if set, enables the unusual-hour rule: an accepted flow to a
	// device at an hour of the day (UTC) at which the baseline (the
	// HourBaseline before the last day) holds none of that destination's
	// accepted flows, though it holds at least HourBaselineMin, raises an
	// alert (once per source, destination and hour).
	Flows           FlowHistory
	HourBaseline    time.Duration
	HourBaselineMin int64
	// With Flows set, the time-window rule is on unless NoTimeWindow: a
	// flow denied with reason "time-window" (a rule would have admitted
	// it inside its time window) raises an alert, once per source node,
	// policy rule and hour. Windows, if set, describes a rule's window
	// for the alert's text (netmap.Engine.RuleWindow: the policy of now).
	NoTimeWindow bool
	Windows      func(rule string) string
	// Postures, if set, enables the posture-failure rule: it returns how
	// many rules each connected device ("node:12") fails only because of
	// its posture; a device that failed none and now fails some raises an
	// alert.
	Postures func() map[string]int
	Poll     time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// Store is what the alerter reads and writes.
type Store interface {
	ListAuditAfter(ctx context.Context, after int64, n int) ([]store.AuditEvent, error)
	// ListAudit finds the last deny-burst alert of a source after a
	// restart.
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
	SinkCursor(ctx context.Context, sink, source string) (int64, error)
}

// Alerter applies the rules; Run drives it.
type Alerter struct {
	cfg   Config
	st    Store
	audit *audit.Log
	log   *slog.Logger
	admin map[string]bool
	// burstAt remembers when each source last raised a deny burst, so one
	// burst raises one alert per window; a source it does not hold is
	// looked up in the store (lastBurst), so a restart forgets nothing.
	burstAt map[string]time.Time
	// compliant is each device's last posture state seen (true: it failed
	// no rule); a device seen for the first time sets it without alerting.
	compliant map[string]bool
	// hourSeen holds the (source, destination, hour) the unusual-hour
	// rule has judged recently.
	hourSeen map[hourKey]bool
	// windowSeen holds the (source node, rule, hour) the time-window rule
	// has alerted on recently (flows.go).
	windowSeen map[windowKey]bool
}

// New returns an alerter reading st and recording through log.
func New(cfg Config, st Store, log *audit.Log) *Alerter {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.DenyBurst <= 0 {
		cfg.DenyBurst = DefaultDenyBurst
	}
	if cfg.DenyWindow <= 0 {
		cfg.DenyWindow = DefaultDenyWindow
	}
	if cfg.HourBaseline <= 0 {
		cfg.HourBaseline = DefaultHourBaseline
	}
	if cfg.HourBaselineMin <= 0 {
		cfg.HourBaselineMin = DefaultHourBaselineMin
	}
	actions := cfg.AdminActions
	if actions == nil {
		actions = DefaultAdminActions
	}
	a := &Alerter{cfg: cfg, st: st, audit: log, log: cfg.Logger, admin: map[string]bool{}, burstAt: map[string]time.Time{},
		compliant: map[string]bool{}, hourSeen: map[hourKey]bool{}, windowSeen: map[windowKey]bool{}}
	for _, act := range actions {
		a.admin[act] = true
	}
	return a
}

// Run applies the rules every Poll until ctx ends.
func (a *Alerter) Run(ctx context.Context) {
	t := time.NewTicker(a.cfg.Poll)
	defer t.Stop()
	for {
		if err := a.Step(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("alerts: will try again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step judges the audit events recorded since the last step and the deny
// counts of the current window, and records the alerts they raise.
func (a *Alerter) Step(ctx context.Context) error {
	if err := drain(ctx, a.auditStep); err != nil {
		return err
	}
	if err := a.denyStep(ctx); err != nil {
		return err
	}
	if err := drain(ctx, a.flowStep); err != nil {
		return err
	}
	return a.postureStep(ctx)
}

// postureStep raises a posture-failure alert for each device that failed
// no posture rule when last seen and fails some now.
func (a *Alerter) postureStep(ctx context.Context) error {
	if a.cfg.Postures == nil {
		return nil
	}
	now := a.cfg.Postures()
	for dev, n := range now {
		was, seen := a.compliant[dev]
		a.compliant[dev] = n == 0
		if !seen || !was || n == 0 {
			continue
		}
		e := alertEvent(RulePosture, dev, "",
			fmt.Sprintf("posture failure: %s, compliant before, now fails %d rule(s) because of its posture", dev, n))
		e.Detail["rules"] = n
		if err := a.audit.Record(ctx, e); err != nil {
			return err
		}
	}
	for dev := range a.compliant {
		if _, ok := now[dev]; !ok {
			delete(a.compliant, dev) // disconnected: judged afresh when back
		}
	}
	return nil
}

// auditStep judges one batch of audit events after the cursor and
// records their alerts and the new cursor in one transaction.
func (a *Alerter) auditStep(ctx context.Context) (int, error) {
	cursor, err := a.st.SinkCursor(ctx, cursorName, "audit")
	if err != nil {
		return 0, err
	}
	rows, err := a.st.ListAuditAfter(ctx, cursor, batch)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	var alerts []audit.Event
	for _, r := range rows {
		if e, ok := a.judge(r); ok {
			alerts = append(alerts, e)
		}
	}
	return len(rows), a.commit(ctx, "audit", alerts, rows[len(rows)-1].ID)
}

// drain runs step, one batch after a cursor at a time, until a batch
// comes back short.
func drain(ctx context.Context, step func(context.Context) (int, error)) error {
	for {
		n, err := step(ctx)
		if err != nil || n < batch {
			return err
		}
	}
}

// commit records alerts and moves the rule's cursor over source to last
// in one transaction, so each row is judged exactly once.
func (a *Alerter) commit(ctx context.Context, source string, alerts []audit.Event, last int64) error {
	return a.audit.Commit(ctx, func(tx *audit.Tx) error {
		for _, e := range alerts {
			tx.Record(e)
		}
		return tx.SetSinkCursor(ctx, cursorName, source, last)
	})
}

// judge returns the alert r raises, if any.
func (a *Alerter) judge(r store.AuditEvent) (audit.Event, bool) {
	if strings.HasPrefix(r.Action, ActionPrefix) || r.Outcome != audit.OK {
		return audit.Event{}, false
	}
	src := fmt.Sprintf("audit-%d", r.ID)
	switch {
	case a.admin[r.Action]:
		return alertEvent(RuleAdminAction, r.Target, src,
			fmt.Sprintf("admin action %s on %s by %s", r.Action, orDash(r.Target), orDash(r.Actor))), true
	case r.Action == "node.register" && !a.cfg.NoNewDevice:
		return alertEvent(RuleNewDevice, r.Target, src,
			fmt.Sprintf("new device %s registered by %s", orDash(r.Target), orDash(r.Actor))), true
	}
	return audit.Event{}, false
}

// denyStep raises a deny-burst alert for each source over the threshold
// in the current window that has not raised one within the window.
func (a *Alerter) denyStep(ctx context.Context) error {
	if a.cfg.Denies == nil {
		return nil
	}
	now := a.cfg.Now()
	counts, err := a.cfg.Denies.DeniedBySource(ctx, now.Add(-a.cfg.DenyWindow))
	if err != nil {
		return err
	}
	for src, n := range counts {
		if n < a.cfg.DenyBurst || now.Sub(a.burstAt[src]) < a.cfg.DenyWindow {
			continue
		}
		if _, known := a.burstAt[src]; !known {
			// Not raised by this alerter: maybe by the one before a
			// restart, recorded in the store.
			last, err := a.lastBurst(ctx, src)
			if err != nil {
				return err
			}
			if now.Sub(last) < a.cfg.DenyWindow {
				a.burstAt[src] = last
				continue
			}
		}
		a.burstAt[src] = now
		e := alertEvent(RuleDenyBurst, src, "",
			fmt.Sprintf("deny burst: %d denied packets from %s in %s", n, src, a.cfg.DenyWindow))
		e.Detail["denied"] = n
		e.Detail["at"] = now.UTC().Format(time.RFC3339Nano)
		if err := a.audit.Record(ctx, e); err != nil {
			return err
		}
	}
	for src, at := range a.burstAt {
		if now.Sub(at) >= a.cfg.DenyWindow {
			delete(a.burstAt, src)
		}
	}
	return nil
}

// lastBurst returns when the last deny-burst alert for src was raised,
// by the alerter's clock (its "at"; the event's time for an alert
// without one), or the zero time if none was. One indexed lookup of the
// store (audit events by target and time).
func (a *Alerter) lastBurst(ctx context.Context, src string) (time.Time, error) {
	evs, err := a.st.ListAudit(ctx, store.AuditFilter{Action: ActionPrefix + RuleDenyBurst, Target: src, Limit: 1})
	if err != nil || len(evs) == 0 {
		return time.Time{}, err
	}
	var d struct {
		At time.Time `json:"at"`
	}
	if json.Unmarshal([]byte(evs[0].Detail), &d) != nil || d.At.IsZero() {
		return evs[0].Time, nil
	}
	return d.At, nil
}

func alertEvent(rule, target, source, text string) audit.Event {
	d := map[string]any{"rule": rule, "text": text}
	if source != "" {
		d["source"] = source
	}
	return audit.Event{Actor: "alerts", Action: ActionPrefix + rule, Target: target, Outcome: audit.OK, Detail: d}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
