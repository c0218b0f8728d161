package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/keyring"
	"github.com/warrenmesh/warren/coordinator/store"
)

// TestStoreFlag: serve refuses a store URL it cannot use, saying what to
// write instead, and secrets rotate seals again the secrets of the
// database --store names (not a warren.db in the state directory).
func TestStoreFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = runCLI(t, "serve", "--state-dir", t.TempDir(), "--listen", addr, "--no-relay", "--stun-listen", "",
		"--store", "mysql://db/warren")
	if err == nil || !strings.Contains(err.Error(), `unknown scheme "mysql"`) {
		t.Fatalf("serve with a mysql:// store: %v", err)
	}

	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(t.TempDir(), "elsewhere.db")
	ctx := context.Background()
	c, err := coordinator.New(ctx, coordinator.Config{StateDir: dir, Store: url})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Store().CreateUser(ctx, store.User{Name: "ann", Role: store.RoleMember, TOTPSecret: "JBSWY3DPEHPK3PXP"})
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	before, err := keyring.Load(filepath.Join(dir, coordinator.SecretsKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "secrets", "rotate", "--state-dir", dir, "--store", url)
	if _, err := os.Stat(filepath.Join(dir, "warren.db")); !os.IsNotExist(err) {
		t.Fatalf("warren.db made in the state directory: %v", err)
	}
	ring, err := keyring.Load(filepath.Join(dir, coordinator.SecretsKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ring.IDs()) != 1 || ring.IDs()[0] == before.IDs()[0] {
		t.Fatalf("ring %v after rotation, %v before", ring.IDs(), before.IDs())
	}
	st, err := store.OpenURL(ctx, url, store.Options{Secrets: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if u, err := st.GetUserByName(ctx, "ann"); err != nil || u.TOTPSecret != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("after rotation with the new key only: %+v, %v", u, err)
	}
}
