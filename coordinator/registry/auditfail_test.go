package registry

import (
	"context"
	"database/sql"
	"testing"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// failAudit makes every later audit insert fail, as a full disk would,
// with a trigger written through a connection of its own.
func (h *harness) failAudit() {
	h.t.Helper()
	db, err := sql.Open("sqlite", h.dbPath)
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_full BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
		h.t.Fatal(err)
	}
}

// A change whose audit event cannot be stored is not made (issue 11,
// defect 6): registrations, user and key changes all commit with their
// audit event or not at all.
func TestChangeWithoutAuditIsNotMade(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	laptop := h.register(key.MachinePublic{}, ann.ID)
	_, plain := h.reusableKey(testAdmin, ann.ID)
	before, err := h.st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	h.failAudit()

	if _, err := h.join(plain); err == nil {
		t.Error("registration succeeded without its audit event")
	}
	if _, err := h.r.CreateUser(ctx, testAdmin, store.User{Name: "bob@example.com"}); err == nil {
		t.Error("user created without its audit event")
	}
	if _, err := h.r.SetUserDisabled(ctx, testAdmin, ann.ID, true); err == nil {
		t.Error("user disabled without its audit event")
	}
	if err := h.r.DeleteNode(ctx, testAdmin, laptop.ID); err == nil {
		t.Error("node deleted without its audit event")
	}
	if _, _, err := h.r.CreateAuthKey(ctx, testAdmin, AuthKeyRequest{UserID: ann.ID}); err == nil {
		t.Error("key created without its audit event")
	}

	nodes, _ := h.st.ListNodes(ctx)
	users, _ := h.st.ListUsers(ctx)
	keys, _ := h.st.ListAuthKeys(ctx)
	after, _ := h.st.ListAudit(ctx, store.AuditFilter{})
	if len(nodes) != 1 || len(users) != 1 || users[0].Disabled || len(keys) != 2 || keys[1].UsedCount != 0 {
		t.Fatalf("state changed without audit: %d nodes, users %+v, keys %+v", len(nodes), users, keys)
	}
	if len(after) != len(before) {
		t.Fatalf("audit log changed: %d events, want %d", len(after), len(before))
	}
}
