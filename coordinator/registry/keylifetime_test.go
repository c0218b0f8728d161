package registry

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/tstest/testclock"
	"github.com/warrenmesh/warren/internal/wire"
)

// harness is a Registry over a real SQLite store and netmap engine, on a
// settable clock.
type harness struct {
	t      *testing.T
	r      *Registry
	st     store.Store
	engine *netmap.Engine
	clock  *testclock.Clock
	pol    atomic.Pointer[policy.Policy]
	dbPath string
}

// testPolicy is the harness's policy: ann and group:ops own tag:db, only
// admins tag:web.
const testPolicy = `{
	"groups": {"group:ops": ["ops@example.com"]},
	"tagOwners": {"tag:db": ["ann@example.com", "group:ops"], "tag:web": []},
	"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`

// setPolicy puts src in force.
func (h *harness) setPolicy(src string) {
	h.t.Helper()
	p, err := policy.Parse([]byte(src))
	if err != nil {
		h.t.Fatal(err)
	}
	h.pol.Store(p)
}

func (h *harness) currentPolicy() *policy.Policy { return h.pol.Load() }

var testAdmin = Actor{Name: "local:test", Admin: true, Remote: "test"}

func newHarness(t *testing.T, keyExpiry time.Duration) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warren.db")
	st, err := store.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, dbPath: path, clock: testclock.New(time.Unix(1_780_000_000, 0).UTC())}
	h.setPolicy(testPolicy)
	h.engine = netmap.New(netmap.Config{Now: h.clock.Now})
	h.r, err = New(context.Background(), Config{Store: st, Engine: h.engine, Audit: audit.New(st, nil),
		Now: h.clock.Now, KeyExpiry: keyExpiry, Policy: h.currentPolicy})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.r.Close()
		st.Close()
	})
	return h
}

