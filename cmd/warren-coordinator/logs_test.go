package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// TestFlowsCLI: warren-coordinator flows selects by time, user, source
// node, destination (tag, node, address), port and verdict, as a table
// or JSON; a bad filter is an error (non-zero exit).
func TestFlowsCLI(t *testing.T) {
	c, dir := startCoordinatorC(t)
	sd := "--state-dir=" + dir
	ctx := context.Background()
	st := c.Store()
	ann, err := st.CreateUser(ctx, store.User{Name: "ann@example.com", Role: store.RoleMember})
	must(t, err)
	node := func(host string, tags ...string) store.Node {
		n, err := st.CreateNode(ctx, store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(),
			DiscoKey: key.NewDisco().Public(), UserID: ann.ID, Hostname: host, Tags: tags, Created: time.Now()})
		must(t, err)
		return n
	}
	laptop, db, web := node("laptop"), node("db", "tag:db"), node("web", "tag:web")
	now := time.Now().UTC()
	var flows []store.Flow
	add := func(n int, dst store.Node, port uint16, verdict string, age time.Duration) {
		for range n {
			f := store.Flow{ID: fmt.Sprintf("%d-x-%d", dst.ID, len(flows)), Reporter: dst.ID, Start: now.Add(-age - time.Second), End: now.Add(-age),
				Src: netip.AddrPortFrom(laptop.IPv4, 40000), Dst: netip.AddrPortFrom(dst.IPv4, port), Proto: 6,
				SrcNode: laptop.ID, SrcUser: "ann@example.com", DstNode: dst.ID, DstTags: dst.Tags,
				PacketsIn: 3, BytesIn: 300, Verdict: verdict, Rule: "acls[0]"}
			if verdict == "deny" {
				f.Rule, f.Reason, f.Count = "", "no-rule", 5
			}
			flows = append(flows, f)
		}
	}
	add(4, db, 5432, "accept", time.Minute)
	add(3, db, 22, "deny", time.Minute)
	add(2, web, 443, "accept", 2*time.Hour)
	add(1, web, 22, "deny", 3*24*time.Hour)
	_, err = st.InsertFlows(ctx, flows)
	must(t, err)

	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 10},
		{[]string{"--since", "1h"}, 7},
		{[]string{"--since", "7d", "--until", "1h"}, 3},
		{[]string{"--dst", "tag:db"}, 7},
		{[]string{"--dst", "tag:db", "--denied"}, 3},
		{[]string{"--dst", "web"}, 3},
		{[]string{"--dst", fmt.Sprint(web.ID), "--port", "443"}, 2},
		{[]string{"--dst", db.IPv4.String(), "--port", "5432"}, 4},
		{[]string{"--dst", "tag:nothing"}, 0},
		{[]string{"--user", "ann@example.com", "--denied"}, 4},
		{[]string{"--user", "bob@example.com"}, 0},
		{[]string{"--src", "laptop", "--since", "1h", "--denied"}, 3},
		{[]string{"--src", "db"}, 0},
		{[]string{"--limit", "2"}, 2},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var got []api.Flow
			must(t, json.Unmarshal([]byte(mustCLI(t, append([]string{"flows", "--json", sd}, tc.args...)...)), &got))
			if len(got) != tc.want {
				t.Fatalf("%d flows, want %d", len(got), tc.want)
			}
		})
	}
	table := mustCLI(t, "flows", "--dst", "tag:db", "--denied", "--limit", "1", sd)
	if !strings.Contains(table, "no-rule") || !strings.Contains(table, "5 denied") || !strings.Contains(table, "[tag:db]") {
		t.Errorf("table:\n%s", table)
	}
	for _, bad := range [][]string{{"--since", "yesterday"}, {"--port", "70000"}, {"extra"}} {
		if _, err := runCLI(t, append([]string{"flows", sd}, bad...)...); err == nil {
			t.Errorf("flows %v: no error", bad)
		}
	}
}

// TestAuditCLIFilters: warren-coordinator audit filters by actor,
// target, outcome and time besides action.
func TestAuditCLIFilters(t *testing.T) {
	c, dir := startCoordinatorC(t)
	sd := "--state-dir=" + dir
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	for _, e := range []store.AuditEvent{
		{Time: old, Actor: "user:ann@example.com", Action: "node.delete", Target: "node:7", Outcome: "ok"},
		{Time: time.Now(), Actor: "user:bob@example.com", Action: "node.delete", Target: "node:8", Outcome: "denied"},
	} {
		must(t, c.Store().AppendAudit(ctx, e))
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--actor", "user:ann@example.com"}, 1},
		{[]string{"--action", "node.delete", "--outcome", "denied"}, 1},
		{[]string{"--target", "node:7"}, 1},
		{[]string{"--action", "node.delete", "--until", "1d"}, 1},
		{[]string{"--action", "node.delete", "--since", "1d"}, 1},
		{[]string{"--action", "node.delete"}, 2},
	} {
		var got []api.AuditEvent
		must(t, json.Unmarshal([]byte(mustCLI(t, append([]string{"audit", "--json", sd}, tc.args...)...)), &got))
		if len(got) != tc.want {
			t.Errorf("audit %v: %d events, want %d", tc.args, len(got), tc.want)
		}
	}
}
