package daemon

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// TestFindExit: an exit node is chosen by name, full name or mesh
// address, and only a visible peer with both default routes in force
// is one.
func TestFindExit(t *testing.T) {
	pfx := netip.MustParsePrefix
	nm := &controlclient.Netmap{Domain: "warren.internal", Peers: []wire.Node{
		{ID: 1, Name: "exit", NodeKey: key.NewNode().Public(), Addresses: []netip.Prefix{pfx("100.64.0.1/32"), pfx("fd7a:115c:a1e0::1/128")},
			Routes: []netip.Prefix{routes.ExitV4, routes.ExitV6}},
		{ID: 2, Name: "router", NodeKey: key.NewNode().Public(), Addresses: []netip.Prefix{pfx("100.64.0.2/32")},
			Routes: []netip.Prefix{pfx("10.20.0.0/24")}},
		{ID: 3, Name: "half", NodeKey: key.NewNode().Public(), Addresses: []netip.Prefix{pfx("100.64.0.3/32")},
			Routes: []netip.Prefix{routes.ExitV4}},
	}}
	tests := []struct {
		sel  string
		want string // the peer's name; "" for a refusal
	}{
		{"exit", "exit"},
		{"EXIT.warren.internal.", "exit"},
		{"100.64.0.1", "exit"},
		{"fd7a:115c:a1e0::1", "exit"},
		{"router", ""},
		{"100.64.0.2", ""},
		{"half", ""},
		{"nobody", ""},
		{"8.8.8.8", ""},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			p, err := findExit(nm, tt.sel)
			if tt.want == "" {
				if !errors.Is(err, errNoExitNode) {
					t.Fatalf("findExit(%q) = %s, %v; want a refusal", tt.sel, p.Name, err)
				}
				return
			}
			if err != nil || p.Name != tt.want {
				t.Fatalf("findExit(%q) = %s, %v; want %s", tt.sel, p.Name, err, tt.want)
			}
		})
	}
}
