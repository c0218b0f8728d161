package registry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// request is a registration of a fresh node key and disco key with
// authKey and tags.
func request(authKey string, tags ...string) *wire.RegisterRequest {
	return &wire.RegisterRequest{NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
		Hostname: "laptop", AuthKey: authKey, Tags: tags}
}

// authKey returns the stored pre-auth key id.
func (h *harness) authKey(id store.AuthKeyID) store.AuthKey {
	h.t.Helper()
	k, err := h.st.GetAuthKey(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return k
}

// auditTargets returns the target of each action event with outcome,
// oldest first.
func (h *harness) auditTargets(action, outcome string) []string {
	h.t.Helper()
	evs, err := h.st.ListAudit(context.Background(), store.AuditFilter{Action: action})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Outcome == outcome {
			out = append(out, evs[i].Target)
		}
	}
	return out
}

// A pre-auth key is counted at each use: a single-use key registers one
// machine, a reusable one any number until it expires or is revoked. A
// refused use stores nothing, leaves the count as it was, and is audited
// when the key is one the coordinator issued (and only counted when it
// is not).
func TestRegisterKeyUse(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		req     AuthKeyRequest
		before  func(h *harness, k store.AuthKey) // between the good uses and the last
		uses    int                               // that succeed
		lastErr error                             // of one more use; nil: it succeeds too
		// unknown: the last use presents a key the coordinator never
		// issued, so it is counted as an unauthenticated failure instead.
		unknown bool
	}{
		{name: "single use", uses: 1, lastErr: auth.ErrKeyUsed},
		{name: "reusable", req: AuthKeyRequest{Reusable: true}, uses: 3},
		{name: "expired", req: AuthKeyRequest{Reusable: true, TTL: time.Hour}, uses: 1,
			before:  func(h *harness, _ store.AuthKey) { h.clock.Advance(time.Hour) },
			lastErr: auth.ErrKeyExpired},
		{name: "just before it expires", req: AuthKeyRequest{TTL: time.Hour},
			before: func(h *harness, _ store.AuthKey) { h.clock.Advance(time.Hour - time.Second) }},
		{name: "revoked", req: AuthKeyRequest{Reusable: true}, uses: 2,
			before: func(h *harness, k store.AuthKey) {
				if _, err := h.r.RevokeAuthKey(ctx, testAdmin, k.ID, false); err != nil {
					h.t.Fatal(err)
				}
			},
			lastErr: auth.ErrKeyRevoked},
		{name: "expired by an admin", req: AuthKeyRequest{Reusable: true}, uses: 1,
			before: func(h *harness, k store.AuthKey) {
				if _, err := h.r.RevokeAuthKey(ctx, testAdmin, k.ID, true); err != nil {
					h.t.Fatal(err)
				}
			},
			lastErr: auth.ErrKeyExpired},
		{name: "never issued", req: AuthKeyRequest{Reusable: true}, uses: 1, unknown: true, lastErr: auth.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 0)
			ann := h.user("ann@example.com")
			tt.req.UserID = ann.ID
			k, plain, err := h.r.CreateAuthKey(ctx, testAdmin, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for i := range tt.uses {
				n, err := h.join(plain)
				if err != nil {
					t.Fatalf("use %d: %v", i+1, err)
				}
				if n.UserID != ann.ID || n.AuthKeyID != k.ID || n.Tagged() {
					t.Fatalf("use %d made %+v", i+1, n)
				}
				for _, a := range []string{n.IPv4.String(), n.IPv6.String(), n.Name} {
					if seen[a] {
						t.Fatalf("use %d: %s given twice", i+1, a)
					}
					seen[a] = true
				}
				if got := h.authKey(k.ID).UsedCount; got != i+1 {
					t.Fatalf("after use %d the key counts %d uses", i+1, got)
				}
			}
			if tt.before != nil {
				tt.before(h, k)
			}
			last := plain
			if tt.unknown {
				last, _, _ = auth.NewSecret(auth.AuthKeyPrefix)
			}
			machine := key.NewMachine().Public()
			n, err := h.r.Register(ctx, machine, request(last), "198.51.100.7:1234")
			if !errors.Is(err, tt.lastErr) || (tt.lastErr == nil) != (err == nil) {
				t.Fatalf("last use: %v, want %v", err, tt.lastErr)
			}
			used := tt.uses
			if tt.lastErr == nil {
				used++
				if n.AuthKeyID != k.ID {
					t.Fatalf("last use made %+v", n)
				}
			} else if _, err := h.st.GetNodeByMachineKey(ctx, machine); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("refused machine stored: %v", err)
			}
			if got := h.authKey(k.ID).UsedCount; got != used {
				t.Fatalf("key counts %d uses, want %d", got, used)
			}
			if nodes, _ := h.st.ListNodes(ctx); len(nodes) != used {
				t.Fatalf("%d nodes stored, want %d", len(nodes), used)
			}
			// Every registration made is audited with its node; a refused
			// use of an issued key is audited as denied; a key nobody
			// issued is only counted.
			if got := h.auditTargets("node.register", "ok"); len(got) != used {
				t.Fatalf("audited registrations %v, want %d", got, used)
			}
			denied, counted := 0, uint64(0)
			switch {
			case tt.unknown:
				counted = 1
			case tt.lastErr != nil:
				denied = 1
			}
			if got := h.auditTargets("node.register", "denied"); len(got) != denied {
				t.Fatalf("denied registrations audited: %v, want %d", got, denied)
			}
			if got := h.r.failures.Counts()["node.register"]; got != counted {
				t.Fatalf("%d unauthenticated failures counted, want %d", got, counted)
			}
		})
	}
}

