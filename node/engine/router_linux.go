//go:build linux

package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// forwardingSysctls are the switches a kernel subnet router turns on.
var forwardingSysctls = []string{
	"/proc/sys/net/ipv4/ip_forward",
	"/proc/sys/net/ipv6/conf/all/forwarding",
}

// kernelRouter makes the kernel forward what peers send to the routes
// this node serves: IP forwarding on, and (with SNAT) an nftables table of
// Warren's own that masquerades mesh sources leaving by another interface.
// It adds no accept rule: the engine's filter has already dropped every
// packet from a peer that the policy does not allow before the kernel
// sees it. Close restores what it changed.
type kernelRouter struct {
	log   *slog.Logger
	table *nftables.Table // nil: no SNAT
	old   map[string]string
}

// natTableName is the nftables table (family inet) of the router on TUN
// device tun.
func natTableName(tun string) string { return "warren-" + tun }

// startKernelRouter turns the router on for the TUN device tun. It first
// deletes a table of the same name that a crashed run left behind.
func startKernelRouter(tun string, snat bool, log *slog.Logger) (*kernelRouter, error) {
	r := &kernelRouter{log: log, old: make(map[string]string)}
	// A stale table goes even with SNAT off: it would masquerade.
	if err := deleteNATTable(tun); err != nil && snat {
		return nil, err
	}
	for _, path := range forwardingSysctls {
		old, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) { // no IPv6 in this kernel
			continue
		}
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("engine: subnet router: read %s: %w", path, err)
		}
		if v := strings.TrimSpace(string(old)); v != "1" {
			if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
				r.Close()
				return nil, fmt.Errorf("engine: subnet router: enable forwarding (%s): %w: run warrend as root", path, err)
			}
			r.old[path] = v
		}
	}
	if snat {
		t, err := addNATTable(tun)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.table = t
	}
	log.Info("subnet router: the kernel forwards for peers", "device", tun, "snat", snat)
	return r, nil
}

// Close deletes the table and restores the forwarding switches it turned on.
func (r *kernelRouter) Close() error {
	var errs []error
	if r.table != nil {
		c, err := nftables.New()
		if err == nil {
			c.DelTable(r.table)
			err = c.Flush()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("engine: subnet router: delete nftables table %s: %w", r.table.Name, err))
		}
		r.table = nil
	}
	for path, v := range r.old {
		if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("engine: subnet router: restore %s: %w", path, err))
		}
		delete(r.old, path)
	}
	return errors.Join(errs...)
}

// deleteNATTable deletes the router's table for tun if it exists.
func deleteNATTable(tun string) error {
	c, err := nftables.New()
	if err != nil {
		return nftError("open netlink", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: natTableName(tun)}
	// Adding an existing table is no error, so add-then-delete deletes it
	// whether it was there or not, in one transaction.
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return nftError("delete stale table "+t.Name, err)
	}
	return nil
}

// addNATTable creates the router's table for tun with its masquerade rules.
func addNATTable(tun string) (*nftables.Table, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, nftError("open netlink", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: natTableName(tun)})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	for _, exprs := range masqueradeRules(tun) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	if err := c.Flush(); err != nil {
		return nil, nftError("create table "+t.Name, err)
	}
	return t, nil
}

// masqueradeRules are the rules of the postrouting chain: a packet with a
// mesh source address (100.64.0.0/10, fd7a:115c:a1e0::/48) that leaves by
// an interface other than tun gets the address of that interface, like
//
//	meta nfproto ipv4 ip saddr 100.64.0.0/10 oifname != "tun" masquerade
//	meta nfproto ipv6 ip6 saddr fd7a:115c:a1e0::/48 oifname != "tun" masquerade
//
// Mesh sources arrive on tun: the host's own traffic to the mesh leaves by
// tun and is untouched.
func masqueradeRules(tun string) [][]expr.Any {
	var rules [][]expr.Any
	for _, p := range meshPrefixes {
		proto, off := byte(unix.NFPROTO_IPV4), uint32(12) // IPv4 source address
		if p.Addr().Is6() {
			proto, off = unix.NFPROTO_IPV6, 8
		}
		n := uint32(p.Addr().BitLen() / 8)
		mask := net.CIDRMask(p.Bits(), p.Addr().BitLen())
		rules = append(rules, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(tun)},
			&expr.Masq{},
		})
	}
	return rules
}

// ifname is an interface name as nftables compares it: NUL-padded to
// IFNAMSIZ.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func nftError(step string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("engine: subnet router: nftables: %s: %w: run warrend as root (or with CAP_NET_ADMIN)", step, err)
	}
	return fmt.Errorf("engine: subnet router: nftables: %s: %w (is the kernel's nf_tables module available? or run with --snat-subnet-routes=false)", step, err)
}

// setSubnetRoutes adds and deletes the kernel routes for peers' subnet
// routes on the device.
func (d *kernelDevice) setSubnetRoutes(add, del []tunRoute) error {
	link, err := netlink.LinkByName(d.name)
	if err != nil {
		return tunError(fmt.Sprintf("find link %s", d.name), err)
	}
	var errs []error
	for _, r := range del {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r.dst), Src: r.src.AsSlice(), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteDel(route); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, tunError(fmt.Sprintf("delete route %s via %s", r.dst, d.name), err))
		}
	}
	for _, r := range add {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r.dst), Src: r.src.AsSlice(), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(route); err != nil {
			errs = append(errs, tunError(fmt.Sprintf("add route %s via %s", r.dst, d.name), err))
		}
	}
	return errors.Join(errs...)
}
