package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/node/localapi"
)

func TestPrintPosture(t *testing.T) {
	now := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	rep := localapi.PostureReport{Reporting: true, Interval: 5 * time.Minute, Attrs: []localapi.PostureAttr{
		{Name: "node:diskEncrypted", Value: "true", CollectedAt: now.Add(-90 * time.Second)},
		{Name: "node:os", Value: "linux", CollectedAt: now},
	}}
	var b bytes.Buffer
	if err := printPosture(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ATTRIBUTE           VALUE  COLLECTED\n",
		"node:diskEncrypted  true   1m30s ago\n",
		"node:os             linux  just now\n",
		"Reported to the coordinator at start, on network changes and every 5m0s.",
		"cannot determine is not listed",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	// The coordinator's view: the denial first, its attributes last.
	b.Reset()
	rep.Coordinator = &localapi.PostureStatus{
		Attrs:   []localapi.PostureAttr{{Name: "custom:mdmCompliant", Value: "false", Source: "integration mdm-sync"}},
		Denials: []localapi.PostureDenial{{Destination: "tag:db:5432", Posture: "posture:managed", Reason: "custom:mdmCompliant is false (needs == true)"}},
	}
	if err := printPosture(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	denial := strings.Index(got, "denied tag:db:5432: needs posture:managed: custom:mdmCompliant is false (needs == true)")
	table := strings.Index(got, "ATTRIBUTE")
	held := strings.Index(got, "The coordinator holds:")
	if denial != 0 || table < 0 || held < table || !strings.Contains(got[held:], "integration mdm-sync") {
		t.Errorf("with the coordinator's view:\n%s", got)
	}
	// Stale MFA only: said first too.
	b.Reset()
	rep.Coordinator = &localapi.PostureStatus{MFA: []localapi.MFADenial{{Destination: "tag:db:5432", Rule: "acls[1]", MaxAge: 15 * time.Minute}}}
	if err := printPosture(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "tag:db:5432 needs MFA within 15m (rule acls[1]): run warren login --mfa\n") {
		t.Errorf("with stale MFA:\n%s", b.String())
	}
	rep.Coordinator = nil
	b.Reset()
	rep.Reporting = false
	if err := printPosture(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "not reported (the node is not up: warren up)") {
		t.Errorf("down output:\n%s", b.String())
	}
}
