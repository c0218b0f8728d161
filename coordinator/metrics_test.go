package coordinator

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/warrenmesh/warren/coordinator/audit"
)

// TestAuditEventsCounted: sign-ins and policy loads are counted from
// their audit events; other events are not.
func TestAuditEventsCounted(t *testing.T) {
	m := newCoordMetrics()
	for _, e := range []audit.Event{
		{Action: "login.local", Outcome: audit.OK},
		{Action: "login.local", Outcome: audit.Denied},
		{Action: "login.oidc", Outcome: audit.OK},
		{Action: "login.oidc", Outcome: audit.OK},
		{Action: "policy.apply", Outcome: audit.OK},
		{Action: "policy.apply", Outcome: audit.Failed},
		{Action: "policy.reject", Outcome: audit.Failed},
		{Action: "user.disable", Outcome: audit.OK},
	} {
		m.onAudit(e)
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"local", "ok"}, 1},
		{[]string{"local", "denied"}, 1},
		{[]string{"oidc", "ok"}, 2},
		{[]string{"oidc", "denied"}, 0},
	} {
		if got := counterValue(t, m.signIns.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("sign-ins %v = %v, want %v", c.labels, got, c.want)
		}
	}
	if got := counterValue(t, m.policy.WithLabelValues("applied")); got != 1 {
		t.Errorf("applied = %v, want 1", got)
	}
	if got := counterValue(t, m.policy.WithLabelValues("failed")); got != 2 {
		t.Errorf("failed = %v, want 2", got)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
