package coordinator_test

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/pgtest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// replicaTiming keeps the follower quick for tests; the dead time and the
// lease stay long enough that a stalled machine never makes a live
// replica look dead.
var replicaTiming = coordinator.ReplicationConfig{Poll: 50 * time.Millisecond, Heartbeat: 500 * time.Millisecond,
	DeadAfter: 10 * time.Second, LeaseTTL: 3 * time.Second}

// replicaAt starts a coordinator replica with a state directory of its
// own, holding the key files of the directory shared (the first replica
// puts its new ones there), on the database dbURL ("": a SQLite file in
// shared), and returns it with its URL and a stop function.
func replicaAt(t testing.TB, shared, dbURL string) (*coordinator.Coordinator, string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyKeys(t, shared, dir)
	cfg := coordinator.Config{StateDir: dir, Store: cmp.Or(dbURL, filepath.Join(shared, "warren.db")), Replica: true,
		Replication: replicaTiming}
	if dbURL != "" {
		// On PostgreSQL changes must arrive by notification: the timer
		// that would also find them never fires within a test.
		cfg.Replication.Poll = time.Hour
	}
	cfg.Relay.Disable = true
	c, stop := start(t, cfg, ln)
	copyKeys(t, dir, shared)
	return c, "http://" + ln.Addr().String(), stop
}

// copyKeys copies the coordinator's key files from one state directory
// to another where it lacks them, as an operator copies them to each
// replica.
func copyKeys(t testing.TB, from, to string) {
	t.Helper()
	for _, name := range []string{"coordinator.key", coordinator.SecretsKeyFile} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(to, name)); err == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// meshNode is a real control client with its latest netmap.
type meshNode struct {
	id     wire.NodeID
	client *controlclient.Client
	mu     sync.Mutex
	nm     *controlclient.Netmap
	change chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// joinAt registers a node at the coordinator at url with a pre-auth key
// and keeps its netmap until the test ends or leave is called.
func joinAt(t testing.TB, url string, pub key.ControlPublic, authKey, host string) *meshNode {
	t.Helper()
	n := &meshNode{change: make(chan struct{}, 1), done: make(chan struct{})}
	c, err := controlclient.New(controlclient.Config{URL: url, ControlKey: pub, Machine: key.NewMachine(),
		NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(), Hostname: host, OS: "linux", AuthKey: authKey,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		OnNetmap: func(nm *controlclient.Netmap) {
			n.mu.Lock()
			n.nm = nm
			n.mu.Unlock()
			select {
			case n.change <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	n.client = c
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(n.leave)
	n.until(t, "registered", func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 })
	n.id = n.netmap().Self.ID
	return n
}

func (n *meshNode) leave() {
	n.cancel()
	<-n.done
}

func (n *meshNode) netmap() *controlclient.Netmap {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nm
}

// until waits (bounded by wait) for the node's netmap to satisfy ok.
func (n *meshNode) until(t testing.TB, what string, ok func(nm *controlclient.Netmap) bool) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		if nm := n.netmap(); nm != nil && ok(nm) {
			return
		}
		select {
		case <-n.change:
		case <-deadline.C:
			t.Fatalf("node %d: not %s within %v; netmap: %+v", n.id, what, wait, n.netmap())
		}
	}
}

func peerOf(nm *controlclient.Netmap, id wire.NodeID) (wire.Node, bool) { return nm.Peer(id) }

func hasPeer(id wire.NodeID) func(*controlclient.Netmap) bool {
	return func(nm *controlclient.Netmap) bool { _, ok := peerOf(nm, id); return ok }
}

func lacksPeer(id wire.NodeID) func(*controlclient.Netmap) bool {
	return func(nm *controlclient.Netmap) bool { _, ok := peerOf(nm, id); return !ok }
}

// TestReplicasShareChanges: two coordinator replicas on one database,
// a node on each. Each node sees the other (registered through the other
// replica) online; endpoint updates cross; a user disabled through B cuts
// their node's peers on A and enabling brings them back; a policy applied
// through A reaches the node on B; a node leaving B goes offline in A's
// maps.
func TestReplicasShareChanges(t *testing.T) { forEachDatabase(t, testReplicasShareChanges) }

// forEachDatabase runs test on SQLite (one file that both replicas open)
// and on PostgreSQL (where changes are announced by NOTIFY).
func forEachDatabase(t *testing.T, test func(t *testing.T, dbURL string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, "") })
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.NewDatabase(t)) })
}

