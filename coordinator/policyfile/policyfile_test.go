package policyfile

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait on the watcher; it only ends a hung test.
const wait = 10 * time.Second

const goodPolicy = `{
	"groups": {"group:eng": ["ann@example.com"]},
	"tagOwners": {"tag:db": []},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]}],
	"tests": [{"src": "ann@example.com", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]}],
}
`

// A policy whose own test fails: it must never be put in force.
const failingTest = `{
	"tagOwners": {"tag:db": []},
	"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:db:*"]}],
	"tests": [{"src": "ann@example.com", "deny": ["tag:db:22"]}],
}
`

// fixture is a manager over a real SQLite store in a temp dir, recording
// what it applies.
type fixture struct {
	t     *testing.T
	dir   string
	path  string
	store store.Store
	mu    sync.Mutex
	apply []*policy.Policy
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{t: t, dir: dir, path: filepath.Join(dir, "policy.hujson"), store: st}
}

func (f *fixture) manager() *Manager {
	f.t.Helper()
	m, err := New(Config{Path: f.path, Store: f.store, Audit: audit.New(f.store, nil), Apply: func(p *policy.Policy) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.apply = append(f.apply, p)
	}})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *fixture) applied() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.apply)
}

func (f *fixture) write(src string) {
	f.t.Helper()
	// Like an editor: write a temporary file and rename it over the policy.
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(src), 0o640); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) audit(action string) []store.AuditEvent {
	f.t.Helper()
	ev, err := f.store.ListAudit(context.Background(), store.AuditFilter{Action: action})
	if err != nil {
		f.t.Fatal(err)
	}
	return ev
}

func TestMissingFileGetsDefault(t *testing.T) {
	f := newFixture(t)
	m := f.manager()
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.path)
	if err != nil || string(b) != DefaultSource {
		t.Fatalf("default policy not written: %v", err)
	}
	st := m.Status()
	if st.Version == 0 || st.Source != DefaultSource || st.Rejected != nil || f.applied() != 1 {
		t.Fatalf("status %+v, %d applies", st, f.applied())
	}
}

func TestEditsAppliedAndBrokenEditsRejected(t *testing.T) {
	f := newFixture(t)
	f.write(goodPolicy)
	m := f.manager()
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	first := m.Status()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-m.Watching():
	case err := <-done:
		done <- err // for the deferred wait
		t.Fatalf("Run ended before watching: %v", err)
	}

	// A valid edit is applied and recorded with its diff.
	edited := strings.Replace(goodPolicy, `"tag:db:5432"]}]`, `"tag:db:5432,5433"]}]`, 1)
	f.write(edited)
	poll.UntilTrue(t, wait, "the edit to apply", func() bool { return m.Status().Source == edited })
	st := m.Status()
	if st.Version <= first.Version || f.applied() != 2 {
		t.Fatalf("status %+v after edit, %d applies", st, f.applied())
	}
	history, err := f.store.ListPolicies(ctx, 0)
	if err != nil || len(history) != 2 || !strings.Contains(history[0].Diff, "+") || !strings.Contains(history[0].Diff, "5433") {
		t.Fatalf("history %+v, %v", history, err)
	}
	if ev := f.audit("policy.apply"); len(ev) != 2 || !strings.Contains(ev[0].Detail, first.Hash) {
		t.Fatalf("apply events %+v", ev)
	}

	// A syntax error and a failing test are both refused; the edit above
	// stays in force.
	for _, bad := range []string{`{"acls": [ {"action": "accept", "src": ["*"], "dst": ["*:99999"]} ]}`, failingTest} {
		f.write(bad)
		poll.UntilTrue(t, wait, "the rejection", func() bool { r := m.Status().Rejected; return r != nil && r.Hash == hashSource([]byte(bad)) })
		if got := m.Status(); got.Hash != st.Hash || f.applied() != 2 {
			t.Fatalf("broken file replaced the policy: %+v", got)
		}
	}
	rej := f.audit("policy.reject")
	if len(rej) != 2 || rej[0].Outcome != audit.Failed {
		t.Fatalf("reject events %+v", rej)
	}
	if !strings.Contains(m.Status().Rejected.Error, ":") {
		t.Errorf("rejection without a position: %q", m.Status().Rejected.Error)
	}

	// Going back to the file in force clears the rejection without a new
	// version.
	f.write(edited)
	poll.UntilTrue(t, wait, "the rejection to clear", func() bool { return m.Status().Rejected == nil })
	if f.applied() != 2 {
		t.Fatalf("%d applies, want 2", f.applied())
	}
}

func TestRestartWithBrokenFileKeepsLastGood(t *testing.T) {
	f := newFixture(t)
	f.write(goodPolicy)
	if err := f.manager().Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.write(failingTest)
	m := f.manager()
	if err := m.Load(context.Background()); err != nil {
		t.Fatalf("restart with a broken file and a good history: %v", err)
	}
	if st := m.Status(); st.Source != goodPolicy || st.Rejected == nil {
		t.Fatalf("status after restart: %+v", st)
	}
}

func TestBrokenFileWithoutHistoryFails(t *testing.T) {
	f := newFixture(t)
	f.write("{\n  \"acls\": [\n    {\"action\": \"accept\", \"src\": [\"group:nobody\"], \"dst\": [\"*:*\"]},\n  ],\n}\n")
	err := f.manager().Load(context.Background())
	if err == nil || !strings.Contains(err.Error(), "group:nobody") || !strings.Contains(err.Error(), "3:") {
		t.Fatalf("Load = %v, want the unknown group with its line", err)
	}
}

func TestReloadRefusesNonRegularAndHugeFiles(t *testing.T) {
	f := newFixture(t)
	f.write(goodPolicy)
	m := f.manager()
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat(" ", maxFileSize+1)
	f.write(huge)
	if err := m.Reload(context.Background(), "user:ann@example.com"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge file: %v", err)
	}
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(f.path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	if st := m.Status(); st.Source != goodPolicy {
		t.Fatalf("policy in force changed: %+v", st)
	}
}

// A policy whose audit event cannot be stored (a full disk) is neither
// recorded nor put in force (issue 11, defect 6).
func TestPolicyNotAppliedWithoutAudit(t *testing.T) {
	f := newFixture(t)
	f.write(goodPolicy)
	m := f.manager()
	ctx := context.Background()
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	before := m.Status()
	db, err := sql.Open("sqlite", filepath.Join(f.dir, "warren.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_full BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
		t.Fatal(err)
	}
	f.write(strings.Replace(goodPolicy, `"tag:db:5432"]}]`, `"tag:db:*"]}]`, 1))
	if err := m.Reload(ctx, ""); err == nil {
		t.Fatal("a policy was applied without its audit event")
	}
	history, err := f.store.ListPolicies(ctx, 0)
	if err != nil || len(history) != 1 {
		t.Fatalf("history %d versions, %v; want only the first", len(history), err)
	}
	if st := m.Status(); st.Hash != before.Hash || f.applied() != 1 || st.Rejected == nil {
		t.Fatalf("status %+v after the unaudited edit, %d applies", st, f.applied())
	}
}
