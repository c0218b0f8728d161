package coordinator_test

import (
	"context"
	"net"
	"net/netip"
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

// replicaAt starts a coordinator replica on the state directory dir (its
// key file and policy file shared with the other replicas there) and the
// database dbURL ("": warren.db in dir), and returns it with its URL and
// a stop function.
func replicaAt(t *testing.T, dir, dbURL string) (*coordinator.Coordinator, string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{StateDir: dir, Store: dbURL, Replica: true, Replication: replicaTiming}
	if dbURL != "" {
		// On PostgreSQL changes must arrive by notification: the timer
		// that would also find them never fires within a test.
		cfg.Replication.Poll = time.Hour
	}
	cfg.Relay.Disable = true
	c, stop := start(t, cfg, ln)
	return c, "http://" + ln.Addr().String(), stop
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
func joinAt(t *testing.T, url string, pub key.ControlPublic, authKey, host string) *meshNode {
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
func (n *meshNode) until(t *testing.T, what string, ok func(nm *controlclient.Netmap) bool) {
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
	if got := b.Policy().Status().Version; got != a.Policy().Status().Version {
		t.Errorf("B enforces policy version %d, A %d", got, a.Policy().Status().Version)
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