// A machine the coordinator knows comes back as the same node: a restart
// with its node key changes nothing, and a new node key (key rotation,
// re-auth) keeps the node's ID, name and addresses.
func TestRegisterReauth(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 0)
	ann := h.user("ann@example.com")
	k, plain, err := h.r.CreateAuthKey(ctx, testAdmin, AuthKeyRequest{UserID: ann.ID}) // single use
	if err != nil {
		t.Fatal(err)
	}
	machine := key.NewMachine().Public()
	req := request(plain)
	first, err := h.r.Register(ctx, machine, req, "test")
	if err != nil {
		t.Fatal(err)
	}
	events := func() int {
		evs, _ := h.st.ListAudit(ctx, store.AuditFilter{})
		return len(evs)
	}
	same := func(t *testing.T, n store.Node) {
		t.Helper()
		if n.ID != first.ID || n.IPv4 != first.IPv4 || n.IPv6 != first.IPv6 || n.Name != first.Name || n.UserID != ann.ID {
			t.Fatalf("came back as %+v, was %+v", n, first)
		}
	}

	t.Run("restart with the key it joined with", func(t *testing.T) {
		before := events()
		n, err := h.r.Register(ctx, machine, req, "test")
		if err != nil {
			t.Fatal(err)
		}
		same(t, n)
		if got := h.authKey(k.ID).UsedCount; got != 1 {
			t.Fatalf("the single-use key counts %d uses after a restart, want 1", got)
		}
		if got := events(); got != before {
			t.Fatalf("a node back as it was wrote %d audit events", got-before)
		}
	})
	t.Run("restart without a key", func(t *testing.T) {
		r := *req
		r.AuthKey = ""
		n, err := h.r.Register(ctx, machine, &r, "test")
		if err != nil {
			t.Fatal(err)
		}
		same(t, n)
	})
	t.Run("new disco key and hostname", func(t *testing.T) {
		r := *req
		r.DiscoKey, r.Hostname = key.NewDisco().Public(), "laptop-2"
		n, err := h.r.Register(ctx, machine, &r, "test")
		if err != nil {
			t.Fatal(err)
		}
		if n.DiscoKey != r.DiscoKey || n.Hostname != "laptop-2" || n.Name != "laptop-2" {
			t.Fatalf("disco key, hostname or the name that follows it not stored: %+v", n)
		}
		first.Name = n.Name
		same(t, n)
		if got := h.auditTargets("node.reconnect", "ok"); len(got) != 1 || got[0] != fmt.Sprintf("node:%d", first.ID) {
			t.Fatalf("node.reconnect events %v", got)
		}
		*req = r
	})
	t.Run("new node key without a key", func(t *testing.T) {
		r := *req
		r.NodeKey, r.AuthKey = key.NewNode().Public(), ""
		if _, err := h.r.Register(ctx, machine, &r, "test"); !errors.Is(err, login.ErrNoLogin) {
			t.Fatalf("got %v, want %v", err, login.ErrNoLogin)
		}
		if got, _ := h.st.GetNode(ctx, first.ID); got.NodeKey != req.NodeKey {
			t.Fatal("a refused re-key changed the node key")
		}
	})
	t.Run("new node key with a used single-use key", func(t *testing.T) {
		r := *req
		r.NodeKey = key.NewNode().Public()
		if _, err := h.r.Register(ctx, machine, &r, "test"); !errors.Is(err, auth.ErrKeyUsed) {
			t.Fatalf("got %v, want %v", err, auth.ErrKeyUsed)
		}
	})
	t.Run("key rotation", func(t *testing.T) {
		h.clock.Advance(24 * time.Hour)
		k2, plain2, err := h.r.CreateAuthKey(ctx, member(ann), AuthKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		old := req.NodeKey
		r := *req
		r.NodeKey, r.AuthKey = key.NewNode().Public(), plain2
		n, err := h.r.Register(ctx, machine, &r, "test")
		if err != nil {
			t.Fatal(err)
		}
		same(t, n)
		if n.NodeKey != r.NodeKey || n.AuthKeyID != k2.ID || !n.KeyExpiry.After(first.KeyExpiry) {
			t.Fatalf("after rotation %+v (key %d), first expiry %v", n, k2.ID, first.KeyExpiry)
		}
		if _, err := h.st.GetNodeByNodeKey(ctx, old); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the old node key still finds a node: %v", err)
		}
		if got, ok := h.engine.Node(wire.NodeID(first.ID)); !ok || got.Wire.NodeKey != r.NodeKey {
			t.Fatalf("the engine holds %+v", got.Wire)
		}
		if nodes, _ := h.st.ListNodes(ctx); len(nodes) != 1 {
			t.Fatalf("%d nodes after rotation, want 1", len(nodes))
		}
		*req = r
	})
	t.Run("node key of another machine", func(t *testing.T) {
		_, plain3 := h.reusableKey(testAdmin, ann.ID)
		r := request(plain3)
		r.NodeKey = req.NodeKey
		other := key.NewMachine().Public()
		if _, err := h.r.Register(ctx, other, r, "test"); !errors.Is(err, ErrNodeKeyInUse) {
			t.Fatalf("got %v, want %v", err, ErrNodeKeyInUse)
		}
		if _, err := h.st.GetNodeByMachineKey(ctx, other); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the other machine was stored: %v", err)
		}
	})
	if got := h.auditTargets("node.register", "ok"); len(got) != 2 {
		t.Fatalf("registrations audited: %v, want the first and the rotation", got)
	}
}

