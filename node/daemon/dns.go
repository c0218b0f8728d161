package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/engine"
	"github.com/warrenmesh/warren/node/magicdns"
	"github.com/warrenmesh/warren/node/osdns"
)

// DNSOff, as Config.DNSMethod, serves MagicDNS in TUN mode without
// pointing the operating system at it.
const DNSOff = "off"

// serviceAddrs are MagicDNS's addresses, given to the TUN device.
var serviceAddrs = []netip.Addr{magicdns.ServiceV4, magicdns.ServiceV6}

// meshDNS is a TUN-mode session's MagicDNS: the resolver listening on the
// service addresses and the OS configuration pointing at it. The session's
// goroutines call it: start with the engine, update with each netmap,
// stop before the engine closes. stop undoes the OS configuration.
type meshDNS struct {
	d      *Daemon
	res    *magicdns.Resolver
	own    []netip.Addr
	cancel context.CancelFunc
	wg     sync.WaitGroup // the serving goroutines

	mu      sync.Mutex
	domains []string // what the OS is configured for; nil: nothing
	status  string   // localapi.Status.MagicDNS
}

// startDNS serves MagicDNS on the service addresses of eng's device (TUN
// mode only): UDP and TCP on each, answering only this host.
func (s *session) startDNS(eng *engine.Engine, nm *controlclient.Netmap) (*meshDNS, error) {
	d := s.d
	var own []netip.Addr
	for _, p := range nm.Self.Addresses {
		own = append(own, p.Addr().Unmap())
	}
	m := &meshDNS{d: d, own: own}
	m.res = magicdns.New(magicdns.Config{
		Upstreams: d.dns.Upstreams(),
		Dial:      eng.DialContext,
		Allow:     func(src netip.Addr) bool { return magicdns.IsLocalSource(src, own) },
		Logger:    d.log.With("part", "dns"),
	})
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	var lc net.ListenConfig
	for _, a := range serviceAddrs {
		addr := netip.AddrPortFrom(a, 53).String()
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			m.stop()
			return nil, fmt.Errorf("magicdns: listen on %s/udp: %w", addr, err)
		}
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			pc.Close()
			m.stop()
			return nil, fmt.Errorf("magicdns: listen on %s/tcp: %w", addr, err)
		}
		m.wg.Add(2)
		go func() { // ends with ctx
			defer m.wg.Done()
			if err := m.res.ServeUDP(ctx, pc.(*net.UDPConn)); err != nil {
				d.log.Error("magicdns stopped serving UDP", "addr", addr, "err", err)
			}
		}()
		go func() { // ends with ctx
			defer m.wg.Done()
			if err := m.res.ServeTCP(ctx, ln); err != nil {
				d.log.Error("magicdns stopped serving TCP", "addr", addr, "err", err)
			}
		}()
	}
	d.log.Info("MagicDNS serving", "addresses", serviceAddrs, "upstreams", d.dns.Upstreams())
	return m, nil
}

// update gives the resolver nm's names and points the OS at it for the
// mesh domain and the split-DNS routes' domains (when they changed).
func (m *meshDNS) update(nm *controlclient.Netmap, iface string) {
	z := dnsZone(nm)
	m.res.SetZone(z)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.d.cfg.DNSMethod == DNSOff || z.Domain == "" {
		m.status = DNSOff
		return
	}
	domains := []string{z.Domain}
	for _, r := range z.Routes {
		domains = append(domains, r.Domain)
	}
	if slices.Equal(domains, m.domains) {
		return
	}
	if err := m.d.dns.Set(osdns.Config{Interface: iface, Nameservers: serviceAddrs, Domains: domains}); err != nil {
		m.d.log.Error("point the system's DNS at MagicDNS (names of peers resolve only through the proxy and 100.100.100.100)", "err", err)
		m.status = "unconfigured"
		return
	}
	m.domains, m.status = domains, string(m.d.dns.Method())
	m.d.log.Info("system DNS sends the mesh's domains to MagicDNS", "domains", domains)
}

// state is what Status reports as MagicDNS.
func (m *meshDNS) state() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// stop undoes the OS configuration and stops serving.
func (m *meshDNS) stop() {
	if err := m.d.dns.Restore(); err != nil {
		m.d.log.Error("restore the system's DNS configuration", "err", err)
	}
	m.mu.Lock()
	m.domains = nil
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// dnsZone is what MagicDNS answers for nm: the node and its peers by
// name, the coordinator's extra records and split-DNS routes.
func dnsZone(nm *controlclient.Netmap) magicdns.Zone {
	z := magicdns.Zone{Domain: nm.Domain}
	for _, n := range append([]wire.Node{nm.Self}, nm.Peers...) {
		if n.Name == "" {
			continue
		}
		var addrs []netip.Addr
		for _, p := range n.Addresses {
			addrs = append(addrs, p.Addr().Unmap())
		}
		z.Hosts = append(z.Hosts, magicdns.Record{Name: n.Name, Addrs: addrs})
	}
	if nm.DNS != nil {
		for _, r := range nm.DNS.Records {
			z.Extra = append(z.Extra, magicdns.Record{Name: r.Name, Addrs: r.Addrs})
		}
		for _, r := range nm.DNS.Routes {
			z.Routes = append(z.Routes, magicdns.Route{Domain: r.Domain, Resolvers: r.Resolvers})
		}
	}
	return z
}
