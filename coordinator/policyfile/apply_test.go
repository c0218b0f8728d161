package policyfile

import (
	"context"
	"os"
	"testing"

	"github.com/warrenmesh/warren/coordinator/audit"
)

// TestApply: a policy applied through the API is recorded as its actor's,
// written to the file, and put in force; applying it again, the watcher's
// reload after the file changed, and re-saving the file with the same
// content add no version; an invalid policy changes nothing.
func TestApply(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	m := f.manager()
	must(t, m.Load(ctx))

	versions := func() []string {
		t.Helper()
		vs, err := f.store.ListPolicies(ctx, 0)
		must(t, err)
		var authors []string
		for _, v := range vs {
			authors = append(authors, v.Author)
		}
		return authors
	}
	fileIs := func(want string) {
		t.Helper()
		b, err := os.ReadFile(f.path)
		if err != nil || string(b) != want {
			t.Fatalf("policy file = %q, %v; want %q", b, err, want)
		}
	}

	changed, err := m.Apply(ctx, "user:ann@example.com", []byte(goodPolicy))
	if err != nil || !changed {
		t.Fatalf("Apply: %v, %v", changed, err)
	}
	fileIs(goodPolicy)
	if st := m.Status(); st.Author != "user:ann@example.com" || st.Source != goodPolicy || st.Version != 2 {
		t.Fatalf("status after Apply: %+v", st)
	}
	if fi, err := os.Stat(f.path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("policy file mode: %v, %v", fi.Mode(), err)
	}

	// Nothing below adds a version.
	if changed, err := m.Apply(ctx, "user:bob@example.com", []byte(goodPolicy)); err != nil || changed {
		t.Fatalf("identical Apply: %v, %v", changed, err)
	}
	must(t, m.Reload(ctx, "")) // what the watcher does after the rename
	f.write(goodPolicy)        // an identical re-save by an editor
	must(t, m.Reload(ctx, ""))
	must(t, m.Reload(ctx, "local:root"))
	if got := versions(); len(got) != 2 || got[0] != "user:ann@example.com" {
		t.Fatalf("versions (newest first) by %q, want ann's and the first file's", got)
	}

	// An invalid policy: refused, audited, file and status untouched.
	if changed, err := m.Apply(ctx, "user:ann@example.com", []byte(failingTest)); err == nil || changed {
		t.Fatalf("Apply of a policy whose test fails: %v, %v", changed, err)
	}
	fileIs(goodPolicy)
	if st := m.Status(); st.Version != 2 || st.Rejected != nil {
		t.Fatalf("status after a refused Apply: %+v", st)
	}
	refused := 0
	for _, e := range f.audit("policy.apply") {
		if e.Outcome == audit.Failed && e.Actor == "user:ann@example.com" {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("%d refused policy.apply events, want 1", refused)
	}

	// A refused edit on disk is put back by applying what is in force,
	// still without a new version.
	f.write("{\"acls\": [}")
	if err := m.Reload(ctx, ""); err == nil || m.Status().Rejected == nil {
		t.Fatalf("broken file: %v, %+v", err, m.Status())
	}
	if changed, err := m.Apply(ctx, "user:ann@example.com", []byte(goodPolicy)); err != nil || changed {
		t.Fatalf("Apply over a broken file: %v, %v", changed, err)
	}
	fileIs(goodPolicy)
	if st := m.Status(); st.Rejected != nil || len(versions()) != 2 {
		t.Fatalf("after restoring the file: %+v, versions %v", st, versions())
	}
	entries, err := os.ReadDir(f.dir)
	must(t, err)
	for _, e := range entries {
		if e.Name() != "policy.hujson" && e.Name() != "policy.hujson.tmp" && !isDB(e.Name()) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func isDB(name string) bool {
	switch name {
	case "warren.db", "warren.db-wal", "warren.db-shm":
		return true
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