// With device approval a user's new node waits until an admin approves
// it; the member who owns it cannot approve it, a re-keyed approved node
// stays approved, and tagged nodes need no approval.
func TestRegisterDeviceApproval(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, -1)
	h.r.approval = true
	ann := h.user("ann@example.com")
	authorized := func(id store.NodeID) bool {
		t.Helper()
		n, ok := h.engine.Node(wire.NodeID(id))
		if !ok {
			t.Fatalf("node %d not in the engine", id)
		}
		return n.Authorized
	}
	admitted := func(n store.Node) bool {
		t.Helper()
		ok, err := h.r.AdmitRelay(ctx, n.NodeKey)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	machine := key.NewMachine().Public()
	laptop := h.register(machine, ann.ID)
	if !laptop.Pending || authorized(laptop.ID) || admitted(laptop) {
		t.Fatalf("new user node not pending: %+v", laptop)
	}
	if _, err := h.r.ApproveNode(ctx, member(ann), laptop.ID); !errors.Is(err, ErrForbidden) {
		t.Fatalf("owner approving their own device: %v, want %v", err, ErrForbidden)
	}
	if got, _ := h.st.GetNode(ctx, laptop.ID); !got.Pending {
		t.Fatal("a refused approval approved")
	}
	n, err := h.r.ApproveNode(ctx, testAdmin, laptop.ID)
	if err != nil || n.Pending || !authorized(laptop.ID) || !admitted(n) {
		t.Fatalf("after approval: %+v, %v", n, err)
	}
	if got := h.auditTargets("node.approve", "denied"); len(got) != 1 {
		t.Fatalf("denied approvals audited: %v", got)
	}
	if got := h.auditTargets("node.approve", "ok"); len(got) != 1 || got[0] != fmt.Sprintf("node:%d", laptop.ID) {
		t.Fatalf("approvals audited: %v", got)
	}
	rekeyed := h.register(machine, ann.ID)
	if rekeyed.ID != laptop.ID || rekeyed.Pending || !authorized(laptop.ID) {
		t.Fatalf("an approved node re-keyed: %+v", rekeyed)
	}
	server := h.register(key.MachinePublic{}, ann.ID, "tag:web")
	if server.Pending || !authorized(server.ID) {
		t.Fatalf("tagged node pending: %+v", server)
	}
	if _, err := h.r.ApproveNode(ctx, testAdmin, 9999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("approving no node: %v", err)
	}
}

