package coordinator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/warrenmesh/warren/internal/wire"
)

// Bounds on the DNS configuration: it goes into every full map.
const (
	maxDNSRecords   = 1024
	maxDNSRoutes    = 64
	maxDNSAddrs     = 8 // per record, per route
	maxDNSConfigLen = 255
)

// meshRanges are the mesh's address ranges: split-DNS resolvers must be
// in them (nodes dial them through the mesh and nothing else).
var meshRanges = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fd7a:115c:a1e0::/48"),
}

// ParseDNSRecord parses an extra record, "name=ip[,ip...]" (the
// coordinator's --dns-record). A name without a dot is a name under
// domain ("wiki" is wiki.<domain>); a name with one is taken as full.
func ParseDNSRecord(s, domain string) (wire.DNSRecord, error) {
	name, list, ok := strings.Cut(s, "=")
	if !ok || len(s) > maxDNSConfigLen {
		return wire.DNSRecord{}, fmt.Errorf("dns record %q: want name=ip[,ip]", s)
	}
	name, err := dnsName(name)
	if err != nil {
		return wire.DNSRecord{}, fmt.Errorf("dns record %q: %w", s, err)
	}
	if !strings.Contains(name, ".") {
		if domain == "" {
			return wire.DNSRecord{}, fmt.Errorf("dns record %q: a bare label needs a mesh domain", s)
		}
		if name, err = dnsName(name + "." + domain); err != nil {
			return wire.DNSRecord{}, fmt.Errorf("dns record %q: %w", s, err)
		}
	}
	var addrs []netip.Addr
	for f := range strings.SplitSeq(list, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil || a.Zone() != "" || a.IsUnspecified() {
			return wire.DNSRecord{}, fmt.Errorf("dns record %q: %q is not an IP address", s, f)
		}
		if !slices.Contains(addrs, a.Unmap()) {
			addrs = append(addrs, a.Unmap())
		}
	}
	if len(addrs) > maxDNSAddrs {
		return wire.DNSRecord{}, fmt.Errorf("dns record %q: more than %d addresses", s, maxDNSAddrs)
	}
	return wire.DNSRecord{Name: name, Addrs: addrs}, nil
}

// ParseDNSRoute parses a split-DNS route, "domain=ip[,ip...]" (the
// coordinator's --dns-route); an address may carry a port ("[fd7a::1]:5353",
// "100.64.0.9:5353"), 53 otherwise. The resolvers must be mesh addresses:
// nodes reach them through the mesh.
func ParseDNSRoute(s string) (wire.DNSRoute, error) {
	domain, list, ok := strings.Cut(s, "=")
	if !ok || len(s) > maxDNSConfigLen {
		return wire.DNSRoute{}, fmt.Errorf("dns route %q: want domain=ip[,ip]", s)
	}
	domain, err := dnsName(domain)
	if err != nil {
		return wire.DNSRoute{}, fmt.Errorf("dns route %q: %w", s, err)
	}
	var rs []netip.AddrPort
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		ap, err := netip.ParseAddrPort(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return wire.DNSRoute{}, fmt.Errorf("dns route %q: %q is not an IP address (with an optional port)", s, f)
			}
			ap = netip.AddrPortFrom(a, 53)
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ap.Addr().Zone() != "" || ap.Port() == 0 || !slices.ContainsFunc(meshRanges, func(p netip.Prefix) bool { return p.Contains(ap.Addr()) }) {
			return wire.DNSRoute{}, fmt.Errorf("dns route %q: resolver %s must be a mesh address (100.64.0.0/10 or fd7a:115c:a1e0::/48) with a non-zero port: nodes reach it through the mesh", s, f)
		}
		if !slices.Contains(rs, ap) {
			rs = append(rs, ap)
		}
	}
	if len(rs) > maxDNSAddrs {
		return wire.DNSRoute{}, fmt.Errorf("dns route %q: more than %d resolvers", s, maxDNSAddrs)
	}
	return wire.DNSRoute{Domain: domain, Resolvers: rs}, nil
}

// dnsName checks a DNS name and returns it lower case without a trailing
// dot.
func dnsName(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if name == "" {
		return "", errors.New("empty name")
	}
	if _, ok := dns.IsDomainName(name); !ok || strings.ContainsAny(name, " \t\\/*") || strings.Contains(name, "..") {
		return "", fmt.Errorf("%q is not a DNS name", s)
	}
	return name, nil
}

// validateDNS checks the configuration as a whole: bounded, no name or
// domain twice, no route for the mesh domain itself (the nodes answer it).
func validateDNS(cfg *wire.DNSConfig, domain string) error {
	if cfg == nil {
		return nil
	}
	if len(cfg.Records) > maxDNSRecords || len(cfg.Routes) > maxDNSRoutes {
		return fmt.Errorf("dns: at most %d records and %d routes", maxDNSRecords, maxDNSRoutes)
	}
	domain = strings.ToLower(strings.Trim(domain, "."))
	seen := map[string]bool{}
	for _, r := range cfg.Records {
		if seen[r.Name] {
			return fmt.Errorf("dns record %s given twice", r.Name)
		}
		seen[r.Name] = true
	}
	seen = map[string]bool{}
	for _, r := range cfg.Routes {
		if seen[r.Domain] {
			return fmt.Errorf("dns route %s given twice", r.Domain)
		}
		seen[r.Domain] = true
		if r.Domain == domain || strings.HasSuffix(domain, "."+r.Domain) || strings.HasSuffix(r.Domain, "."+domain) {
			return fmt.Errorf("dns route %s overlaps the mesh domain %s, which the nodes answer themselves", r.Domain, domain)
		}
	}
	return nil
}
