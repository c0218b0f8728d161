package testmesh

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/alert"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/flowspool"
)

// TestDenyBurstAlert: a laptop scans 300 UDP ports of a server; the
// server's filter records the denies, its spool ships them, the
// coordinator stores them, and the alerter's deny-burst rule (threshold
// 200) raises an alert that reaches the alert webhook as text naming the
// laptop's address. Deny aggregates are per minute, so this takes up to
// a minute.
func TestDenyBurstAlert(t *testing.T) {
	var mu sync.Mutex
	var texts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var msg struct{ Text string }
		_ = json.Unmarshal(b, &msg)
		mu.Lock()
		texts = append(texts, msg.Text)
		mu.Unlock()
	}))
	defer hook.Close()
	m := New(t, Options{Policy: flowPolicy, Coordinator: coordinator.Config{
		Alerts: &alert.Config{Poll: 100 * time.Millisecond, DenyBurst: 200}, AlertWebhook: hook.URL}})
	ann := m.User("ann@example.com")
	spool, err := flowspool.Open(t.TempDir(), flowspool.DefaultSize, nil)
	must(t, err)
	db := m.AddNode("db", NodeOptions{DataPlane: true, FlowSink: spool.Append, FlowInterval: 100 * time.Millisecond, Flows: spool,
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:db"}}), Tags: []string{"tag:db"}})
	laptop := m.AddNode("ann-laptop", NodeOptions{DataPlane: true, AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})})
	for _, n := range []*Node{db, laptop} {
		must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool {
			return len(nm.Peers) == 1 && len(nm.Peers[0].Endpoints) > 0 && n.Engine() != nil
		}))
	}
	dbAddr, laptopAddr := addr4(t, db), addr4(t, laptop)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	drops := func() uint64 { return db.Engine().FilterStats().Dropped["no-rule"] }
	for first := uint16(20000); first < 20300; first += 50 {
		for port := first; port < first+50; port++ {
			c, err := laptop.Engine().DialContext(ctx, "udp", netip.AddrPortFrom(dbAddr, port))
			must(t, err)
			_, _ = c.Write([]byte("scan"))
			c.Close()
		}
		want := uint64(first + 50 - 20000)
		poll.UntilTrue(t, wait, "the scan to reach db", func() bool { return drops() >= want })
	}
	// Deny aggregates leave the node once their minute is over.
	poll.Until(t, 100*time.Second, "the deny-burst alert on the webhook", func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, text := range texts {
			if strings.Contains(text, "alert.deny-burst") && strings.Contains(text, laptopAddr.String()) {
				return nil
			}
		}
		return fmt.Errorf("webhook got %q", texts)
	})
}

// TestPostureFailureAlert: a laptop that met its posture (disk encrypted)
// and then reports an unencrypted disk raises a posture-failure alert in
// the audit trail.
func TestPostureFailureAlert(t *testing.T) {
	m := New(t, Options{Policy: `{
		"tagOwners": {"tag:db": ["ann@example.com"]},
		"postures": {"posture:encrypted": ["node:diskEncrypted == true"]},
		"acls": [{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:5432"], "srcPosture": ["posture:encrypted"]}],
	}`, Coordinator: coordinator.Config{Alerts: &alert.Config{Poll: 50 * time.Millisecond}}})
	ann := m.User("ann@example.com")
	m.AddNode("db", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:db"}}), Tags: []string{"tag:db"}})
	laptop := m.AddNode("ann-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})})
	laptop.Client.SetPosture(diskReport("true"))
	must(t, laptop.WaitFor(wait, HasPeers("db")))
	// Let the alerter see the laptop compliant before it fails: it judges
	// the audit trail, then the postures, in each round, so once the
	// alert for a second admin action is recorded, a whole round has run
	// since the laptop became compliant.
	ctx := context.Background()
	admin := registry.Actor{Name: "test:admin", Admin: true}
	for i, name := range []string{"x1@example.com", "x2@example.com"} {
		u := m.User(name)
		_, err := m.Coord.Registry().SetUserDisabled(ctx, admin, u.ID, true)
		must(t, err)
		poll.UntilTrue(t, wait, "the admin-action alert", func() bool {
			evs, err := m.Coord.Store().ListAudit(ctx, store.AuditFilter{Action: "alert.admin-action"})
			n := 0
			for _, e := range evs {
				if strings.Contains(e.Detail, "user.disable") {
					n++
				}
			}
			return err == nil && n > i
		})
	}
	laptop.Client.SetPosture(diskReport("false"))
	must(t, laptop.WaitFor(wait, HasPeers()))
	id := laptop.Netmap().Self.ID
	poll.Until(t, wait, "the posture-failure alert", func() error {
		evs, err := m.Coord.Store().ListAudit(ctx, store.AuditFilter{Action: "alert.posture-failure"})
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.Target == fmt.Sprintf("node:%d", id) {
				return nil
			}
		}
		return fmt.Errorf("posture alerts: %+v", evs)
	})
}
