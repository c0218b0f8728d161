package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/node/localapi"
)

// TestPrintPeerRoutes: warren status names, for each router, the routes
// this node sends to it (primary) and those it keeps on standby.
func TestPrintPeerRoutes(t *testing.T) {
	t.Parallel()
	pfx := netip.MustParsePrefix
	lan := pfx("10.20.0.0/24")
	for _, tc := range []struct {
		name  string
		peers []localapi.PeerStatus
		want  string
	}{
		{"no routers: nothing", []localapi.PeerStatus{{Name: "laptop"}}, ""},
		{"two routers, one primary", []localapi.PeerStatus{
			{Name: "laptop"},
			{Name: "router-a", Routes: []netip.Prefix{lan}},
			{Name: "router-b", Routes: []netip.Prefix{lan, pfx("0.0.0.0/0"), pfx("::/0")}, PrimaryRoutes: []netip.Prefix{lan}},
		}, "\nROUTER    ROUTES\nrouter-a  10.20.0.0/24 (standby)\nrouter-b  10.20.0.0/24 (primary), 0.0.0.0/0 (exit node), ::/0 (exit node)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := printPeerRoutes(&b, tc.peers); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}
