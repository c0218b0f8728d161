package engine

import (
	"fmt"
	"net/netip"
	"unicode/utf16"
)

// This file is the OS-independent half of kernel TUN mode on Windows: the
// adapter name, the addresses and routes per family, and the errors that
// say what to do. It calls nothing, so its tests run on every OS;
// tun_windows.go creates the Wintun adapter and configures it with
// winipcfg.

// wintunDLL is the Wintun driver's user-mode library. wireguard-go loads
// it at run time from the directory of the executable or from System32;
// Warren does not ship it.
const wintunDLL = "wintun.dll"

// wintunNameMax is the longest adapter name Wintun takes, in UTF-16 code
// units (MAX_ADAPTER_NAME less its terminating zero).
const wintunNameMax = 127

// wintunAdapterName checks the --tun name as a Wintun adapter name: it
// shows as the adapter's name in Windows' network settings.
func wintunAdapterName(requested string) (string, error) {
	n := len(utf16.Encode([]rune(requested)))
	switch {
	case requested == "":
		return "", fmt.Errorf("engine: kernel TUN mode: empty adapter name")
	case n > wintunNameMax:
		return "", fmt.Errorf("engine: kernel TUN mode: adapter name %q is %d UTF-16 units long; Wintun takes at most %d: pick a shorter --tun name", requested, n, wintunNameMax)
	}
	for _, c := range requested {
		if c == 0 {
			return "", fmt.Errorf("engine: kernel TUN mode: adapter name %q has a NUL character", requested)
		}
	}
	return requested, nil
}

// wintunMissingError is the error when wintun.dll is not where Windows
// looks for it: dir is the executable's directory.
func wintunMissingError(dir string, err error) error {
	return fmt.Errorf("engine: kernel TUN mode: %s not found in %s or in System32 (%w): download Wintun (wintun.net), put the %s for this machine's architecture beside warrend.exe, and start warrend again; or leave --tun empty to use userspace mode", wintunDLL, dir, err, wintunDLL)
}

// wintunError wraps err from step; denied says it is ERROR_ACCESS_DENIED
// (the caller is not an administrator).
func wintunError(step string, err error, denied bool) error {
	if denied {
		return fmt.Errorf("engine: kernel TUN mode: %s: %w: it needs an administrator: run warrend as the Warren service or from an elevated prompt, or leave --tun empty to use userspace mode", step, err)
	}
	return fmt.Errorf("engine: kernel TUN mode: %s: %w", step, err)
}

// wintunAddressTakenError is the error when another adapter holds one of
// the node's mesh addresses (an old adapter, or another VPN).
func wintunAddressTakenError(name string, err error) error {
	return fmt.Errorf("engine: kernel TUN mode: assign the mesh addresses to %s: %w: another adapter has one of them (an old Warren adapter or another VPN): remove it (Remove-NetIPAddress in PowerShell, or the adapter in the network settings), or leave --tun empty to use userspace mode", name, err)
}

// wintunRoute is one route for winipcfg: dst on-link through the adapter,
// whose next hop is the unspecified address of dst's family.
type wintunRoute struct {
	dst     netip.Prefix
	nextHop netip.Addr
}

// wintunFamilyConfig is what the adapter gets for one family of a plan
// (see tunPlan.family): its addresses as host prefixes, and its routes,
// on-link. winipcfg sets each list as a whole, replacing what the adapter
// had.
func wintunFamilyConfig(part tunPlan) (addrs []netip.Prefix, routes []wintunRoute) {
	for _, a := range part.addrs {
		addrs = append(addrs, hostPrefix(a))
	}
	for _, r := range part.routes {
		routes = append(routes, onLink(r))
	}
	return addrs, routes
}

// onLink is r as a winipcfg route on-link through the adapter (the next
// hop is the unspecified address of its family); the adapter's own address
// of that family is the source Windows picks. Peers' subnet routes are
// added and deleted one by one in this form.
func onLink(r tunRoute) wintunRoute {
	hop := netip.IPv4Unspecified()
	if r.dst.Addr().Is6() {
		hop = netip.IPv6Unspecified()
	}
	return wintunRoute{dst: r.dst, nextHop: hop}
}