func (h *harness) user(name string) store.User {
	h.t.Helper()
	u, err := h.r.CreateUser(context.Background(), testAdmin, store.User{Name: name})
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// register registers machine (a new one if zero) under a fresh node key
// with a new pre-auth key of owner granting tags.
func (h *harness) register(machine key.MachinePublic, owner store.UserID, tags ...string) store.Node {
	h.t.Helper()
	ctx := context.Background()
	if machine.IsZero() {
		machine = key.NewMachine().Public()
	}
	_, plain, err := h.r.CreateAuthKey(ctx, testAdmin, AuthKeyRequest{UserID: owner, Tags: tags})
	if err != nil {
		h.t.Fatal(err)
	}
	n, err := h.r.Register(ctx, machine, &wire.RegisterRequest{NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
		Hostname: "host", AuthKey: plain, Tags: tags}, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// published returns the key expiry the netmap engine holds for id.
func (h *harness) published(id store.NodeID) time.Time {
	h.t.Helper()
	n, ok := h.engine.Node(wire.NodeID(id))
	if !ok {
		h.t.Fatalf("node %d not in the engine", id)
	}
	return n.Wire.KeyExpiry
}

// audits returns the outcome and detail of each node.key-lifetime event,
// oldest first.
func (h *harness) audits() (outcomes []string, details []map[string]any) {
	h.t.Helper()
	evs, err := h.st.ListAudit(context.Background(), store.AuditFilter{Action: "node.key-lifetime"})
	if err != nil {
		h.t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		var d map[string]any
		if err := json.Unmarshal([]byte(evs[i].Detail), &d); err != nil {
			h.t.Fatalf("audit detail %q: %v", evs[i].Detail, err)
		}
		outcomes, details = append(outcomes, evs[i].Outcome), append(details, d)
	}
	return outcomes, details
}

func TestSetKeyLifetime(t *testing.T) {
	const global = 30 * 24 * time.Hour
	h := newHarness(t, global)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	laptop := h.register(key.MachinePublic{}, ann.ID)
	if want := h.clock.Now().Add(global); !laptop.KeyExpiry.Equal(want) {
		t.Fatalf("new user node expires %v, want %v", laptop.KeyExpiry, want)
	}
	member := Actor{Name: "user:ann@example.com", UserID: ann.ID, Remote: "test"}

	// Each step runs on the laptop at a later time; a refused step leaves
	// the node as the step before left it.
	for _, step := range []struct {
		name     string
		actor    Actor
		lifetime time.Duration
		err      error
		stored   time.Duration
		expires  time.Duration // from now; 0: never
	}{
		{"one hour", testAdmin, time.Hour, nil, time.Hour, time.Hour},
		{"member lengthening her own key", member, 10 * 24 * time.Hour, ErrForbidden, time.Hour, time.Hour},
		{"member going back to the default", member, 0, ErrForbidden, time.Hour, time.Hour},
		{"too short", testAdmin, 30 * time.Second, ErrBadRequest, time.Hour, time.Hour},
		{"too long", testAdmin, MaxKeyLifetime + time.Hour, ErrBadRequest, time.Hour, time.Hour},
		{"never", testAdmin, store.KeyLifetimeNever, nil, store.KeyLifetimeNever, 0},
		{"any negative is never", testAdmin, -time.Hour, nil, store.KeyLifetimeNever, 0},
		{"shortest, to the second", testAdmin, MinKeyLifetime + 1500*time.Millisecond, nil, MinKeyLifetime + time.Second, MinKeyLifetime + time.Second},
		{"longest", testAdmin, MaxKeyLifetime, nil, MaxKeyLifetime, MaxKeyLifetime},
		{"default", testAdmin, 0, nil, 0, global},
	} {
		h.clock.Advance(time.Minute)
		before, err := h.st.GetNode(ctx, laptop.ID)
		if err != nil {
			t.Fatal(err)
		}
		n, err := h.r.SetKeyLifetime(ctx, step.actor, laptop.ID, step.lifetime)
		if !errors.Is(err, step.err) {
			t.Fatalf("%s: error %v, want %v", step.name, err, step.err)
		}
		stored, _ := h.st.GetNode(ctx, laptop.ID)
		if err == nil && (n.KeyLifetime != stored.KeyLifetime || !n.KeyExpiry.Equal(stored.KeyExpiry)) {
			t.Errorf("%s: returned %v/%v, stored %v/%v", step.name, n.KeyLifetime, n.KeyExpiry, stored.KeyLifetime, stored.KeyExpiry)
		}
		if stored.KeyLifetime != step.stored {
			t.Errorf("%s: stored lifetime %v, want %v", step.name, stored.KeyLifetime, step.stored)
		}
		want := before.KeyExpiry
		if step.err == nil {
			want = time.Time{}
			if step.expires != 0 {
				want = h.clock.Now().Add(step.expires)
			}
		}
		if !stored.KeyExpiry.Equal(want) || !h.published(laptop.ID).Equal(want) {
			t.Errorf("%s: key expires %v (engine: %v), want %v", step.name, stored.KeyExpiry, h.published(laptop.ID), want)
		}
	}

	outcomes, details := h.audits()
	wantOutcomes := []string{audit.OK, audit.Denied, audit.Denied, audit.Denied, audit.Denied, audit.OK, audit.OK, audit.OK, audit.OK, audit.OK}
	if len(outcomes) != len(wantOutcomes) {
		t.Fatalf("audit outcomes %v, want %v", outcomes, wantOutcomes)
	}
	for i := range wantOutcomes {
		if outcomes[i] != wantOutcomes[i] {
			t.Errorf("audit event %d: outcome %s, want %s (%v)", i, outcomes[i], wantOutcomes[i], details[i])
		}
	}
	if details[0]["lifetime"] != "1h0m0s" || details[0]["previous"] != "default" || details[5]["lifetime"] != "never" ||
		details[9]["lifetime"] != "default" || details[1]["error"] == nil {
		t.Errorf("audit details %v", details)
	}

	if _, err := h.r.SetKeyLifetime(ctx, testAdmin, 999, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown node: %v, want not found", err)
	}
}

// TestKeyLifetimeTaggedNodes: a tagged node never expires, whatever its
// override; the override applies once its tags are removed.
func TestKeyLifetimeTaggedNodes(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	server := h.register(key.MachinePublic{}, ann.ID, "tag:db")
	n, err := h.r.SetKeyLifetime(ctx, testAdmin, server.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !n.KeyExpiry.IsZero() || !h.published(server.ID).IsZero() || n.KeyLifetime != time.Hour {
		t.Fatalf("tagged node with a 1h override: expiry %v, lifetime %v", n.KeyExpiry, n.KeyLifetime)
	}
	h.clock.Advance(time.Minute)
	n, err = h.r.SetTags(ctx, testAdmin, server.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := h.clock.Now().Add(time.Hour); !n.KeyExpiry.Equal(want) {
		t.Fatalf("untagged node expires %v, want %v (its override)", n.KeyExpiry, want)
	}
}

// TestKeyLifetimeReauth: an expired key stays expired when the lifetime
// changes, and the node's next key gets the override; without one, the
// coordinator's default.
func TestKeyLifetimeReauth(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	laptop := h.register(key.MachinePublic{}, ann.ID)
	if want := h.clock.Now().Add(DefaultKeyExpiry); !laptop.KeyExpiry.Equal(want) {
		t.Fatalf("new node expires %v, want %v (the default)", laptop.KeyExpiry, want)
	}
	if _, err := h.r.ExpireNode(ctx, testAdmin, laptop.ID); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	n, err := h.r.SetKeyLifetime(ctx, testAdmin, laptop.ID, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Expired(h.clock.Now()) {
		t.Fatalf("setting a lifetime revived an expired key (expires %v)", n.KeyExpiry)
	}
	h.clock.Advance(time.Minute)
	n = h.register(laptop.MachineKey, ann.ID)
	if n.ID != laptop.ID {
		t.Fatalf("re-auth made node %d, want %d", n.ID, laptop.ID)
	}
	if want := h.clock.Now().Add(2 * time.Hour); !n.KeyExpiry.Equal(want) {
		t.Fatalf("re-authenticated node expires %v, want %v", n.KeyExpiry, want)
	}
	if _, err := h.r.SetKeyLifetime(ctx, testAdmin, laptop.ID, store.KeyLifetimeNever); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	if n = h.register(laptop.MachineKey, ann.ID); !n.KeyExpiry.IsZero() {
		t.Fatalf("re-auth with a never-expiring override: expires %v", n.KeyExpiry)
	}
}
