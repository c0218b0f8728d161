package coordinator_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/pgtest"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestConfigStore runs a coordinator on each kind of store URL: a node
// registers through it, and the database the URL names (not the state
// directory's warren.db) holds the node once it is registered.
func TestConfigStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite URL", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "elsewhere.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.NewDatabase(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url(t)
			stateDir := t.TempDir()
			s := serve(t, coordinator.Config{StateDir: stateDir, Store: url})
			s.join(t, wire.ProtocolVersion)
			if _, err := os.Stat(filepath.Join(stateDir, "warren.db")); !os.IsNotExist(err) {
				t.Fatalf("warren.db in the state directory: %v", err)
			}
			st, err := store.OpenURL(context.Background(), url, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			nodes, err := st.ListNodes(context.Background())
			if err != nil || len(nodes) != 1 {
				t.Fatalf("nodes in the store: %v, %v", nodes, err)
			}
		})
	}
}
