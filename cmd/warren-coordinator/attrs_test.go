package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// TestAttrsCLI: attrs set/unset and nodes attrs, in tables and JSON;
// node: attributes and malformed pairs are refused with a non-zero
// status; apikeys create makes an integration key.
func TestAttrsCLI(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	mustCLI(t, "users", "create", "ann@example.com", "--admin", sd)
	st, err := store.Open(context.Background(), filepath.Join(dir, "warren.db"), nil)
	must(t, err)
	_, err = st.CreateNode(context.Background(), store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), UserID: 1, Hostname: "laptop"})
	must(t, err)
	must(t, st.Close())

	out := mustCLI(t, "attrs", "set", "1", "custom:mdmCompliant=true", "--expires", "24h", sd)
	if !strings.HasPrefix(out, "ID") || !strings.Contains(out, "custom:mdmCompliant") || !strings.Contains(out, "admin local:uid=") {
		t.Fatalf("attrs set printed:\n%s", out)
	}
	var na api.NodeAttrs
	if err := json.Unmarshal([]byte(mustCLI(t, "nodes", "attrs", "1", "--json", sd)), &na); err != nil {
		t.Fatal(err)
	}
	if len(na.Attrs) != 1 || na.Attrs[0].Value != "true" || na.Attrs[0].Expires.IsZero() || na.Name != "laptop" {
		t.Fatalf("nodes attrs --json: %+v", na)
	}
	var all []api.NodeAttrs
	if err := json.Unmarshal([]byte(mustCLI(t, "attrs", "list", "--json", sd)), &all); err != nil || len(all) != 1 {
		t.Fatalf("attrs list --json: %+v, %v", all, err)
	}
	mustCLI(t, "attrs", "unset", "1", "custom:mdmCompliant", sd)
	if out := mustCLI(t, "nodes", "attrs", "1", sd); strings.Contains(out, "mdmCompliant") {
		t.Fatalf("after unset:\n%s", out)
	}
	for _, bad := range [][]string{
		{"attrs", "set", "1", "node:diskEncrypted=true", sd},
		{"attrs", "set", "1", "custom:mdmCompliant", sd},
		{"attrs", "set", "1", "custom:a=1", "--expires", "yesterday", sd},
		{"attrs", "set", "1", sd},
		{"attrs", "unset", "1", "custom:notSet", sd},
		{"nodes", "attrs", "999", sd},
		{"apikeys", "create", "--role", "integration", sd},
	} {
		if _, err := runCLI(t, bad...); err == nil || exitCode(err) == 0 {
			t.Errorf("%v succeeded", bad)
		}
	}
	out = mustCLI(t, "apikeys", "create", "--role", "integration", "--name", "mdm-sync", "--user", "ann@example.com", sd)
	if !strings.Contains(out, "integration API key") || !strings.Contains(out, "wak_") {
		t.Fatalf("apikeys create --role integration printed %q", out)
	}
	if out := mustCLI(t, "apikeys", "list", sd); !strings.Contains(out, "integration mdm-sync") {
		t.Fatalf("apikeys list:\n%s", out)
	}
}
