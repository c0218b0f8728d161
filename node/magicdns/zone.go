package magicdns

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Record is a name and the addresses it stands for.
type Record struct {
	// Name is a DNS label for Zone.Hosts ("db") and a full name under the
	// mesh domain for Zone.Extra ("wiki.warren.internal"); case does not
	// matter and a trailing dot is optional.
	Name  string
	Addrs []netip.Addr
}

// Route sends the names under Domain to Resolvers (reached through the
// mesh) instead of the system's resolvers.
type Route struct {
	Domain    string
	Resolvers []netip.AddrPort
}

// Zone is what the resolver answers itself, built from the netmap.
type Zone struct {
	// Domain is the mesh domain, e.g. "warren.internal".
	Domain string
	// Hosts are the node itself and the peers it can see, by DNS label:
	// each answers as <label>.<Domain> and as the bare <label>.
	Hosts []Record
	// Extra are the coordinator's extra records, full names under Domain.
	Extra []Record
	// Routes are the coordinator's split-DNS routes.
	Routes []Route
}

// meshPrefixes are the mesh's address ranges: their reverse names are
// answered here (PTR for known addresses, NXDOMAIN for the rest).
var meshPrefixes = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fd7a:115c:a1e0::/48"),
}

// index is a Zone prepared for lookups; it is never changed once built.
type index struct {
	domain string                  // lower case, no trailing dot
	names  map[string][]netip.Addr // full lower-case names, no trailing dot
	short  map[string][]netip.Addr // host labels
	ptr    map[netip.Addr]string   // address -> full name with trailing dot
	routes []Route                 // longest domain first, lower case
}

// canonical lower-cases name and drops its trailing dot.
func canonical(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

func newIndex(z Zone) *index {
	x := &index{domain: canonical(z.Domain), names: map[string][]netip.Addr{},
		short: map[string][]netip.Addr{}, ptr: map[netip.Addr]string{}}
	for _, h := range z.Hosts {
		label := canonical(h.Name)
		if label == "" || strings.Contains(label, ".") {
			continue
		}
		full := label
		if x.domain != "" {
			full = label + "." + x.domain
		}
		x.short[label] = h.Addrs
		x.names[full] = h.Addrs
		for _, a := range h.Addrs {
			x.ptr[a.Unmap()] = full + "."
		}
	}
	for _, r := range z.Extra {
		name := canonical(r.Name)
		if name == "" {
			continue
		}
		x.names[name] = r.Addrs
	}
	for _, r := range z.Routes {
		d := canonical(r.Domain)
		if d == "" || len(r.Resolvers) == 0 {
			continue
		}
		x.routes = append(x.routes, Route{Domain: d, Resolvers: slices.Clone(r.Resolvers)})
	}
	slices.SortStableFunc(x.routes, func(a, b Route) int { return len(b.Domain) - len(a.Domain) })
	return x
}

// under reports whether name is domain or a name below it.
func under(name, domain string) bool {
	return domain != "" && (name == domain || strings.HasSuffix(name, "."+domain))
}

// lookup is what the zone says about a question: handled reports whether
// the zone is authoritative for it (otherwise it is forwarded), rcode and
// answers what to reply.
func (x *index) lookup(q dns.Question) (handled bool, rcode int, answers []dns.RR) {
	name := canonical(q.Name)
	if addrs, ok := x.names[name]; ok {
		return true, dns.RcodeSuccess, addrRRs(q, addrs)
	}
	if addrs, ok := x.short[name]; ok {
		return true, dns.RcodeSuccess, addrRRs(q, addrs)
	}
	if a, ok := reverseAddr(name); ok && inMesh(a) {
		if target, ok := x.ptr[a]; ok {
			if q.Qtype == dns.TypePTR {
				return true, dns.RcodeSuccess, []dns.RR{&dns.PTR{Hdr: header(q, dns.TypePTR), Ptr: target}}
			}
			return true, dns.RcodeSuccess, nil
		}
		return true, dns.RcodeNameError, nil
	}
	if under(name, x.domain) {
		if name == x.domain {
			return true, dns.RcodeSuccess, nil // the zone's apex: no records of its own
		}
		return true, dns.RcodeNameError, nil
	}
	return false, 0, nil
}

// route returns the split-DNS route for name, if any.
func (x *index) route(name string) (Route, bool) {
	name = canonical(name)
	for _, r := range x.routes {
		if under(name, r.Domain) {
			return r, true
		}
	}
	return Route{}, false
}

const ttl = 60 // seconds: peers come and go with the netmap

func header(q dns.Question, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// addrRRs answers q from addrs: A and AAAA records for those types, and no
// records (NODATA) for any other type.
func addrRRs(q dns.Question, addrs []netip.Addr) []dns.RR {
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return nil
	}
	var out []dns.RR
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case a.Is4() && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
			out = append(out, &dns.A{Hdr: header(q, dns.TypeA), A: a.AsSlice()})
		case a.Is6() && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
			out = append(out, &dns.AAAA{Hdr: header(q, dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	return out
}

func inMesh(a netip.Addr) bool {
	for _, p := range meshPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// reverseAddr reads the address of a reverse name (lower case, no trailing
// dot): d.c.b.a.in-addr.arpa, or 32 nibbles under ip6.arpa.
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		slices.Reverse(parts)
		a, err := netip.ParseAddr(strings.Join(parts, "."))
		return a, err == nil && a.Is4()
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(rest, ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i // nibbles run from the lowest
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