// Tags come only from a pre-auth key whose creator may apply them under
// tagOwners, checked when the key is made and again when it is used; a
// tagged node is owned by its tags, so only admins change it.
func TestRegisterTags(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// creator makes a key with keyTags for the node, which asks for
		// reqTags.
		creator          func(h *harness) Actor
		keyTags, reqTags []string
		createErr        error // of CreateAuthKey
		policyAfter      string
		registerErr      error
		wantTags         []string
	}{
		{name: "owner by name", creator: asAnn, keyTags: []string{"tag:db"}, reqTags: []string{"tag:db"}, wantTags: []string{"tag:db"}},
		{name: "owner by group", creator: asOps, keyTags: []string{"tag:db"}, reqTags: []string{"tag:db"}, wantTags: []string{"tag:db"}},
		{name: "the key's tags when the node asks for none", creator: asAnn, keyTags: []string{"tag:db"}, wantTags: []string{"tag:db"}},
		{name: "admin, admin-only tag", creator: asAdmin, keyTags: []string{"tag:web", "tag:db"}, reqTags: []string{"tag:web"},
			wantTags: []string{"tag:web", "tag:db"}},
		{name: "a tag the key does not grant", creator: asAnn, keyTags: []string{"tag:db"}, reqTags: []string{"tag:db", "tag:web"},
			registerErr: ErrTagNotGranted},
		{name: "tags from an untagged key", creator: asAnn, reqTags: []string{"tag:db"}, registerErr: ErrTagNotGranted},
		{name: "member, tag owned by others", creator: asBob, keyTags: []string{"tag:db"}, createErr: ErrTagNotOwned},
		{name: "member, admin-only tag", creator: asAnn, keyTags: []string{"tag:web"}, createErr: ErrTagNotOwned},
		{name: "undefined tag", creator: asAdmin, keyTags: []string{"tag:nowhere"}, createErr: ErrTagNotOwned},
		{name: "malformed tag", creator: asAdmin, keyTags: []string{"Tag:DB"}, createErr: ErrBadRequest},
		{name: "group membership lost", creator: asOps, keyTags: []string{"tag:db"}, reqTags: []string{"tag:db"},
			policyAfter: `{"groups": {"group:ops": []}, "tagOwners": {"tag:db": ["ann@example.com", "group:ops"]}}`,
			registerErr: ErrTagNotOwned},
		{name: "tag owned by the creator's group now", creator: asAnn, keyTags: []string{"tag:db"}, reqTags: []string{"tag:db"},
			policyAfter: `{"groups": {"group:ops": ["ann@example.com"]}, "tagOwners": {"tag:db": ["group:ops"]}}`,
			wantTags:    []string{"tag:db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 0)
			a := tt.creator(h)
			req := AuthKeyRequest{Tags: tt.keyTags} // a member's own key
			if a.Admin {
				req.UserID = h.userNamed("ann@example.com").ID
			}
			_, plain, err := h.r.CreateAuthKey(ctx, a, req)
			if !errors.Is(err, tt.createErr) || (tt.createErr == nil) != (err == nil) {
				t.Fatalf("create key: %v, want %v", err, tt.createErr)
			}
			if err != nil {
				if keys, _ := h.st.ListAuthKeys(ctx); len(keys) != 0 {
					t.Fatalf("refused key stored: %+v", keys)
				}
				if got := h.auditTargets("authkey.create", "denied"); len(got) != 1 {
					t.Fatalf("refused key creations audited: %v", got)
				}
				return
			}
			if tt.policyAfter != "" {
				h.setPolicy(tt.policyAfter)
			}
			n, err := h.join(plain, tt.reqTags...)
			if !errors.Is(err, tt.registerErr) || (tt.registerErr == nil) != (err == nil) {
				t.Fatalf("register: %v, want %v", err, tt.registerErr)
			}
			if err != nil {
				if nodes, _ := h.st.ListNodes(ctx); len(nodes) != 0 {
					t.Fatalf("refused node stored: %+v", nodes)
				}
				return
			}
			if fmt.Sprint(n.Tags) != fmt.Sprint(tt.wantTags) || !n.KeyExpiry.IsZero() {
				t.Fatalf("node tags %v (expiry %v), want %v and no expiry", n.Tags, n.KeyExpiry, tt.wantTags)
			}
			// Owned by its tags: the user it was registered for cannot
			// change it, an admin can.
			owner, err := h.st.GetUser(ctx, n.UserID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.r.SetTags(ctx, member(owner), n.ID, nil); !errors.Is(err, ErrForbidden) {
				t.Fatalf("member untagging a tagged node: %v, want %v", err, ErrForbidden)
			}
			if _, err := h.r.SetTags(ctx, testAdmin, n.ID, nil); err != nil {
				t.Fatalf("admin untagging: %v", err)
			}
		})
	}
}

