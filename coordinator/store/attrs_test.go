package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestNodeAttrs: attributes are stored with their times and source,
// replaced by name, refreshed by prefix, deleted one by one, and go with
// their node.
func TestNodeAttrs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember})
		must(t, err)
		n, err := s.CreateNode(ctx, newNode("laptop", u.ID))
		must(t, err)
		other, err := s.CreateNode(ctx, newNode("desktop", u.ID))
		must(t, err)
		t0 := time.Unix(1_700_000_000, 0).UTC()
		disk := NodeAttr{Node: n.ID, Name: "node:diskEncrypted", Value: "false", Source: "node", CollectedAt: t0.Add(-time.Second), ReportedAt: t0}
		mdm := NodeAttr{Node: n.ID, Name: "custom:mdmCompliant", Value: "true", Source: "integration mdm-sync", ReportedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		for _, a := range []NodeAttr{disk, mdm, {Node: other.ID, Name: "node:os", Value: "linux", Source: "node", ReportedAt: t0}} {
			must(t, s.PutNodeAttr(ctx, a))
		}
		got, err := s.ListNodeAttrs(ctx, n.ID)
		must(t, err)
		if len(got) != 2 || got[0] != mdm || got[1] != disk {
			t.Fatalf("attributes of node %d = %+v; want %+v and %+v", n.ID, got, mdm, disk)
		}
		disk.Value = "true"
		must(t, s.PutNodeAttr(ctx, disk))
		t1 := t0.Add(time.Minute)
		touched, err := s.TouchNodeAttrs(ctx, n.ID, "node:", t1)
		must(t, err)
		if touched != 1 {
			t.Fatalf("touched %d attributes; want 1 (node: only)", touched)
		}
		got, err = s.ListNodeAttrs(ctx, n.ID)
		must(t, err)
		if got[1].Value != "true" || !got[1].ReportedAt.Equal(t1) || !got[0].ReportedAt.Equal(t0) {
			t.Fatalf("after replace and touch: %+v", got)
		}
		must(t, s.DeleteNodeAttr(ctx, n.ID, mdm.Name))
		if err := s.DeleteNodeAttr(ctx, n.ID, mdm.Name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting a missing attribute: %v; want ErrNotFound", err)
		}
		must(t, s.DeleteNode(ctx, n.ID))
		all, err := s.ListAllNodeAttrs(ctx)
		must(t, err)
		if len(all) != 1 || all[0].Node != other.ID {
			t.Fatalf("after deleting node %d: %+v; want only node %d's", n.ID, all, other.ID)
		}
	})
}

// TestAPIKeyRole: an API key's role and name are stored.
func TestAPIKeyRole(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "admin", Role: RoleAdmin})
		must(t, err)
		k, err := s.CreateAPIKey(ctx, APIKey{Prefix: "wak_x", Hash: []byte("h1"), UserID: u.ID, Role: APIKeyIntegration, Name: "mdm-sync"})
		must(t, err)
		got, err := s.GetAPIKey(ctx, k.ID)
		must(t, err)
		if got.Role != APIKeyIntegration || got.Name != "mdm-sync" {
			t.Fatalf("stored key role %q name %q", got.Role, got.Name)
		}
	})
}
