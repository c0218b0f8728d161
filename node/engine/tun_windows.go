//go:build windows

package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// openKernelTUN creates a Wintun adapter named cfg.TUN with wireguard-go's
// tun package, gives it the node's mesh addresses and routes the mesh
// ranges through it with winipcfg (the IP Helper API, as WireGuard for
// Windows does). It needs wintun.dll beside warrend.exe and an
// administrator. Closing the device removes the adapter with its addresses
// and routes; so does the end of the process.
func openKernelTUN(cfg Config) (netDevice, error) {
	name, err := wintunAdapterName(cfg.TUN)
	if err != nil {
		return nil, err
	}
	if err := checkWintunDLL(); err != nil {
		return nil, err
	}
	tdev, err := tun.CreateTUN(name, cfg.MTU)
	if err != nil {
		return nil, wintunError(fmt.Sprintf("create Wintun adapter %q", name), err, errors.Is(err, windows.ERROR_ACCESS_DENIED))
	}
	nt, ok := tdev.(*tun.NativeTun)
	if !ok {
		tdev.Close()
		return nil, fmt.Errorf("engine: kernel TUN mode: unexpected device type %T", tdev)
	}
	addrs, err := configureWintun(winipcfg.LUID(nt.LUID()), name, planTUN(cfg.Addresses), cfg.MTU, cfg.Logger)
	if err != nil {
		tdev.Close()
		return nil, err
	}
	return &wintunDevice{kernelDevice: &kernelDevice{Device: tdev, name: name, addrs: addrs}, luid: winipcfg.LUID(nt.LUID())}, nil
}

// wintunDevice is a kernelDevice that knows its adapter's LUID, to route
// peers' subnets through it. The routes go with the adapter.
type wintunDevice struct {
	*kernelDevice
	luid winipcfg.LUID
}

// setSubnetRoutes adds and deletes the routes for peers' subnet routes
// through the adapter with winipcfg.
func (d *wintunDevice) setSubnetRoutes(add, del []tunRoute) error {
	var errs []error
	for _, r := range del {
		w := onLink(r)
		if err := d.luid.DeleteRoute(w.dst, w.nextHop); err != nil && !errors.Is(err, windows.ERROR_NOT_FOUND) {
			errs = append(errs, wintunError(fmt.Sprintf("delete route %s via %s", r.dst, d.name), err, errors.Is(err, windows.ERROR_ACCESS_DENIED)))
		}
	}
	for _, r := range add {
		w := onLink(r)
		err := d.luid.AddRoute(w.dst, w.nextHop, 0)
		if err != nil && !errors.Is(err, windows.ERROR_OBJECT_ALREADY_EXISTS) {
			errs = append(errs, wintunError(fmt.Sprintf("add route %s via %s", r.dst, d.name), err, errors.Is(err, windows.ERROR_ACCESS_DENIED)))
		}
	}
	return errors.Join(errs...)
}

// checkWintunDLL loads wintun.dll where wireguard-go will (the executable's
// directory, then System32), to fail with a clear error when it is absent.
func checkWintunDLL() error {
	h, err := windows.LoadLibraryEx(wintunDLL, 0, windows.LOAD_LIBRARY_SEARCH_APPLICATION_DIR|windows.LOAD_LIBRARY_SEARCH_SYSTEM32)
	if err != nil {
		dir := "the executable's directory"
		if exe, xerr := os.Executable(); xerr == nil {
			dir = filepath.Dir(exe)
		}
		return wintunMissingError(dir, err)
	}
	windows.FreeLibrary(h)
	return nil
}

// configureWintun carries out plan on the adapter luid, family by family,
// and returns the addresses assigned. A host with IPv6 turned off gets the
// IPv4 part only.
func configureWintun(luid winipcfg.LUID, name string, plan tunPlan, mtu int, log *slog.Logger) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, v6 := range []bool{false, true} {
		part := plan.family(v6)
		if len(part.addrs) == 0 {
			continue
		}
		af, fam := winipcfg.AddressFamily(windows.AF_INET), "IPv4"
		if v6 {
			af, fam = winipcfg.AddressFamily(windows.AF_INET6), "IPv6"
		}
		err := retryNotFound(func() error { return configureFamily(luid, af, name, part, mtu) })
		if v6 && len(addrs) > 0 && errors.Is(err, windows.ERROR_NOT_FOUND) {
			log.Warn("IPv6 is off on this host: the TUN device carries IPv4 only", "device", name, "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fam, err)
		}
		addrs = append(addrs, part.addrs...)
	}
	return addrs, nil
}

// configureFamily sets the adapter's interface for one family (no router
// discovery or DHCPv6, no duplicate address detection, so the addresses
// are usable at once; the MTU), then its addresses and routes, replacing
// whatever it had.
func configureFamily(luid winipcfg.LUID, af winipcfg.AddressFamily, name string, part tunPlan, mtu int) error {
	ipif, err := luid.IPInterface(af)
	if err != nil {
		return wintunError("read the interface of "+name, err, errors.Is(err, windows.ERROR_ACCESS_DENIED))
	}
	ipif.RouterDiscoveryBehavior = winipcfg.RouterDiscoveryDisabled
	ipif.DadTransmits = 0
	ipif.ManagedAddressConfigurationSupported = false
	ipif.OtherStatefulConfigurationSupported = false
	if mtu > 0 {
		ipif.NLMTU = uint32(mtu)
	}
	if err := ipif.Set(); err != nil {
		return wintunError("set the interface of "+name, err, errors.Is(err, windows.ERROR_ACCESS_DENIED))
	}
	prefixes, routes := wintunFamilyConfig(part)
	if err := luid.SetIPAddressesForFamily(af, prefixes); err != nil {
		if errors.Is(err, windows.ERROR_OBJECT_ALREADY_EXISTS) {
			return wintunAddressTakenError(name, err)
		}
		return wintunError(fmt.Sprintf("assign %v to %s", prefixes, name), err, errors.Is(err, windows.ERROR_ACCESS_DENIED))
	}
	data := make([]*winipcfg.RouteData, 0, len(routes))
	for _, r := range routes {
		data = append(data, &winipcfg.RouteData{Destination: r.dst, NextHop: r.nextHop})
	}
	if err := luid.SetRoutesForFamily(af, data); err != nil {
		return wintunError(fmt.Sprintf("route the mesh through %s", name), err, errors.Is(err, windows.ERROR_ACCESS_DENIED))
	}
	return nil
}

// retryNotFound runs f again while it fails with ERROR_NOT_FOUND, a few
// times: a new adapter's interfaces appear shortly after it does.
func retryNotFound(f func() error) error {
	const attempts, pause = 5, 200 * time.Millisecond
	var err error
	for i := range attempts {
		if err = f(); !errors.Is(err, windows.ERROR_NOT_FOUND) {
			return err
		}
		if i < attempts-1 {
			time.Sleep(pause)
		}
	}
	return err
}
