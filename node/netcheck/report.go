package netcheck

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Mapping describes how the node's NAT maps its UDP socket to public
// addresses.
type Mapping string

// Mapping behaviours.
const (
	// MappingUnknown: fewer than two distinct STUN server addresses (of one
	// address family) answered, so there is nothing to compare.
	MappingUnknown Mapping = "unknown"
	// MappingEndpointIndependent: every STUN server saw the same public
	// address and port. Hole punching works.
	MappingEndpointIndependent Mapping = "endpoint-independent"
	// MappingEndpointDependent: different STUN servers saw different
	// public ports (or addresses): a symmetric NAT, where the endpoint a
	// peer would need is not the one STUN saw. Hole punching will fail;
	// traffic stays on the relay unless the peer's side is open.
	MappingEndpointDependent Mapping = "endpoint-dependent"
)

// Method says how a region's latency was measured.
type Method string

// Latency measurement methods.
const (
	MethodSTUN Method = "stun" // STUN round trip over UDP
	MethodHTTP Method = "http" // GET URL+"/probe" (includes HTTP overhead)
)

// Report is the result of one Run.
type Report struct {
	// UDP reports whether some STUN server answered.
	UDP bool `json:"udp"`
	// PublicEndpoint is the mapped address from the first successful STUN
	// answer: where the Internet sees this socket. Zero when none.
	PublicEndpoint netip.AddrPort `json:"publicEndpoint,omitzero"`
	// MappedEndpoints are all distinct mapped addresses seen, first seen
	// first (more than one per family means endpoint-dependent mapping).
	MappedEndpoints []netip.AddrPort `json:"mappedEndpoints,omitempty"`
	// MappingVariesByDest is the NAT's mapping behaviour.
	MappingVariesByDest Mapping `json:"mapping"`
	// RegionLatency is the best round trip per reachable region, by
	// STUN or, failing that, by HTTP probe (see Regions for which).
	RegionLatency map[int]time.Duration `json:"regionLatency,omitempty"`
	// PreferredRegion is the reachable region with the lowest latency
	// (the lower ID on a tie); 0 when none is reachable.
	PreferredRegion int `json:"preferredRegion"`
	// Regions lists every region of the map, in map order.
	Regions []RegionResult `json:"regions"`
	// Servers lists every STUN server probed, in map order.
	Servers []ServerResult `json:"servers,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"duration"`
}

// RegionResult is the outcome for one relay region.
type RegionResult struct {
	ID   int    `json:"id"`
	Code string `json:"code,omitempty"`
	// Latency is the best round trip; zero when unreachable.
	Latency time.Duration `json:"latency,omitempty"`
	// Method is how Latency was measured; empty when unreachable.
	Method Method `json:"method,omitempty"`
	// Error says why the HTTP probe failed, when it ran and failed.
	Error string `json:"error,omitempty"`
}

// ServerResult is the outcome for one STUN server.
type ServerResult struct {
	Region int    `json:"region"`
	Server string `json:"server"` // as listed in the DERP map
	// Addr is the address the server resolved to; zero if it did not.
	Addr netip.AddrPort `json:"addr,omitzero"`
	// Mapped is the address the server saw us at; zero without an answer.
	Mapped netip.AddrPort `json:"mapped,omitzero"`
	// RTT is the round trip of the answered request; zero without one.
	RTT time.Duration `json:"rtt,omitempty"`
	// Sends is how many requests went out (retransmissions included).
	Sends int    `json:"sends"`
	Error string `json:"error,omitempty"`
}

// report builds the Report once every probe goroutine has ended.
func (r *run) report() *Report {
	rep := &Report{MappingVariesByDest: MappingUnknown}
	var first time.Time
	for _, p := range r.probes {
		s := ServerResult{Region: p.region, Server: p.server, Addr: p.addr, Sends: p.sends}
		if p.err != nil {
			s.Error = p.err.Error()
		}
		if p.answered {
			rep.UDP = true
			s.RTT = p.reply.rtt
		}
		if p.answered && p.reply.err == nil {
			s.Mapped = p.reply.mapped
			if first.IsZero() || p.reply.at.Before(first) {
				first, rep.PublicEndpoint = p.reply.at, p.reply.mapped
			}
		}
		rep.Servers = append(rep.Servers, s)
	}
	rep.MappedEndpoints, rep.MappingVariesByDest = classify(r.probes)

	r.mu.Lock()
	defer r.mu.Unlock()
	var best time.Duration
	for _, reg := range r.m.Regions {
		rr := RegionResult{ID: reg.ID, Code: reg.Code, Error: r.httpErr[reg.ID]}
		if l, ok := r.latency[reg.ID]; ok {
			rr.Latency, rr.Method = l.d, l.method
			if rep.RegionLatency == nil {
				rep.RegionLatency = make(map[int]time.Duration)
			}
			rep.RegionLatency[reg.ID] = l.d
			if rep.PreferredRegion == 0 || l.d < best || (l.d == best && reg.ID < rep.PreferredRegion) {
				rep.PreferredRegion, best = reg.ID, l.d
			}
		}
		rep.Regions = append(rep.Regions, rr)
	}
	return rep
}

