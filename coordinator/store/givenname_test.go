package store

import (
	"context"
	"errors"
	"testing"
)

// TestNodeGivenName: a name an admin gave stays when the hostname
// changes, a taken name is a conflict, a name that is no DNS label is
// refused, and clearing GivenName derives the name from the hostname again.
func TestNodeGivenName(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember})
		must(t, err)
		a, err := s.CreateNode(ctx, newNode("laptop", u.ID))
		must(t, err)
		b, err := s.CreateNode(ctx, newNode("desktop", u.ID))
		must(t, err)

		a.Name, a.GivenName = "db", true
		a, err = s.UpdateNode(ctx, a)
		must(t, err)
		a.Hostname = "laptop-2026"
		if a, err = s.UpdateNode(ctx, a); err != nil || a.Name != "db" || !a.GivenName {
			t.Fatalf("hostname change after a rename: %+v, %v", a, err)
		}
		if c, err := s.CreateNode(ctx, newNode("db", u.ID)); err != nil || c.Name != "db-2" {
			t.Fatalf("a new node named like a given name: %+v, %v", c, err)
		}

		for _, bad := range []struct {
			name string
			want error
		}{
			{"db", ErrConflict},
			{"Bad_Name", nil},
			{"-db", nil},
			{"", nil},
		} {
			n := b
			n.Name, n.GivenName = bad.name, true
			_, err := s.UpdateNode(ctx, n)
			if err == nil || (bad.want != nil && !errors.Is(err, bad.want)) {
				t.Errorf("rename to %q: %v, want an error (%v)", bad.name, err, bad.want)
			}
		}

		a.GivenName = false
		if a, err = s.UpdateNode(ctx, a); err != nil || a.Name != "laptop-2026" {
			t.Fatalf("after clearing GivenName: %+v, %v", a, err)
		}
	})
}

func TestValidNodeName(t *testing.T) {
	for name, want := range map[string]bool{
		"db": true, "db-2": true, "a": true, "x1": true,
		"": false, "DB": false, "-db": false, "db-": false, "db.example": false, "db_1": false,
		"a23456789012345678901234567890123456789012345678901234567890123":  true,
		"a234567890123456789012345678901234567890123456789012345678901234": false,
	} {
		if got := ValidNodeName(name); got != want {
			t.Errorf("ValidNodeName(%q) = %v, want %v", name, got, want)
		}
	}
}
