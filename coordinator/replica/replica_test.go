package replica

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx", to end the listener's backend
	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/pgtest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(withPostgres{m}) }

type withPostgres struct{ m *testing.M }

func (w withPostgres) Run() int { return pgtest.Main(w.m) }

// wait bounds every wait: a failure bound, never a measurement.
const wait = 20 * time.Second

// recorder is an Applier that records what it was told.
type recorder struct {
	mu      sync.Mutex
	nodes   []store.NodeID
	resyncs int
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) note(fn func()) {
	r.mu.Lock()
	fn()
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) Node(_ context.Context, id store.NodeID, _ bool) {
	r.note(func() { r.nodes = append(r.nodes, id) })
}
func (r *recorder) User(context.Context, store.UserID) {}
func (r *recorder) Policy(context.Context)             {}
func (r *recorder) Access(context.Context, int64)      {}
func (r *recorder) Resync(context.Context)             { r.note(func() { r.resyncs++ }) }

// until waits for cond on the recorder's state, woken by each record.
func (r *recorder) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("not %s within %v", what, wait)
		}
	}
}

func newNode(host string) store.Node {
	return store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
		UserID: 1, Hostname: host, Created: time.Now()}
}

func open(t *testing.T, url, id string) store.Store {
	t.Helper()
	s, err := store.OpenURL(context.Background(), url, store.Options{ReplicaID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestFollowerSkipsOwnChanges: b's follower applies a's changes, and not
// its own; a node that changed twice is read once.
func TestFollowerSkipsOwnChanges(t *testing.T) {
	url := filepath.Join(t.TempDir(), "warren.db")
	a, b := open(t, url, "a"), open(t, url, "b")
	ctx := context.Background()
	rec := newRecorder()
	f, err := New(ctx, Config{Store: b, ID: "b", Apply: rec})
	if err != nil {
		t.Fatal(err)
	}
	own, err := b.CreateNode(ctx, newNode("own"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := a.CreateNode(ctx, newNode("other"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateNode(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := f.ReadOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.nodes) != 1 || rec.nodes[0] != other.ID {
		t.Errorf("applied nodes %v, want [%d] (not its own %d)", rec.nodes, other.ID, own.ID)
	}
}

// TestFollowerResyncsAfterPruning: a follower whose unread changes were
// pruned cannot know what changed, and reads everything again.
func TestFollowerResyncsAfterPruning(t *testing.T) {
	url := filepath.Join(t.TempDir(), "warren.db")
	a, b := open(t, url, "a"), open(t, url, "b")
	ctx := context.Background()
	if _, err := a.CreateNode(ctx, newNode("before")); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	f, err := New(ctx, Config{Store: b, ID: "b", Apply: rec})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"one", "two", "three"} {
		if _, err := a.CreateNode(ctx, newNode(h)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.PruneChanges(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.ReadOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if rec.resyncs != 1 {
		t.Errorf("resyncs %d, want 1", rec.resyncs)
	}
}

// TestFollowerCatchesUpMissedNotification: on PostgreSQL the follower
// wakes on NOTIFY; a notification it missed (dropped here, and then its
// connection ended by the server) is caught up when it listens again,
// with no timer to help (Poll is an hour).
func TestFollowerCatchesUpMissedNotification(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := open(t, url, "a"), open(t, url, "b")
	ctx, cancel := context.WithCancel(context.Background())
	rec := newRecorder()
	f, err := New(ctx, Config{Store: b, ID: "b", Apply: rec, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	drop, dropped := false, 0
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = f.Run(ctx) }()
	go func() {
		defer wg.Done()
		f.Listen(ctx, func(ctx context.Context, ready func(), notify func(int64)) error {
			return store.ListenChanges(ctx, url, ready, func(id int64) {
				mu.Lock()
				defer mu.Unlock()
				if drop {
					dropped++
					return
				}
				notify(id)
			})
		})
	}()
	defer func() { cancel(); wg.Wait() }()
	poll.UntilTrue(t, wait, "listening", func() bool { return f.Listens() == 1 })

	n1, err := a.CreateNode(ctx, newNode("notified"))
	if err != nil {
		t.Fatal(err)
	}
	rec.until(t, "applying the notified change", func() bool { return len(rec.nodes) == 1 && rec.nodes[0] == n1.ID })

	mu.Lock()
	drop = true
	mu.Unlock()
	n2, err := a.CreateNode(ctx, newNode("missed"))
	if err != nil {
		t.Fatal(err)
	}
	poll.UntilTrue(t, wait, "the notification dropped", func() bool { mu.Lock(); defer mu.Unlock(); return dropped > 0 })
	rec.mu.Lock()
	if len(rec.nodes) != 1 {
		t.Errorf("applied %v before any notification got through", rec.nodes)
	}
	rec.mu.Unlock()
	mu.Lock()
	drop = false
	mu.Unlock()

	// The server ends the listening connection; the follower listens
	// again and reads the feed then.
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ended int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&ended); err != nil || ended != 1 {
		t.Fatalf("ending the listener's connection: %d ended, %v", ended, err)
	}
	rec.until(t, "catching up the missed change", func() bool { return len(rec.nodes) == 2 && rec.nodes[1] == n2.ID })
	if got := f.Listens(); got < 2 {
		t.Errorf("listened %d times, want a reconnection", got)
	}
}
