package filter

import (
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestRuleFor(t *testing.T) {
	self := netip.MustParseAddr("100.64.0.1")
	rules := []wire.FilterRule{
		{Rule: "acls[0]", SrcPrefixes: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")},
			DstPorts: []wire.PortRange{{Prefix: netip.MustParsePrefix("100.64.0.1/32"), First: 80, Last: 80}}, Protocols: []int{17}},
		{Rule: "acls[1]", SrcPrefixes: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/30")},
			DstPorts: []wire.PortRange{{Prefix: netip.MustParsePrefix("100.64.0.1/32"), First: 22, Last: 443}}},
		{SrcPrefixes: []netip.Prefix{netip.MustParsePrefix("100.64.0.9/32")},
			DstPorts: []wire.PortRange{{Prefix: netip.MustParsePrefix("100.64.0.1/32"), First: 5432, Last: 5432}}},
	}
	tests := []struct {
		name   string
		src    string
		port   uint16
		id     string
		accept bool
	}{
		{"udp rule skipped for tcp", "100.64.0.2", 80, "acls[1]", true},
		{"no protocols: tcp", "100.64.0.3", 22, "acls[1]", true},
		{"port outside", "100.64.0.2", 8080, "", false},
		{"source outside", "100.64.0.7", 80, "", false},
		{"unnamed rule", "100.64.0.9", 5432, "", true},
		{"other family", "fd7a:115c:a1e0::2", 80, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := RuleFor(rules, netip.MustParseAddr(tt.src), self, 6, tt.port)
			if id != tt.id || ok != tt.accept {
				t.Fatalf("RuleFor = %q, %v; want %q, %v", id, ok, tt.id, tt.accept)
			}
		})
	}
}