// classify returns the distinct mapped endpoints, in arrival order, and
// the mapping behaviour they show. Servers are compared per address family
// (a socket's IPv4 and IPv6 mappings differ by nature); distinct servers
// are distinct IP:port pairs, since an endpoint-dependent NAT allocates a
// new mapping per destination address and port.
func classify(probes []*stunProbe) ([]netip.AddrPort, Mapping) {
	var ok []*stunProbe
	for _, p := range probes {
		if p.answered && p.reply.err == nil {
			ok = append(ok, p)
		}
	}
	slices.SortStableFunc(ok, func(a, b *stunProbe) int { return a.reply.at.Compare(b.reply.at) })

	var mapped []netip.AddrPort
	type family struct {
		servers map[netip.AddrPort]bool
		mapped  map[netip.AddrPort]bool
	}
	fams := map[bool]*family{} // keyed by "server is IPv4"
	for _, p := range ok {
		if !slices.Contains(mapped, p.reply.mapped) {
			mapped = append(mapped, p.reply.mapped)
		}
		f := fams[p.addr.Addr().Is4()]
		if f == nil {
			f = &family{servers: map[netip.AddrPort]bool{}, mapped: map[netip.AddrPort]bool{}}
			fams[p.addr.Addr().Is4()] = f
		}
		f.servers[p.addr] = true
		f.mapped[p.reply.mapped] = true
	}
	result := MappingUnknown
	for _, f := range fams {
		if len(f.servers) < 2 {
			continue
		}
		if len(f.mapped) > 1 {
			return mapped, MappingEndpointDependent
		}
		result = MappingEndpointIndependent
	}
	return mapped, result
}

// String formats the report for people, as `warren netcheck` prints it.
func (r *Report) String() string {
	if r == nil {
		return "no report"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "UDP: %s\n", yesNo(r.UDP))
	if r.PublicEndpoint.IsValid() {
		fmt.Fprintf(&b, "Public endpoint: %s\n", r.PublicEndpoint)
	} else {
		b.WriteString("Public endpoint: unknown (no STUN answer)\n")
	}
	if len(r.MappedEndpoints) > 1 {
		fmt.Fprintf(&b, "Mapped endpoints: %s\n", joinAddrs(r.MappedEndpoints))
	}
	fmt.Fprintf(&b, "NAT mapping: %s", r.MappingVariesByDest)
	switch r.MappingVariesByDest {
	case MappingEndpointDependent:
		b.WriteString(" (symmetric NAT: direct connections unlikely, relay will be used)")
	case MappingUnknown:
		b.WriteString(" (fewer than two STUN servers answered)")
	}
	b.WriteString("\n")
	if r.PreferredRegion != 0 {
		fmt.Fprintf(&b, "Preferred region: %s\n", r.regionName(r.PreferredRegion))
	} else {
		b.WriteString("Preferred region: none reachable (check the network and the relay URLs)\n")
	}
	b.WriteString("Regions:\n")
	regions := slices.Clone(r.Regions)
	slices.SortStableFunc(regions, func(a, b RegionResult) int {
		// Reachable first, fastest first; then the rest by ID.
		switch {
		case a.Latency > 0 && b.Latency > 0:
			return cmp.Or(cmp.Compare(a.Latency, b.Latency), cmp.Compare(a.ID, b.ID))
		case a.Latency > 0:
			return -1
		case b.Latency > 0:
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, rr := range regions {
		name := r.regionName(rr.ID)
		switch {
		case rr.Latency > 0:
			fmt.Fprintf(&b, "  %-16s %8s  (%s)\n", name, fmtLatency(rr.Latency), rr.Method)
		case rr.Error != "":
			fmt.Fprintf(&b, "  %-16s %8s  (%s)\n", name, "-", rr.Error)
		default:
			fmt.Fprintf(&b, "  %-16s %8s\n", name, "-")
		}
	}
	return b.String()
}

func (r *Report) regionName(id int) string {
	for _, rr := range r.Regions {
		if rr.ID == id && rr.Code != "" {
			return fmt.Sprintf("%d/%s", id, rr.Code)
		}
	}
	return fmt.Sprint(id)
}

func fmtLatency(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no (UDP blocked or no STUN server answered)"
}

func joinAddrs(as []netip.AddrPort) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
