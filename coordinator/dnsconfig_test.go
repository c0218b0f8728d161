package coordinator

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestParseDNSRecord(t *testing.T) {
	tests := []struct {
		in    string
		name  string
		addrs []string
		err   string
	}{
		{"wiki=100.64.0.9", "wiki.warren.internal", []string{"100.64.0.9"}, ""},
		{"Wiki.Corp.Example.=192.0.2.1, 2001:db8::1,192.0.2.1", "wiki.corp.example", []string{"192.0.2.1", "2001:db8::1"}, ""},
		{"printer=::ffff:10.0.0.7", "printer.warren.internal", []string{"10.0.0.7"}, ""},
		{"wiki", "", nil, "want name=ip"},
		{"=1.2.3.4", "", nil, "empty name"},
		{"a..b=1.2.3.4", "", nil, "not a DNS name"},
		{"a b=1.2.3.4", "", nil, "not a DNS name"},
		{"*.x=1.2.3.4", "", nil, "not a DNS name"},
		{strings.Repeat("a", 64) + "=1.2.3.4", "", nil, "not a DNS name"},
		{"wiki=", "", nil, "not an IP address"},
		{"wiki=db.example", "", nil, "not an IP address"},
		{"wiki=fe80::1%eth0", "", nil, "not an IP address"},
		{"wiki=0.0.0.0", "", nil, "not an IP address"},
		{"wiki=1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9", "", nil, "more than 8"},
	}
	for _, tt := range tests {
		rec, err := ParseDNSRecord(tt.in, "Warren.Internal")
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDNSRecord(%q) = %+v, %v; want an error with %q", tt.in, rec, err, tt.err)
			}
			continue
		}
		var addrs []string
		for _, a := range rec.Addrs {
			addrs = append(addrs, a.String())
		}
		if err != nil || rec.Name != tt.name || !slices.Equal(addrs, tt.addrs) {
			t.Errorf("ParseDNSRecord(%q) = %+v, %v; want %s %v", tt.in, rec, err, tt.name, tt.addrs)
		}
	}
}

func TestParseDNSRoute(t *testing.T) {
	tests := []struct {
		in        string
		domain    string
		resolvers []string
		err       string
	}{
		{"corp.example.com=100.64.0.5", "corp.example.com", []string{"100.64.0.5:53"}, ""},
		{"Corp.Example.com.=100.64.0.5:5353,[fd7a:115c:a1e0::5]:53,fd7a:115c:a1e0::6", "corp.example.com",
			[]string{"100.64.0.5:5353", "[fd7a:115c:a1e0::5]:53", "[fd7a:115c:a1e0::6]:53"}, ""},
		{"corp.example.com=10.0.0.53", "", nil, "must be a mesh address"},
		{"corp.example.com=100.64.0.5:0", "", nil, "must be a mesh address"},
		{"corp.example.com=resolver", "", nil, "not an IP address"},
		{"corp..example=100.64.0.5", "", nil, "not a DNS name"},
		{"corp.example.com", "", nil, "want domain=ip"},
	}
	for _, tt := range tests {
		rt, err := ParseDNSRoute(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDNSRoute(%q) = %+v, %v; want an error with %q", tt.in, rt, err, tt.err)
			}
			continue
		}
		var rs []string
		for _, a := range rt.Resolvers {
			rs = append(rs, a.String())
		}
		if err != nil || rt.Domain != tt.domain || !slices.Equal(rs, tt.resolvers) {
			t.Errorf("ParseDNSRoute(%q) = %+v, %v; want %s %v", tt.in, rt, err, tt.domain, tt.resolvers)
		}
	}
}

func TestValidateDNS(t *testing.T) {
	route := func(d string) wire.DNSRoute {
		return wire.DNSRoute{Domain: d, Resolvers: []netip.AddrPort{netip.MustParseAddrPort("100.64.0.5:53")}}
	}
	rec := wire.DNSRecord{Name: "wiki.warren.internal", Addrs: []netip.Addr{netip.MustParseAddr("100.64.0.9")}}
	tests := []struct {
		cfg *wire.DNSConfig
		err string
	}{
		{nil, ""},
		{&wire.DNSConfig{Records: []wire.DNSRecord{rec}, Routes: []wire.DNSRoute{route("corp.example.com")}}, ""},
		{&wire.DNSConfig{Records: []wire.DNSRecord{rec, rec}}, "twice"},
		{&wire.DNSConfig{Routes: []wire.DNSRoute{route("a.example"), route("a.example")}}, "twice"},
		{&wire.DNSConfig{Routes: []wire.DNSRoute{route("warren.internal")}}, "overlaps"},
		{&wire.DNSConfig{Routes: []wire.DNSRoute{route("internal")}}, "overlaps"},
		{&wire.DNSConfig{Routes: []wire.DNSRoute{route("x.warren.internal")}}, "overlaps"},
	}
	for i, tt := range tests {
		err := validateDNS(tt.cfg, "warren.internal.")
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%d: validateDNS = %v, want %q", i, err, tt.err)
		}
	}
}

// FuzzParseDNS: the flag parsers never panic, and what they accept is a
// valid, bounded, normalised configuration.
func FuzzParseDNS(f *testing.F) {
	f.Add("wiki=100.64.0.9,fd7a:115c:a1e0::9")
	f.Add("corp.example.com=100.64.0.5:5353,[fd7a:115c:a1e0::5]:53")
	f.Add("a..b=\x00")
	f.Fuzz(func(t *testing.T, s string) {
		if rec, err := ParseDNSRecord(s, "warren.internal"); err == nil {
			if rec.Name == "" || rec.Name != strings.ToLower(rec.Name) || strings.HasSuffix(rec.Name, ".") || len(rec.Addrs) == 0 || len(rec.Addrs) > maxDNSAddrs {
				t.Fatalf("ParseDNSRecord(%q) accepted %+v", s, rec)
			}
			for _, a := range rec.Addrs {
				if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
					t.Fatalf("ParseDNSRecord(%q) accepted address %v", s, a)
				}
			}
		}
		if rt, err := ParseDNSRoute(s); err == nil {
			if rt.Domain == "" || len(rt.Resolvers) == 0 || len(rt.Resolvers) > maxDNSAddrs {
				t.Fatalf("ParseDNSRoute(%q) accepted %+v", s, rt)
			}
			for _, r := range rt.Resolvers {
				if !slices.ContainsFunc(meshRanges, func(p netip.Prefix) bool { return p.Contains(r.Addr()) }) || r.Port() == 0 {
					t.Fatalf("ParseDNSRoute(%q) accepted resolver %v", s, r)
				}
			}
		}
	})
}
