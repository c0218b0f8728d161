//go:build linux

package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CheckExitNode reports whether this OS can use an exit node in the
// given mode: on Linux in both.
func CheckExitNode(tunMode bool) error { return nil }

// markConn sets exitMark on a socket (needs CAP_NET_ADMIN, which TUN
// mode has; without it the mark is skipped: such a node cannot route
// through an exit node anyway).
func markConn(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, exitMark)
	})
	if err != nil {
		return err
	}
	if errors.Is(serr, unix.EPERM) {
		return nil
	}
	return serr
}

// exitRouting installs (on) or removes (!on) the exit-node policy
// routing for the TUN device dev whose mesh addresses are addrs. It
// first removes whatever a previous run left, so installing twice or
// after a crash leaves one copy.
func exitRouting(dev string, addrs []netip.Addr, on, allowLAN bool) error {
	if err := removeExitRouting(); err != nil || !on {
		return err
	}
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return tunError("exit node: find link "+dev, err)
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		var src netip.Addr
		for _, a := range addrs {
			if a.Is4() == (fam == netlink.FAMILY_V4) {
				src = a
				break
			}
		}
		if !src.IsValid() {
			continue
		}
		dst := ipNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0))
		if fam == netlink.FAMILY_V6 {
			dst = ipNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Src: src.AsSlice(), Table: exitTable, Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteAdd(r); err != nil {
			removeExitRouting()
			return tunError(fmt.Sprintf("exit node: add default route via %s to table %d", dev, exitTable), err)
		}
		if allowLAN {
			if err := throwLAN(fam, link.Attrs().Index); err != nil {
				removeExitRouting()
				return err
			}
		}
		rule := netlink.NewRule()
		rule.Family, rule.Table, rule.Mark, rule.Invert, rule.Priority = fam, exitTable, exitMark, true, exitRulePref
		if err := netlink.RuleAdd(rule); err != nil {
			removeExitRouting()
			return tunError(fmt.Sprintf("exit node: add rule not fwmark %d lookup %d", exitMark, exitTable), err)
		}
	}
	return nil
}

// throwLAN adds to exitTable a throw route for each directly connected
// network of family fam in the main table (link scope, not through the
// TUN device tunIndex).
func throwLAN(fam, tunIndex int) error {
	rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return tunError("exit node: list the main routing table", err)
	}
	for _, r := range rs {
		if r.Scope != netlink.SCOPE_LINK || r.Dst == nil || r.LinkIndex == tunIndex || r.Dst.IP.IsLinkLocalUnicast() {
			continue
		}
		t := &netlink.Route{Dst: r.Dst, Table: exitTable, Type: unix.RTN_THROW}
		if err := netlink.RouteAdd(t); err != nil && !errors.Is(err, unix.EEXIST) {
			return tunError(fmt.Sprintf("exit node: add throw route %s to table %d", r.Dst, exitTable), err)
		}
	}
	return nil
}

// removeExitRouting deletes the exit-node rules and every route of
// exitTable (both families).
func removeExitRouting() error {
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := netlink.RuleList(fam)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rules {
			if r.Table == exitTable {
				r := r
				if err := netlink.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("delete rule to table %d: %w", exitTable, err))
				}
			}
		}
		rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: exitTable}, netlink.RT_FILTER_TABLE)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rs {
			r := r
			if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route %s from table %d: %w", r.Dst, exitTable, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("engine: exit node: restore routing: %w", err)
	}
	return nil
}
