package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/keyring"
	"github.com/warrenmesh/warren/coordinator/store"
)

func TestSecretsRotate(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c, err := coordinator.New(ctx, coordinator.Config{StateDir: dir, Relay: coordinator.RelayConfig{Disable: true}})
	must(t, err)
	c.Close()
	ringPath := filepath.Join(dir, coordinator.SecretsKeyFile)
	dbPath := filepath.Join(dir, "warren.db")
	ring, err := keyring.Load(ringPath)
	must(t, err)
	st, err := store.OpenWith(ctx, dbPath, store.Options{Secrets: ring})
	must(t, err)
	u, err := st.CreateUser(ctx, store.User{Name: "ann", Role: store.RoleMember, TOTPSecret: "JBSWY3DPEHPK3PXP"})
	must(t, err)
	must(t, st.Close())

	// Not while the coordinator runs.
	ln, err := net.Listen("unix", filepath.Join(dir, "admin.sock"))
	must(t, err)
	if _, err := runCLI(t, "secrets", "rotate", "--state-dir", dir); err == nil || !strings.Contains(err.Error(), "stop it") {
		t.Fatalf("rotate beside a running coordinator: %v", err)
	}
	ln.Close()

	out := mustCLI(t, "secrets", "rotate", "--state-dir", dir)
	rotated, err := keyring.Load(ringPath)
	must(t, err)
	if ids := rotated.IDs(); len(ids) != 1 || ids[0] == ring.IDs()[0] || !strings.Contains(out, fmt.Sprintf("new key %d", ids[0])) {
		t.Fatalf("ring after rotate: %v (was %v); printed %q", ids, ring.IDs(), out)
	}
	db, err := sql.Open("sqlite", dbPath)
	must(t, err)
	var stored string
	must(t, db.QueryRow(`SELECT totp_secret FROM users WHERE id = ?`, u.ID).Scan(&stored))
	must(t, db.Close())
	if !rotated.Current(stored) {
		t.Fatalf("stored %q, not sealed with the new key", stored)
	}
	// The coordinator starts with the rotated ring and reads the secret.
	st, err = store.OpenWith(ctx, dbPath, store.Options{Secrets: rotated})
	must(t, err)
	defer st.Close()
	if got, err := st.GetUser(ctx, u.ID); err != nil || got.TOTPSecret != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("after rotate: %q, %v", got.TOTPSecret, err)
	}
	if ids := mustRotateKeepOld(t, dir); len(ids) != 2 || ids[0] != rotated.IDs()[0] {
		t.Fatal("--keep-old dropped keys")
	}
}

func mustRotateKeepOld(t *testing.T, dir string) []uint32 {
	t.Helper()
	mustCLI(t, "secrets", "rotate", "--keep-old", "--state-dir", dir)
	r, err := keyring.Load(filepath.Join(dir, coordinator.SecretsKeyFile))
	must(t, err)
	return r.IDs()
}
