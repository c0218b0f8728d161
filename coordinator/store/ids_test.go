package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestIDsNeverReused is the regression test for a deleted entity's ID or
// address passing to the next one created: after the newest node, user,
// pre-auth key and API key are deleted (and the store reopened), the next
// of each gets a new ID, and the next node a new address.
func TestIDsNeverReused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, path := bk.openTest(t)
		ctx := context.Background()
		ann, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember})
		must(t, err)
		bob, err := s.CreateUser(ctx, User{Name: "bob", Role: RoleMember})
		must(t, err)
		n1, err := s.CreateNode(ctx, newNode("one", ann.ID))
		must(t, err)
		n2, err := s.CreateNode(ctx, newNode("two", ann.ID))
		must(t, err)
		k, err := s.CreateAuthKey(ctx, AuthKey{Prefix: "a", Hash: []byte("a"), UserID: ann.ID})
		must(t, err)
		ak, err := s.CreateAPIKey(ctx, APIKey{Prefix: "b", Hash: []byte("b"), UserID: ann.ID})
		must(t, err)
		// The newest of each goes: the pre-auth and API keys with their
		// user, bob with nothing left that names him.
		must(t, s.DeleteNode(ctx, n2.ID))
		must(t, s.DeleteUser(ctx, bob.ID))
		must(t, s.Tx(ctx, func(q Queries) error {
			_, err := q.(queries).q.ExecContext(ctx, `DELETE FROM auth_keys; DELETE FROM api_keys`)
			return err
		}))
		must(t, s.Close())
		s, err = OpenURL(ctx, path, Options{})
		must(t, err)
		t.Cleanup(func() { s.Close() })

		n3, err := s.CreateNode(ctx, newNode("three", ann.ID))
		must(t, err)
		carl, err := s.CreateUser(ctx, User{Name: "carl", Role: RoleMember})
		must(t, err)
		k2, err := s.CreateAuthKey(ctx, AuthKey{Prefix: "c", Hash: []byte("c"), UserID: ann.ID})
		must(t, err)
		ak2, err := s.CreateAPIKey(ctx, APIKey{Prefix: "d", Hash: []byte("d"), UserID: ann.ID})
		must(t, err)
		for _, c := range []struct {
			what      string
			old, next int64
		}{
			{"node ID", int64(n2.ID), int64(n3.ID)},
			{"node IPv4", v4num(n2.IPv4), v4num(n3.IPv4)},
			{"user ID", int64(bob.ID), int64(carl.ID)},
			{"pre-auth key ID", int64(k.ID), int64(k2.ID)},
			{"API key ID", int64(ak.ID), int64(ak2.ID)},
		} {
			if c.next <= c.old {
				t.Errorf("%s: %d after %d was deleted, want above it", c.what, c.next, c.old)
			}
		}
		if n3.IPv6 == n2.IPv6 || n3.ID == n1.ID {
			t.Errorf("node three %+v reuses node one's or two's identity", n3)
		}
	})
}

// TestHighWaterSeededFromAudit: a database from before migration 6 that
// already reused nothing still knows, from its audit log, the IDs of
// deleted nodes and users, and never hands them out again.
func TestHighWaterSeededFromAudit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, path := bk.openTest(t)
		ctx := context.Background()
		n, err := s.CreateNode(ctx, newNode("gone", 1))
		must(t, err)
		must(t, s.AppendAudit(ctx, AuditEvent{Time: time.Now(), Actor: "system", Action: "node.register", Target: fmt.Sprintf("node:%d", n.ID+40), Outcome: "ok"}))
		must(t, s.AppendAudit(ctx, AuditEvent{Time: time.Now(), Actor: "system", Action: "user.create", Target: "user:17", Outcome: "ok"}))
		// An ID too long to be real is not taken as the high-water mark (it
		// would overflow the next ID).
		must(t, s.AppendAudit(ctx, AuditEvent{Time: time.Now(), Actor: "system", Action: "node.delete", Target: "node:99999999999999999999", Outcome: "ok"}))
		must(t, s.DeleteNode(ctx, n.ID))
		must(t, s.Tx(ctx, func(q Queries) error {
			_, err := q.(queries).q.ExecContext(ctx, `DROP TABLE high_water; ALTER TABLE users DROP COLUMN totp_last_step; ALTER TABLE auth_keys DROP COLUMN creator_id;
			ALTER TABLE nodes DROP COLUMN given_name; ALTER TABLE nodes DROP COLUMN advertised_routes; ALTER TABLE nodes DROP COLUMN approved_routes;
			DROP TABLE node_attrs; ALTER TABLE api_keys DROP COLUMN role; ALTER TABLE api_keys DROP COLUMN name;
			DROP TABLE sink_cursors; DROP TABLE flows; DROP INDEX audit_actor; DROP INDEX audit_target; DROP TABLE access_requests;
			DROP TABLE changes; DROP TABLE replicas; DROP TABLE node_sessions; DROP TABLE leases; DROP TABLE ssh_sessions; ALTER TABLE users DROP COLUMN display_name;
			DELETE FROM schema_migrations WHERE version >= 6`)
			return err
		}))
		must(t, s.Close())
		s, err = OpenURL(ctx, path, Options{})
		must(t, err)
		defer s.Close()
		n2, err := s.CreateNode(ctx, newNode("new", 1))
		must(t, err)
		u, err := s.CreateUser(ctx, User{Name: "new", Role: RoleMember})
		must(t, err)
		if n2.ID != n.ID+41 || u.ID != 18 {
			t.Fatalf("node %d and user %d after the audit log named node %d and user 17", n2.ID, u.ID, n.ID+40)
		}
	})
}

// TestTOTPLastStep: the step of the last accepted TOTP code is stored
// with the user (migration 6) and survives a reopen.
func TestTOTPLastStep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, path := bk.openTest(t)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember, TOTPLastStep: 7})
		must(t, err)
		if u.TOTPLastStep != 7 {
			t.Fatalf("created with step 7: %d", u.TOTPLastStep)
		}
		u.TOTPLastStep = 59000001
		must(t, s.UpdateUser(ctx, u))
		must(t, s.Close())
		s, err = OpenURL(ctx, path, Options{})
		must(t, err)
		defer s.Close()
		if got, err := s.GetUser(ctx, u.ID); err != nil || got.TOTPLastStep != 59000001 {
			t.Fatalf("after reopen: step %d, %v", got.TOTPLastStep, err)
		}
	})
}
