package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
)

// This file holds the rules over the stored flow logs: unusual-hour and
// time-window. One pass over the flows after one cursor judges both.

// flowStep judges one batch of stored flows after the flow rules' cursor
// and records their alerts with the new cursor in one transaction.
func (a *Alerter) flowStep(ctx context.Context) (int, error) {
	if a.cfg.Flows == nil {
		return 0, nil
	}
	cursor, err := a.st.SinkCursor(ctx, cursorName, "flows")
	if err != nil {
		return 0, err
	}
	rows, err := a.cfg.Flows.ListFlowsAfter(ctx, cursor, batch)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	var alerts []audit.Event
	// pending holds this batch's time-window alerts until they are
	// stored, so a failed commit forgets them and the retry raises them.
	pending := map[windowKey]bool{}
	for _, f := range rows {
		var e audit.Event
		var ok bool
		var err error
		switch {
		case f.Verdict == "accept":
			e, ok, err = a.unusualHour(ctx, f)
		case f.Verdict == "deny" && f.Reason == policy.DenyTimeWindow && !a.cfg.NoTimeWindow:
			e, ok, err = a.timeWindow(ctx, f, pending)
		}
		if err != nil {
			return 0, err
		}
		if ok {
			alerts = append(alerts, e)
		}
	}
	if err := a.commit(ctx, "flows", alerts, rows[len(rows)-1].Seq); err != nil {
		return 0, err
	}
	for k := range pending {
		a.windowSeen[k] = true
	}
	// Hours judged long ago are not seen again (flows arrive within
	// minutes); forget them.
	now := a.cfg.Now().Unix() / 3600
	for k := range a.hourSeen {
		if k.hour < now-2 {
			delete(a.hourSeen, k)
		}
	}
	for k := range a.windowSeen {
		if k.hour < now-2 {
			delete(a.windowSeen, k)
		}
	}
	return len(rows), nil
}

// unusualHour judges an accepted flow: its first record (not an update)
// to a device at an unusual hour raises an alert.
func (a *Alerter) unusualHour(ctx context.Context, f store.Flow) (audit.Event, bool, error) {
	if f.Update || f.DstNode == 0 {
		return audit.Event{}, false, nil
	}
	end := f.End.UTC()
	hour := end.Unix() / 3600
	k := hourKey{f.Src.Addr().String(), f.DstNode, hour}
	if a.hourSeen[k] {
		return audit.Event{}, false, nil
	}
	a.hourSeen[k] = true
	day := end.Truncate(24 * time.Hour)
	total, atHour, err := a.cfg.Flows.HourBaseline(ctx, f.DstNode, end.Hour(), day.Add(-a.cfg.HourBaseline), day)
	if err != nil {
		return audit.Event{}, false, err
	}
	if total < a.cfg.HourBaselineMin || atHour > 0 {
		return audit.Event{}, false, nil
	}
	e := alertEvent(RuleUnusualHour, fmt.Sprintf("node:%d", f.DstNode), fmt.Sprintf("flow-%d", f.Seq),
		fmt.Sprintf("unusual hour: %s reached node:%d port %d at %02d:00 UTC; none of its %d accepted flows in the %s before fell in that hour",
			who(f), f.DstNode, f.Dst.Port(), end.Hour(), total, a.cfg.HourBaseline))
	return e, true, nil
}

// timeWindow judges a flow denied because a rule's time window was
// closed: the first for its source node, rule and hour (of its last
// packet) raises an alert, whose target is the source node. An alert
// already recorded for that key (by this alerter or the one before a
// restart) is found in the store.
func (a *Alerter) timeWindow(ctx context.Context, f store.Flow, pending map[windowKey]bool) (audit.Event, bool, error) {
	src := fmt.Sprintf("node:%d", f.SrcNode)
	if f.SrcNode == 0 {
		src = f.Src.Addr().String()
	}
	k := windowKey{src, f.Rule, f.End.Unix() / 3600}
	if a.windowSeen[k] || pending[k] {
		return audit.Event{}, false, nil
	}
	pending[k] = true
	done, err := a.windowAlerted(ctx, k)
	if err != nil || done {
		return audit.Event{}, false, err
	}
	window := ""
	if a.cfg.Windows != nil {
		window = a.cfg.Windows(f.Rule)
	}
	dst := fmt.Sprintf("node:%d %s", f.DstNode, f.Dst)
	text := fmt.Sprintf("time window: %s on %s tried %s (%s) at %s UTC, outside the time window of %s",
		who(f), src, dst, protoName(f.Proto), f.End.UTC().Format("2006-01-02 15:04"), f.Rule)
	if window != "" {
		text += " (" + window + ")"
	}
	e := alertEvent(RuleTimeWindow, src, fmt.Sprintf("flow-%d", f.Seq), text)
	e.Detail["policyRule"] = f.Rule
	e.Detail["hour"] = k.hour
	e.Detail["destination"] = dst
	if window != "" {
		e.Detail["window"] = window
	}
	return e, true, nil
}

// windowAlerted reports whether a time-window alert for k is in the
// store: among the source's alerts recorded since the start of k's hour
// (an alert is recorded after its flow's last packet).
func (a *Alerter) windowAlerted(ctx context.Context, k windowKey) (bool, error) {
	evs, err := a.st.ListAudit(ctx, store.AuditFilter{Action: ActionPrefix + RuleTimeWindow, Target: k.src,
		Since: time.Unix(k.hour*3600, 0), Limit: 1000})
	if err != nil {
		return false, err
	}
	for _, e := range evs {
		var d struct {
			Rule string `json:"policyRule"`
			Hour int64  `json:"hour"`
		}
		if json.Unmarshal([]byte(e.Detail), &d) == nil && d.Rule == k.rule && d.Hour == k.hour {
			return true, nil
		}
	}
	return false, nil
}

// who names a flow's source: its user and address, or its address.
func who(f store.Flow) string {
	w := f.Src.Addr().String()
	if f.SrcUser != "" {
		w = f.SrcUser + " (" + w + ")"
	} else if len(f.SrcTags) > 0 {
		w = fmt.Sprintf("%v (%s)", f.SrcTags, w)
	}
	return w
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "ipv6-icmp"
	}
	return fmt.Sprintf("protocol %d", p)
}

// hourKey is a source, a destination and an hour since the epoch: the
// unusual-hour rule judges each once.
type hourKey struct {
	src  string
	dst  store.NodeID
	hour int64
}

// windowKey is a source node, a policy rule and an hour since the epoch:
// the time-window rule alerts on each once.
type windowKey struct {
	src, rule string
	hour      int64
}
