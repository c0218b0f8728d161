package store

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// TestNodeRoutes: advertised and approved routes are stored apart, read
// back as written, and cleared by writing none.
func TestNodeRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "ann", Role: RoleMember})
		must(t, err)
		created := newNode("router", u.ID)
		created.AdvertisedRoutes = []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")}
		n, err := s.CreateNode(ctx, created)
		must(t, err)
		if !slices.Equal(n.AdvertisedRoutes, created.AdvertisedRoutes) || n.ApprovedRoutes != nil {
			t.Fatalf("created: advertised %v approved %v", n.AdvertisedRoutes, n.ApprovedRoutes)
		}
		adv := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.20.0.0/24"), netip.MustParsePrefix("::/0")}
		appr := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24"), netip.MustParsePrefix("fd00:20::/64")}
		n.AdvertisedRoutes, n.ApprovedRoutes = adv, appr
		_, err = s.UpdateNode(ctx, n)
		must(t, err)
		got, err := s.GetNode(ctx, n.ID)
		must(t, err)
		if !slices.Equal(got.AdvertisedRoutes, adv) || !slices.Equal(got.ApprovedRoutes, appr) {
			t.Fatalf("stored advertised %v approved %v; want %v and %v", got.AdvertisedRoutes, got.ApprovedRoutes, adv, appr)
		}
		got.AdvertisedRoutes, got.ApprovedRoutes = nil, nil
		_, err = s.UpdateNode(ctx, got)
		must(t, err)
		if got, _ = s.GetNode(ctx, n.ID); got.AdvertisedRoutes != nil || got.ApprovedRoutes != nil {
			t.Fatalf("after clearing: advertised %v approved %v", got.AdvertisedRoutes, got.ApprovedRoutes)
		}
	})
}
