package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// TestDNSZone: MagicDNS's zone is the node and its named peers, plus the
// coordinator's extra records and split-DNS routes.
func TestDNSZone(t *testing.T) {
	p := netip.MustParsePrefix
	route := wire.DNSRoute{Domain: "corp.example.com", Resolvers: []netip.AddrPort{netip.MustParseAddrPort("100.64.0.5:53")}}
	nm := &controlclient.Netmap{Domain: "warren.internal",
		Self:  wire.Node{Name: "laptop", Addresses: []netip.Prefix{p("100.64.0.1/32"), p("fd7a:115c:a1e0::1/128")}},
		Peers: []wire.Node{{Name: "db", Addresses: []netip.Prefix{p("100.64.0.2/32")}}, {Name: "", Addresses: []netip.Prefix{p("100.64.0.3/32")}}},
		DNS: &wire.DNSConfig{Records: []wire.DNSRecord{{Name: "wiki.warren.internal", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.81")}}},
			Routes: []wire.DNSRoute{route}},
	}
	z := dnsZone(nm)
	var names []string
	for _, h := range z.Hosts {
		names = append(names, h.Name)
	}
	if z.Domain != "warren.internal" || !slices.Equal(names, []string{"laptop", "db"}) || len(z.Hosts[0].Addrs) != 2 {
		t.Fatalf("zone %+v", z)
	}
	if len(z.Extra) != 1 || z.Extra[0].Name != "wiki.warren.internal" || len(z.Routes) != 1 || z.Routes[0].Domain != "corp.example.com" {
		t.Fatalf("extra %+v routes %+v", z.Extra, z.Routes)
	}
	if got := dnsZone(&controlclient.Netmap{Domain: "x"}); len(got.Extra) != 0 || len(got.Routes) != 0 {
		t.Fatalf("zone without DNS config: %+v", got)
	}
}

func TestBadDNSMethod(t *testing.T) {
	if _, err := New(Config{StateDir: t.TempDir(), DNSMethod: "dnsmasq"}); err == nil {
		t.Fatal("New accepted DNS method dnsmasq")
	}
}