// Creators of keys in TestRegisterTags: ann owns tag:db by name, ops
// through group:ops, bob owns nothing (testPolicy).
func asAnn(h *harness) Actor   { return member(h.userNamed("ann@example.com")) }
func asOps(h *harness) Actor   { return member(h.userNamed("ops@example.com")) }
func asBob(h *harness) Actor   { return member(h.userNamed("bob@example.com")) }
func asAdmin(h *harness) Actor { _, a := h.adminUser("root@example.com"); return a }

// userNamed returns the user called name, creating it the first time.
func (h *harness) userNamed(name string) store.User {
	h.t.Helper()
	u, err := h.st.GetUserByName(context.Background(), name)
	if errors.Is(err, store.ErrNotFound) {
		return h.user(name)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// A machine that asks to join without a key, with interactive login on,
// is sent to sign in — unless it asks for tags, or is a tagged node,
// which only a key can (re)join.
func TestRegisterLoginRefusesTags(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 0)
	h.withLocalLogin(0)
	ann := h.user("ann@example.com")
	var lr *LoginRequired
	if _, err := h.r.Register(ctx, key.NewMachine().Public(), request(""), "test"); !errors.As(err, &lr) {
		t.Fatalf("no key: %v, want a sign-in URL", err)
	}
	if _, err := h.r.Register(ctx, key.NewMachine().Public(), request("", "tag:db"), "test"); !errors.Is(err, ErrTagNotGranted) {
		t.Fatalf("tags without a key: %v, want %v", err, ErrTagNotGranted)
	}
	machine := key.NewMachine().Public()
	h.register(machine, ann.ID, "tag:web")
	if _, err := h.r.Register(ctx, machine, request(""), "test"); !errors.Is(err, ErrTagNotGranted) {
		t.Fatalf("a tagged node signing in: %v, want %v", err, ErrTagNotGranted)
	}
	if nodes, _ := h.st.ListNodes(ctx); len(nodes) != 1 {
		t.Fatalf("%d nodes stored, want the tagged one", len(nodes))
	}
}

// AdmitRelay judges key expiry by the registry's clock, as the netmap
// does: a relay must not admit a node the netmap has expired, nor refuse
// one it has not.
func TestAdmitRelayUsesTheRegistryClock(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, time.Hour)
	ann := h.user("ann@example.com")
	n := h.register(key.NewMachine().Public(), ann.ID)
	for _, tc := range []struct {
		advance time.Duration
		want    bool
	}{{0, true}, {59 * time.Minute, true}, {time.Minute, false}} {
		h.clock.Advance(tc.advance)
		ok, err := h.r.AdmitRelay(ctx, n.NodeKey)
		if err != nil || ok != tc.want {
			t.Fatalf("at %v: admitted %v, %v; want %v", h.clock.Now(), ok, err, tc.want)
		}
	}
}
