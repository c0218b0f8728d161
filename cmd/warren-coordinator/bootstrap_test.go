package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// bootstrapStart starts a coordinator on dir, runs --bootstrap-user as
// serve does, stops it, and returns what it printed.
func bootstrapStart(t *testing.T, dir string, before func(*coordinator.Coordinator)) string {
	t.Helper()
	ctx := context.Background()
	c, err := coordinator.New(ctx, coordinator.Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if before != nil {
		before(c)
	}
	var out bytes.Buffer
	if err := bootstrapUser(ctx, c, "admin@example.com", "http://127.0.0.1:1", &out); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// bootstrapKeys returns the pre-auth keys of the bootstrap user.
func bootstrapKeys(t *testing.T, dir string) []store.AuthKey {
	t.Helper()
	ctx := context.Background()
	c, err := coordinator.New(ctx, coordinator.Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := c.Store().GetUserByName(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.Store().ListAuthKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []store.AuthKey
	for _, k := range all {
		if k.UserID == u.ID {
			keys = append(keys, k)
		}
	}
	return keys
}

// fullKey matches a whole pre-auth key (listings show only its prefix).
var fullKey = regexp.MustCompile(`wpk_[a-z0-9]{32}`)

// TestBootstrapUserKeyOnce: --bootstrap-user prints a new admin key on the
// first start, and on later starts only while the user has no usable key
// (an unexpired, unrevoked, reusable, untagged pre-auth key).
func TestBootstrapUserKeyOnce(t *testing.T) {
	dir := t.TempDir()
	local := registry.Actor{Name: "local:test", Admin: true}

	first := bootstrapStart(t, dir, nil)
	if !fullKey.MatchString(first) || !strings.Contains(first, "warren up --coordinator") {
		t.Fatalf("first start printed no key:\n%s", first)
	}
	second := bootstrapStart(t, dir, nil)
	if fullKey.MatchString(second) {
		t.Fatalf("second start printed a key again:\n%s", second)
	}
	if !strings.Contains(second, "already has") || !strings.Contains(second, "keys create") {
		t.Fatalf("second start does not say a key exists and how to make one:\n%s", second)
	}
	if keys := bootstrapKeys(t, dir); len(keys) != 1 {
		t.Fatalf("after two starts the user has %d keys, want 1", len(keys))
	}

	// Expired, revoked and single-use keys do not count.
	third := bootstrapStart(t, dir, func(c *coordinator.Coordinator) {
		ctx := context.Background()
		keys := bootstrapKeys(t, dir)
		if _, err := c.Registry().RevokeAuthKey(ctx, local, keys[0].ID, true); err != nil { // expire now
			t.Fatal(err)
		}
		uid := keys[0].UserID
		if _, _, err := c.Registry().CreateAuthKey(ctx, local, registry.AuthKeyRequest{UserID: uid}); err != nil {
			t.Fatal(err)
		}
		k, _, err := c.Registry().CreateAuthKey(ctx, local, registry.AuthKeyRequest{UserID: uid, Reusable: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Registry().RevokeAuthKey(ctx, local, k.ID, false); err != nil {
			t.Fatal(err)
		}
	})
	if !fullKey.MatchString(third) {
		t.Fatalf("with its key revoked, the start printed no new key:\n%s", third)
	}
	if fourth := bootstrapStart(t, dir, nil); fullKey.MatchString(fourth) {
		t.Fatalf("fourth start printed a key again:\n%s", fourth)
	}
	if n := len(bootstrapKeys(t, dir)); n != 4 {
		t.Fatalf("the user has %d keys, want 4 (2 bootstrap, 2 test)", n)
	}
}
