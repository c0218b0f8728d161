//go:build linux

package osdns

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

const (
	resolvedName = "org.freedesktop.resolve1"
	resolvedPath = dbus.ObjectPath("/org/freedesktop/resolve1")
	resolvedMgr  = "org.freedesktop.resolve1.Manager."
	dbusTimeout  = 10 * time.Second
)

type linkDNS struct {
	Family  int32
	Address []byte
}

type linkDomain struct {
	Domain      string
	RoutingOnly bool
}

// setResolved gives the TUN link Warren's nameservers and the domains:
// the mesh domain as a search domain (so "db" resolves too), the route
// domains routing-only, and the link never the default route, so every
// other name stays with the system's resolvers.
func (m *Manager) setResolved(cfg Config) error {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return fmt.Errorf("osdns: systemd-resolved: %w", err)
	}
	if err := m.saveRecord(&record{Method: MethodResolved, IfIndex: ifi.Index, Path: ifi.Name}); err != nil {
		return err
	}
	var servers []linkDNS
	for _, a := range cfg.Nameservers {
		fam := int32(unix.AF_INET)
		if a.Is6() {
			fam = unix.AF_INET6
		}
		servers = append(servers, linkDNS{Family: fam, Address: a.AsSlice()})
	}
	var domains []linkDomain
	for i, d := range routingDomains(cfg.Domains) {
		domains = append(domains, linkDomain{Domain: d, RoutingOnly: i > 0})
	}
	return withResolved(func(ctx context.Context, obj dbus.BusObject) error {
		idx := int32(ifi.Index)
		if err := obj.CallWithContext(ctx, resolvedMgr+"SetLinkDNS", 0, idx, servers).Err; err != nil {
			return fmt.Errorf("SetLinkDNS: %w", err)
		}
		if err := obj.CallWithContext(ctx, resolvedMgr+"SetLinkDomains", 0, idx, domains).Err; err != nil {
			return fmt.Errorf("SetLinkDomains: %w", err)
		}
		// Older resolved (before 240) has no SetLinkDefaultRoute; the
		// routing-only domains alone keep other names off the link there.
		_ = obj.CallWithContext(ctx, resolvedMgr+"SetLinkDefaultRoute", 0, idx, false).Err
		return nil
	})
}

// restoreResolved reverts the link's settings. A link that is gone (the
// TUN device closes with warrend, and resolved forgets it) or whose index
// now names another device needs nothing.
func restoreResolved(rec *record) error {
	ifi, err := net.InterfaceByIndex(rec.IfIndex)
	if err != nil || ifi.Name != rec.Path {
		return nil
	}
	return withResolved(func(ctx context.Context, obj dbus.BusObject) error {
		err := obj.CallWithContext(ctx, resolvedMgr+"RevertLink", 0, int32(rec.IfIndex)).Err
		if err != nil && strings.Contains(err.Error(), "No such link") {
			return nil
		}
		return err
	})
}

func withResolved(fn func(context.Context, dbus.BusObject) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), dbusTimeout)
	defer cancel()
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("osdns: systemd-resolved: connect to the system bus: %w", err)
	}
	defer conn.Close()
	if err := fn(ctx, conn.Object(resolvedName, resolvedPath)); err != nil {
		return fmt.Errorf("osdns: systemd-resolved: %w", err)
	}
	return nil
}
