package policyfile

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/internal/policy"
)

// TestReplicasShareTheStoredPolicy: two replicas' managers on one store,
// each with its own file. A replica starting with a different file puts
// the stored version in force and writes it over its file; a policy
// applied through one is put in force on the other by Sync, which also
// rewrites the other's file, and a second Sync changes nothing.
func TestReplicasShareTheStoredPolicy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.write(goodPolicy)
	replicaManager := func(path string) (*Manager, *int) {
		applies := new(int)
		m, err := New(Config{Path: path, Store: f.store, Audit: audit.New(f.store, nil), Replica: true,
			Apply: func(*policy.Policy) { *applies++ }})
		must(t, err)
		return m, applies
	}
	a, _ := replicaManager(f.path)
	must(t, a.Load(ctx))
	pathB := filepath.Join(t.TempDir(), "policy.hujson")
	must(t, os.WriteFile(pathB, []byte(DefaultSource), 0o640))
	b, appliesB := replicaManager(pathB)
	must(t, b.Load(ctx))
	fileB := func() string {
		src, err := os.ReadFile(pathB)
		must(t, err)
		return string(src)
	}
	if b.Status().Hash != a.Status().Hash || fileB() != goodPolicy {
		t.Fatalf("B started with %+v, file %q; want the stored version in force and in its file", b.Status(), fileB())
	}
	if vs, _ := f.store.ListPolicies(ctx, 0); len(vs) != 1 {
		t.Fatalf("%d versions, want 1: B's own file is no new version", len(vs))
	}

	edited := goodPolicy + "\n"
	if changed, err := a.Apply(ctx, "user:ann@example.com", []byte(edited)); err != nil || !changed {
		t.Fatalf("Apply on A: %v, %v", changed, err)
	}
	before := *appliesB
	must(t, b.Sync(ctx))
	if b.Status().Source != edited || fileB() != edited || *appliesB != before+1 {
		t.Fatalf("after Sync B has %+v, file %q, %d applies", b.Status(), fileB(), *appliesB-before)
	}
	must(t, b.Sync(ctx))
	if *appliesB != before+1 {
		t.Errorf("a second Sync applied the policy again")
	}
}
