package main

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

func TestPrintStatusPosture(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name          string
		p             *localapi.PostureStatus
		denials, attr []string // lines expected in each part; nil: the part prints nothing
	}{
		{name: "nothing"},
		{name: "empty", p: &localapi.PostureStatus{}},
		{
			name: "denied, with attributes of every kind",
			p: &localapi.PostureStatus{
				Denials: []localapi.PostureDenial{
					{Destination: "tag:db:5432", Posture: "posture:managed", Reason: "node:diskEncrypted is false (needs == true)"},
					{Destination: "tag:web:443", Posture: "posture:mac", Reason: "node:osVersion is \"14.6\" (needs >= \"15.0\")"},
				},
				Attrs: []localapi.PostureAttr{
					{Name: "node:diskEncrypted", Value: "false", Source: "node", CollectedAt: now.Add(-2 * time.Minute)},
					{Name: "node:os", Value: "linux", Source: "node", CollectedAt: now.Add(-20 * time.Minute), Stale: true},
					{Name: "custom:mdmCompliant", Value: "true", Source: "integration mdm-sync", Expires: now.Add(24 * time.Hour)},
				},
			},
			denials: []string{
				"denied tag:db:5432: needs posture:managed: node:diskEncrypted is false (needs == true)",
				"denied tag:web:443: needs posture:mac: node:osVersion is \"14.6\" (needs >= \"15.0\")",
				"fix the device",
			},
			attr: []string{
				"ATTRIBUTE", "2m0s ago",
				"node:os", "20m0s ago, stale: counts as absent",
				"custom:mdmCompliant", "integration mdm-sync", "expires in 24h0m0s",
			},
		},
		{
			name: "stale MFA",
			p: &localapi.PostureStatus{MFA: []localapi.MFADenial{
				{Destination: "tag:db:5432", Rule: "acls[2]", MaxAge: 15 * time.Minute},
				{Destination: "tag:prod:22", Rule: "acls[4]", MaxAge: 12 * time.Hour},
			}},
			denials: []string{
				"tag:db:5432 needs MFA within 15m (rule acls[2]): run warren login --mfa",
				"tag:prod:22 needs MFA within 12h (rule acls[4]): run warren login --mfa",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d, a bytes.Buffer
			printPostureDenials(&d, tc.p)
			if err := printPostureAttrs(&a, tc.p, now); err != nil {
				t.Fatal(err)
			}
			for _, part := range []struct {
				out  string
				want []string
			}{{d.String(), tc.denials}, {a.String(), tc.attr}} {
				if part.want == nil && part.out != "" {
					t.Errorf("printed %q, want nothing", part.out)
				}
				for _, w := range part.want {
					if !strings.Contains(part.out, w) {
						t.Errorf("output %q lacks %q", part.out, w)
					}
				}
			}
			if tc.attr != nil && !hasRow(a.String(), "node:diskEncrypted", "false", "node", "2m0s", "ago") {
				t.Errorf("output %q lacks the diskEncrypted row", a.String())
			}
		})
	}
}

// TestStatusShowsPostureDenials runs a real coordinator and two real
// nodes: ann's laptop may reach bob's server only with an encrypted disk.
// warren status on the laptop names the rule it fails and why, in words
// and in --json, and the attributes the coordinator holds; once the
// laptop reports the fixed attribute, the denial is gone and the server
// is a peer. The laptop's collector is replaced by one the test steers;
// its reports take the real path (control channel, store, engine).
func TestStatusShowsPostureDenials(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a mesh")
	}
	m := testmesh.New(t, testmesh.Options{Policy: `{
		"postures": {"posture:managed": ["node:diskEncrypted == true"]},
		"acls": [{"action": "accept", "src": ["ann@example.com"], "dst": ["bob@example.com:80"], "srcPosture": ["posture:managed"]}],
	}`})
	ann, bob := m.User("ann@example.com"), m.User("bob@example.com")
	srv := m.AddDaemon("srv")
	if _, _, err := srv.Up(localapi.UpRequest{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bob.ID})}, nil); err != nil {
		t.Fatalf("srv up: %v", err)
	}
	var disk atomic.Value // "" (not reported), "true" or "false"
	disk.Store("")
	laptop := m.AddDaemonWith("laptop", func(c *daemon.Config) {
		c.PostureInterval = 50 * time.Millisecond
		c.PostureCollect = func(context.Context) map[string]wire.PostureValue {
			attrs := map[string]wire.PostureValue{}
			if v := disk.Load().(string); v != "" {
				attrs["node:diskEncrypted"] = wire.PostureValue{Value: v, CollectedAt: time.Now()}
			}
			return attrs
		}
	})
	if _, _, err := laptop.Up(localapi.UpRequest{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})}, nil); err != nil {
		t.Fatalf("laptop up: %v", err)
	}
	sock := serveDaemon(t, laptop.Daemon)
	report := func(encrypted string) { disk.Store(encrypted) }
	denial := func(reason string) func() bool {
		return func() bool {
			p := laptop.Status(context.Background()).Posture
			return p != nil && len(p.Denials) == 1 && p.Denials[0].Reason == reason
		}
	}

	// Nothing reported yet: denied, and told so.
	poll.UntilTrue(t, wait, "the laptop to hear its denial", denial("node:diskEncrypted is not reported"))
	out, _, err := warren(t, "--socket", sock, "status")
	want := "denied bob@example.com:80: needs posture:managed: node:diskEncrypted is not reported"
	if err != nil || !strings.Contains(out, want) || !strings.Contains(out, "No peers") {
		t.Fatalf("status: %q, %v; want %q and no peers", out, err, want)
	}

	// An unencrypted disk: the value seen is named, and listed.
	report("false")
	poll.UntilTrue(t, wait, "the laptop to hear why", denial("node:diskEncrypted is false (needs == true)"))
	out, _, err = warren(t, "--socket", sock, "status")
	want = "denied bob@example.com:80: needs posture:managed: node:diskEncrypted is false (needs == true)"
	if err != nil || !strings.Contains(out, want) || !hasRow(out, "node:diskEncrypted", "false", "node") {
		t.Fatalf("status: %q, %v; want %q and the attribute", out, err, want)
	}
	js := status(t, sock)
	if js.Posture == nil || len(js.Posture.Denials) != 1 || js.Posture.Denials[0].Destination != "bob@example.com:80" ||
		len(js.Posture.Attrs) != 1 || js.Posture.Attrs[0].Value != "false" || js.Posture.Attrs[0].Source != "node" {
		t.Fatalf("status --json posture: %+v", js.Posture)
	}

	// Fixed: no denial, and the server is a peer.
	report("true")
	poll.UntilTrue(t, wait, "the laptop to see srv", func() bool {
		st := laptop.Status(context.Background())
		return len(st.Peers) == 1 && st.Posture != nil && len(st.Posture.Denials) == 0
	})
	out, _, err = warren(t, "--socket", sock, "status")
	if err != nil || strings.Contains(out, "denied") || !strings.Contains(out, "srv") || !hasRow(out, "node:diskEncrypted", "true", "node") {
		t.Fatalf("status after the fix: %q, %v", out, err)
	}
}

// hasRow reports whether some line of a table starts with cells.
func hasRow(out string, cells ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(cells) && strings.Join(f[:len(cells)], " ") == strings.Join(cells, " ") {
			return true
		}
	}
	return false
}