func testReplicasShareChanges(t *testing.T, dbURL string) {
	dir := t.TempDir()
	a, urlA, _ := replicaAt(t, dir, dbURL)
	b, urlB, _ := replicaAt(t, dir, dbURL)
	ctx := context.Background()
	u, err := a.Registry().CreateUser(ctx, admin, store.User{Name: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, authKey, err := a.Registry().CreateAuthKey(ctx, admin, registry.AuthKeyRequest{UserID: u.ID, Reusable: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	onA := joinAt(t, urlA, a.PublicKey(), authKey, "on-a")
	onB := joinAt(t, urlB, b.PublicKey(), authKey, "on-b")

	online := func(id wire.NodeID, want bool) func(*controlclient.Netmap) bool {
		return func(nm *controlclient.Netmap) bool { p, ok := peerOf(nm, id); return ok && p.Online == want }
	}
	onA.until(t, "seeing the node on B online", online(onB.id, true))
	onB.until(t, "seeing the node on A online", online(onA.id, true))

	ep := netip.MustParseAddrPort("127.0.0.1:41641")
	onB.client.SetEndpoints([]netip.AddrPort{ep}, 0)
	onA.until(t, "seeing B's node's new endpoint", func(nm *controlclient.Netmap) bool {
		p, ok := peerOf(nm, onB.id)
		return ok && slices.Contains(p.Endpoints, ep)
	})

	if _, err := b.Registry().SetUserDisabled(ctx, admin, u.ID, true); err != nil {
		t.Fatal(err)
	}
	onA.until(t, "cut off (its user disabled through B)", lacksPeer(onB.id))
	if _, err := b.Registry().SetUserDisabled(ctx, admin, u.ID, false); err != nil {
		t.Fatal(err)
	}
	onA.until(t, "back (its user enabled through B)", hasPeer(onB.id))

	deny := `{"acls": []}`
	if _, err := a.Policy().Apply(ctx, "user:test", []byte(deny)); err != nil {
		t.Fatal(err)
	}
	onB.until(t, "cut off by the policy applied through A", lacksPeer(onA.id))
	if got := b.Policy().Status().Hash; got != a.Policy().Status().Hash {
		t.Errorf("B enforces policy %s, A %s", got, a.Policy().Status().Hash)
	}
	if _, err := a.Policy().Apply(ctx, "user:test", []byte(allowOwn)); err != nil {
		t.Fatal(err)
	}
	onB.until(t, "back by the policy applied through A", online(onA.id, true))

	onB.leave()
	onA.until(t, "seeing B's node offline once it left", online(onB.id, false))
}

const allowOwn = `{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]}`

// TestReplicaJobsRunOnce: of two replicas exactly one holds the jobs
// lease; when it stops, the other takes the jobs over.
func TestReplicaJobsRunOnce(t *testing.T) { forEachDatabase(t, testReplicaJobsRunOnce) }

func testReplicaJobsRunOnce(t *testing.T, dbURL string) {
	dir := t.TempDir()
	a, _, stopA := replicaAt(t, dir, dbURL)
	b, _, stopB := replicaAt(t, dir, dbURL)
	poll.UntilTrue(t, wait, "a replica leading", func() bool { return a.Leading() || b.Leading() })
	if a.Leading() && b.Leading() {
		t.Fatal("both replicas hold the jobs lease")
	}
	other, stop := b, stopA
	if b.Leading() {
		other, stop = a, stopB
	}
	stop()
	poll.UntilTrue(t, wait, "the other replica taking the jobs over", other.Leading)
}

// TestDeadReplicaSessionsExpire: a replica killed without a goodbye (here
// a "ghost" that registered an ephemeral node and held its channel, then
// stopped beating) keeps its node online in the maps of the nodes on the
// live replica, and unreaped, only until the ghost has been silent for
// DeadAfter; then the node is offline everywhere and, being ephemeral,
// deleted after the grace period.
func TestDeadReplicaSessionsExpire(t *testing.T) { forEachDatabase(t, testDeadReplicaSessionsExpire) }

func testDeadReplicaSessionsExpire(t *testing.T, dbURL string) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{StateDir: dir, Store: dbURL, Replica: true, EphemeralGrace: 100 * time.Millisecond,
		Replication: coordinator.ReplicationConfig{Poll: 50 * time.Millisecond, Heartbeat: 100 * time.Millisecond,
			DeadAfter: time.Second, LeaseTTL: 3 * time.Second}}
	cfg.Relay.Disable = true
	a, _ := start(t, cfg, ln)
	ctx := context.Background()
	u, err := a.Registry().CreateUser(ctx, admin, store.User{Name: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, authKey, err := a.Registry().CreateAuthKey(ctx, admin, registry.AuthKeyRequest{UserID: u.ID, Reusable: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	onA := joinAt(t, "http://"+ln.Addr().String(), a.PublicKey(), authKey, "on-a")

	ghost, err := store.OpenURL(ctx, cmp.Or(dbURL, filepath.Join(dir, "warren.db")), store.Options{ReplicaID: "ghost"})
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close()
	if err := ghost.Heartbeat(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	n, err := ghost.CreateNode(ctx, store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), UserID: u.ID, Hostname: "on-ghost", Ephemeral: true, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ghost.SetSession(ctx, n.ID, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	id := wire.NodeID(n.ID)
	onA.until(t, "seeing the ghost's node", hasPeer(id))
	// Online while the ghost counts as alive, or offline once it is swept:
	// both are right on a machine slow enough to pass DeadAfter here.
	onA.until(t, "seeing the ghost's node deleted once the ghost is dead", lacksPeer(id))
	if _, err := a.Store().GetNode(ctx, n.ID); err == nil {
		t.Error("the dead replica's ephemeral node is still stored")
	}
}
