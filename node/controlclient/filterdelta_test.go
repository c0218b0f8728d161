package controlclient

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestApplyFilterDelta checks that rule deltas patch the filter in order,
// that one that does not fit fails and leaves the whole state unchanged
// (the client then reconnects for a full map), and that snapshots handed
// out earlier keep their filter.
func TestApplyFilterDelta(t *testing.T) {
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	var s mapState
	if err := s.apply(&wire.MapResponse{Version: 1, Full: true, Self: &wire.Node{ID: 1}, FilterSet: true,
		PacketFilter: []wire.FilterRule{{SrcPrefixes: []netip.Prefix{p("100.64.0.1/32")}, Rule: "acls[0]"}}}); err != nil {
		t.Fatal(err)
	}
	before := s.snapshot()
	for _, tc := range []struct {
		name    string
		resp    *wire.MapResponse
		wantErr bool
		want    []netip.Prefix
	}{
		{"add", &wire.MapResponse{Version: 2, FilterDelta: []wire.FilterRuleDelta{{Index: 0, Rule: "acls[0]", Add: []netip.Prefix{p("100.64.0.2/32")}}}},
			false, []netip.Prefix{p("100.64.0.1/32"), p("100.64.0.2/32")}},
		{"does not fit", &wire.MapResponse{Version: 3, PeersChanged: []wire.Node{{ID: 5}},
			FilterDelta: []wire.FilterRuleDelta{{Index: 0, Rule: "acls[0]", Remove: []netip.Prefix{p("100.64.0.3/32")}}}},
			true, []netip.Prefix{p("100.64.0.1/32"), p("100.64.0.2/32")}},
		{"in a full map", &wire.MapResponse{Version: 3, Full: true, FilterDelta: []wire.FilterRuleDelta{{Index: 0, Rule: "acls[0]"}}},
			true, []netip.Prefix{p("100.64.0.1/32"), p("100.64.0.2/32")}},
		{"add then remove", &wire.MapResponse{Version: 3, FilterDelta: []wire.FilterRuleDelta{
			{Index: 0, Rule: "acls[0]", Add: []netip.Prefix{p("fd7a::1/128")}},
			{Index: 0, Rule: "acls[0]", Remove: []netip.Prefix{p("100.64.0.1/32")}}}},
			false, []netip.Prefix{p("100.64.0.2/32"), p("fd7a::1/128")}},
		{"whole filter wins", &wire.MapResponse{Version: 4, FilterSet: true,
			PacketFilter: []wire.FilterRule{{SrcPrefixes: []netip.Prefix{p("100.64.0.7/32")}, Rule: "acls[0]"}}},
			false, []netip.Prefix{p("100.64.0.7/32")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version := s.nm.Version
			err := s.apply(tc.resp)
			if tc.wantErr != errors.Is(err, wire.ErrBadFilterDelta) {
				t.Fatalf("apply: %v, want error %v", err, tc.wantErr)
			}
			nm := s.snapshot()
			if got := nm.PacketFilter[0].SrcPrefixes; !slices.Equal(got, tc.want) {
				t.Fatalf("sources %v, want %v", got, tc.want)
			}
			if tc.wantErr && (nm.Version != version || len(nm.Peers) != 0) {
				t.Fatalf("a delta that failed changed the state: %+v", nm)
			}
		})
	}
	if got := before.PacketFilter[0].SrcPrefixes; len(got) != 1 || got[0] != p("100.64.0.1/32") {
		t.Fatalf("an earlier snapshot's filter changed to %v", got)
	}
}
