package alert

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
)

type denyCounts map[string]int64

func (d denyCounts) DeniedBySource(context.Context, time.Time) (map[string]int64, error) {
	return d, nil
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func alerts(t *testing.T, st store.Store, rule string) []store.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Action: ActionPrefix + rule})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestRules: admin actions and registrations alert once each, across a
// restart of the alerter (its cursor is in the store); failed actions
// and alerts themselves do not; a deny burst alerts once per window.
func TestRules(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	log := audit.New(st, nil)
	for _, e := range []audit.Event{
		{Actor: "user:root@example.com", Action: "user.disable", Target: "user:bob@example.com", Outcome: audit.OK},
		{Actor: "user:root@example.com", Action: "user.disable", Target: "user:eve@example.com", Outcome: audit.Denied},
		{Actor: "user:ann@example.com", Action: "node.register", Target: "node:7", Outcome: audit.OK},
		{Actor: "node:7", Action: "node.posture.report", Target: "node:7", Outcome: audit.OK},
	} {
		if err := log.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	cfg := Config{Denies: denyCounts{"node:9": 150, "node:3": 20}, Now: func() time.Time { return now }}
	if err := New(cfg, st, log).Step(ctx); err != nil {
		t.Fatal(err)
	}
	// A second alerter (a restart) judges nothing twice.
	a := New(cfg, st, log)
	if err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := alerts(t, st, RuleAdminAction); len(got) != 1 || got[0].Target != "user:bob@example.com" {
		t.Errorf("admin-action alerts: %+v", got)
	}
	if got := alerts(t, st, RuleNewDevice); len(got) != 1 || got[0].Target != "node:7" {
		t.Errorf("new-device alerts: %+v", got)
	}
	// The restart remembered the window (TestDenyBurstSurvivesRestart).
	if got := alerts(t, st, RuleDenyBurst); len(got) != 1 || got[0].Target != "node:9" {
		t.Errorf("deny-burst alerts: %+v", got)
	}
	// Within the window, no second alert; after it, one more.
	now = now.Add(time.Minute)
	if err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := alerts(t, st, RuleDenyBurst); len(got) != 1 {
		t.Errorf("deny-burst alerts within the window: %d", len(got))
	}
	now = now.Add(DefaultDenyWindow)
	if err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := alerts(t, st, RuleDenyBurst); len(got) != 2 {
		t.Errorf("deny-burst alerts after the window: %d", len(got))
	}
}

// TestPostureFailure: a device seen compliant that then fails a posture
// rule raises one alert; a device first seen failing, or failing again
// without having recovered, raises none; one that recovered and fails
// again raises another.
func TestPostureFailure(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	state := map[string]int{"node:1": 0, "node:2": 1}
	a := New(Config{Postures: func() map[string]int { return state }}, st, audit.New(st, nil))
	step := func(want int) {
		t.Helper()
		if err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if got := alerts(t, st, RulePosture); len(got) != want {
			t.Fatalf("%d posture alerts, want %d: %+v", len(got), want, got)
		}
	}
	step(0)
	state["node:1"], state["node:2"] = 2, 2
	step(1)
	step(1) // still failing: no second alert
	state["node:1"] = 0
	step(1)
	state["node:1"] = 1
	step(2)
	if got := alerts(t, st, RulePosture); got[0].Target != "node:1" || got[1].Target != "node:1" {
		t.Errorf("alerts for %s and %s, want node:1 twice", got[0].Target, got[1].Target)
	}
}

// TestUnusualHour: a destination reached every working hour (09:00-16:59
// UTC) for the baseline's days alerts on an access at 03:00, once per
// source and hour, and not on one at 10:00; a destination without enough
// history never alerts.
func TestUnusualHour(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Date(2026, 12, 7, 3, 30, 0, 0, time.UTC)
	src := netip.MustParseAddrPort("100.64.0.2:40000")
	var flows []store.Flow
	seq := 0
	flow := func(dst store.NodeID, at time.Time, port uint16) store.Flow {
		seq++
		return store.Flow{ID: fmt.Sprintf("f-%d", seq), Reporter: dst, Start: at, End: at, Src: src,
			Dst: netip.AddrPortFrom(netip.MustParseAddr("100.64.0.5"), port), Proto: 6, SrcUser: "ann@example.com",
			DstNode: dst, Verdict: "accept", Rule: "acls[0]"}
	}
	for day := 1; day <= 14; day++ {
		for hour := 9; hour < 17; hour++ {
			flows = append(flows, flow(5, now.Add(-time.Duration(day)*24*time.Hour).Truncate(24*time.Hour).Add(time.Duration(hour)*time.Hour), 5432))
		}
	}
	flows = append(flows, flow(6, now.Add(-48*time.Hour), 22)) // node 6: too little history
	if _, err := st.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	a := New(Config{Flows: st, Now: func() time.Time { return now }}, st, audit.New(st, nil))
	if err := a.Step(ctx); err != nil { // the history itself: no alert
		t.Fatal(err)
	}
	if got := alerts(t, st, RuleUnusualHour); len(got) != 0 {
		t.Fatalf("the history raised %+v", got)
	}
	today := now.Truncate(24 * time.Hour)
	if _, err := st.InsertFlows(ctx, []store.Flow{
		flow(5, now, 5432), flow(5, now.Add(time.Minute), 5432), // 03:30 and 03:31: one alert
		flow(5, today.Add(10*time.Hour), 5432), // 10:00: usual
		flow(6, now, 22),                       // no baseline
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Step(ctx); err != nil {
		t.Fatal(err)
	}
	got := alerts(t, st, RuleUnusualHour)
	if len(got) != 1 || got[0].Target != "node:5" || !strings.Contains(got[0].Detail, "03:00 UTC") {
		t.Fatalf("unusual-hour alerts: %+v", got)
	}
}

// TestDenyBurstSurvivesRestart: a burst that alerted before a restart of
// the alerter over the same store does not alert again within its
// window, and does once the window is over.
func TestDenyBurstSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	log := audit.New(st, nil)
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	cfg := Config{Denies: denyCounts{"100.64.0.9": 150, "100.64.0.3": 20}, Now: func() time.Time { return now }}
	step := func(a *Alerter, want int) {
		t.Helper()
		if err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if got := alerts(t, st, RuleDenyBurst); len(got) != want {
			t.Fatalf("%d deny-burst alerts, want %d: %+v", len(got), want, got)
		}
	}
	step(New(cfg, st, log), 1)
	now = now.Add(time.Minute)
	step(New(cfg, st, log), 1) // restarted within the window
	now = now.Add(DefaultDenyWindow - 2*time.Minute)
	a := New(cfg, st, log)
	step(a, 1) // again, at the window's last minute
	step(a, 1)
	now = now.Add(time.Minute) // the window of the first alert is over
	step(New(cfg, st, log), 2)
	if got := alerts(t, st, RuleDenyBurst); got[0].Target != "100.64.0.9" || got[1].Target != "100.64.0.9" {
		t.Errorf("alerts for %s and %s, want 100.64.0.9 twice", got[0].Target, got[1].Target)
	}
}

// TestTimeWindow: flows denied because a rule's time window was closed
// alert once per source node, rule and hour, with the rule, its window,
// the source and the destination in the text, across a restart of the
// alerter; other denies do not; NoTimeWindow turns the rule off.
func TestTimeWindow(t *testing.T) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour) // the hour before this one
	seq := 0
	deny := func(src store.NodeID, user, reason, rule string, at time.Time) store.Flow {
		seq++
		return store.Flow{ID: fmt.Sprintf("d-%d", seq), Reporter: 1, Start: at, End: at,
			Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, 64, 0, byte(src)}), 40000), SrcNode: src, SrcUser: user,
			Dst: netip.MustParseAddrPort("100.64.0.1:8080"), Proto: 6, DstNode: 1, PacketsIn: 2, Count: 2,
			Verdict: "deny", Reason: reason, Rule: rule}
	}
	windows := func(rule string) string {
		if rule == "acls[2]" {
			return "Sat 00:00-24:00 UTC"
		}
		return ""
	}
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoTimeWindow=%v", off), func(t *testing.T) {
			st := openStore(t)
			log := audit.New(st, nil)
			cfg := Config{Flows: st, Windows: windows, NoTimeWindow: off}
			insert := func(fs ...store.Flow) {
				t.Helper()
				if _, err := st.InsertFlows(ctx, fs); err != nil {
					t.Fatal(err)
				}
			}
			step := func(a *Alerter, want int) []store.AuditEvent {
				t.Helper()
				if err := a.Step(ctx); err != nil {
					t.Fatal(err)
				}
				if off {
					want = 0
				}
				got := alerts(t, st, RuleTimeWindow)
				if len(got) != want {
					t.Fatalf("%d time-window alerts, want %d: %+v", len(got), want, got)
				}
				return got
			}
			insert(
				deny(2, "ann@example.com", "time-window", "acls[2]", base.Add(10*time.Minute)),
				deny(2, "ann@example.com", "time-window", "acls[2]", base.Add(20*time.Minute)), // same hour: no second
				deny(2, "ann@example.com", "time-window", "acls[5]", base.Add(20*time.Minute)), // another rule
				deny(3, "bob@example.com", "time-window", "acls[2]", base.Add(30*time.Minute)), // another source
				deny(2, "ann@example.com", "no-rule", "", base.Add(30*time.Minute)),
				deny(2, "ann@example.com", "posture", "acls[0]", base.Add(30*time.Minute)),
				deny(2, "ann@example.com", "mfa", "acls[1]", base.Add(30*time.Minute)),
			)
			a := New(cfg, st, log)
			got := step(a, 3)
			if off {
				return
			}
			var ann string
			for _, e := range got {
				if e.Target == "node:2" && strings.Contains(e.Detail, `"policyRule":"acls[2]"`) {
					ann = e.Detail
				}
			}
			for _, want := range []string{"ann@example.com", "node:2", "node:1 100.64.0.1:8080", "(tcp)", "acls[2]", "Sat 00:00-24:00 UTC",
				base.Add(10 * time.Minute).Format("2006-01-02 15:04")} {
				if !strings.Contains(ann, want) {
					t.Errorf("ann's acls[2] alert %s lacks %q", ann, want)
				}
			}
			insert(deny(2, "ann@example.com", "time-window", "acls[2]", base.Add(40*time.Minute)))
			step(a, 3) // same hour, same alerter
			// A restarted alerter knows the hour's alert from the store.
			a = New(cfg, st, log)
			insert(deny(2, "ann@example.com", "time-window", "acls[2]", base.Add(50*time.Minute)))
			step(a, 3)
			insert(deny(2, "ann@example.com", "time-window", "acls[2]", base.Add(time.Hour))) // the next hour
			step(a, 4)
		})
	}
}
