//go:build linux

package engine

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// tunClonePath is the TUN clone device (a variable for tests).
var tunClonePath = "/dev/net/tun"

// openKernelTUN creates the kernel TUN device cfg.TUN with wireguard-go's
// tun package (which keeps the virtio offloads: TSO/GSO in, GRO out), gives
// it the node's mesh addresses, brings it up and routes the mesh ranges
// through it. The device lives in the network namespace of the calling
// thread. Closing it makes the kernel delete the link, and its addresses
// and routes with it.
func openKernelTUN(cfg Config) (netDevice, error) {
	if _, err := os.Stat(tunClonePath); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("engine: kernel TUN mode: %s does not exist: load the tun module (modprobe tun), or in a container pass the device in (docker run --device /dev/net/tun --cap-add NET_ADMIN); or leave --tun empty to use userspace mode", tunClonePath)
	}
	tdev, err := tun.CreateTUN(cfg.TUN, cfg.MTU)
	if err != nil {
		return nil, tunError(fmt.Sprintf("create TUN device %q", cfg.TUN), err)
	}
	name, err := tdev.Name()
	if err != nil {
		tdev.Close()
		return nil, fmt.Errorf("engine: kernel TUN mode: read device name: %w", err)
	}
	addrs, err := configureTUN(name, cfg.Addresses)
	if err == nil {
		err = addServiceAddrs(name, cfg.ServiceAddrs)
	}
	if err != nil {
		tdev.Close()
		return nil, err
	}
	return &kernelDevice{Device: tdev, name: name, addrs: addrs}, nil
}

// configureTUN carries out planTUN on the link name: it assigns the mesh
// addresses (as host addresses), sets the link up and adds a route for each
// mesh range of a family the node has an address in, preferring the node's
// address as source. It returns the addresses assigned.
func configureTUN(name string, prefixes []netip.Prefix) ([]netip.Addr, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, tunError(fmt.Sprintf("find link %s", name), err)
	}
	plan := planTUN(prefixes)
	for _, a := range plan.addrs {
		host := hostPrefix(a)
		// NODAD: the address is usable at once (a listener can bind it); a
		// /128 on a point-to-point device has no neighbours to collide with.
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(host), Flags: unix.IFA_F_NODAD}); err != nil {
			return nil, tunError(fmt.Sprintf("add address %s to %s", host, name), err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, tunError(fmt.Sprintf("set %s up", name), err)
	}
	for _, r := range plan.routes {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r.dst), Src: r.src.AsSlice(), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteAdd(route); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return nil, fmt.Errorf("engine: kernel TUN mode: route %s already exists on this host (another Warren or VPN TUN device?): remove it (ip route del %s) or use userspace mode", r.dst, r.dst)
			}
			return nil, tunError(fmt.Sprintf("add route %s via %s", r.dst, name), err)
		}
	}
	return plan.addrs, nil
}

// addServiceAddrs gives the device the service addresses as host
// addresses (no route: the kernel delivers traffic to a local address
// itself, and it never enters the tunnel).
func addServiceAddrs(name string, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return tunError(fmt.Sprintf("find link %s", name), err)
	}
	for _, a := range addrs {
		host := netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(host), Flags: unix.IFA_F_NODAD}); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("engine: kernel TUN mode: service address %s is already on this host (another Warren or Tailscale?): remove it or use userspace mode", a)
			}
			return tunError(fmt.Sprintf("add service address %s to %s", host, name), err)
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// tunError wraps err from step, saying what to do when it is a missing
// privilege or a name already in use.
func tunError(step string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("engine: kernel TUN mode: %s: %w: it needs root (or CAP_NET_ADMIN): run warrend as root, or leave --tun empty to use userspace mode", step, err)
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("engine: kernel TUN mode: %s: %w: is the name longer than 15 characters, or used by another device? pick another --tun name", step, err)
	}
	return fmt.Errorf("engine: kernel TUN mode: %s: %w", step, err)
}
