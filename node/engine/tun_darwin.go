//go:build darwin

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/tun"
)

// utunConfigureTimeout bounds configuring a new utun device: the ifconfig
// and route runs, and the wait for its addresses to be usable.
const utunConfigureTimeout = 15 * time.Second

// openKernelTUN creates a utun device with wireguard-go's tun package (the
// name is "utunN" when --tun says so, else the kernel picks one; see
// utunName), gives it the node's mesh addresses and routes the mesh ranges
// through it with ifconfig and route, as wg-quick (wireguard-tools) does on
// macOS. The device lives as long as its file descriptor: when warrend
// exits, even by a crash, the kernel destroys it with its addresses and
// routes. Close deletes the routes it added first.
func openKernelTUN(cfg Config) (netDevice, error) {
	want := utunName(cfg.TUN)
	tdev, err := tun.CreateTUN(want, cfg.MTU)
	if err != nil {
		return nil, utunError(fmt.Sprintf("create TUN device %s", want), err)
	}
	name, err := tdev.Name()
	if err != nil {
		tdev.Close()
		return nil, fmt.Errorf("engine: kernel TUN mode: read device name: %w", err)
	}
	cfg.Logger.Info("kernel TUN device", "name", name, "asked", cfg.TUN)
	plan := planTUN(cfg.Addresses)
	d := &utunDevice{kernelDevice: &kernelDevice{Device: tdev, name: name, addrs: plan.addrs}, log: cfg.Logger}
	ctx, cancel := context.WithTimeout(context.Background(), utunConfigureTimeout)
	defer cancel()
	if err := d.configure(ctx, plan); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// utunDevice is a kernelDevice whose Close deletes the routes it added.
type utunDevice struct {
	*kernelDevice
	log    *slog.Logger
	routes []tunRoute // added, for Close to delete

	mu      sync.Mutex
	subnets []tunRoute // peers' subnet routes added (setSubnetRoutes), for Close to delete

	closeOnce sync.Once
	closeErr  error
}

// configure gives the device the plan's addresses, sets it up, waits until
// the addresses are usable (an IPv6 address is tentative while the kernel
// checks it for duplicates) and adds the routes.
func (d *utunDevice) configure(ctx context.Context, plan tunPlan) error {
	for _, argv := range utunAddrCmds(d.name, plan) {
		if out, err := runTool(ctx, argv); err != nil {
			return utunError("configure "+d.name, commandError(argv, out, err))
		}
	}
	if err := d.waitReady(ctx, plan); err != nil {
		return err
	}
	for _, r := range plan.routes {
		argv := utunRouteCmd("add", d.name, r)
		out, err := runTool(ctx, argv)
		reason := routeFailure(out, d.name)
		if err == nil && reason == "" {
			d.routes = append(d.routes, r)
			continue
		}
		if strings.Contains(reason, "File exists") {
			return routeExistsError(r.dst, d.routeHolder(ctx, r))
		}
		if reason != "" {
			err = errors.New(reason)
		}
		return utunError(fmt.Sprintf("add route %s via %s", r.dst, d.name), commandError(argv, out, err))
	}
	return nil
}

// waitReady polls ifconfig until the device is up with every address of
// the plan usable, or ctx ends.
func (d *utunDevice) waitReady(ctx context.Context, plan tunPlan) error {
	const pause = 100 * time.Millisecond
	argv := utunIfconfigCmd(d.name)
	for {
		out, err := runTool(ctx, argv)
		if err != nil {
			return utunError("read "+d.name, commandError(argv, out, err))
		}
		info, err := parseIfconfig(out)
		if err != nil {
			return fmt.Errorf("engine: kernel TUN mode: %w", err)
		}
		missing, up := utunMissing(info, plan)
		if up && len(missing) == 0 {
			return nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("engine: kernel TUN mode: %s not ready after %v (up %t; addresses absent or tentative: %v)", d.name, utunConfigureTimeout, up, missing)
		case <-t.C:
		}
	}
}

// routeHolder names the interface that holds the route for r.dst now, or
// "" when route get does not say.
func (d *utunDevice) routeHolder(ctx context.Context, r tunRoute) string {
	out, err := runTool(ctx, utunRouteGetCmd(r.dst))
	if err != nil {
		return ""
	}
	g, err := parseRouteGet(out)
	if err != nil || g.Interface == d.name || g.Destination == "default" {
		return ""
	}
	return g.Interface
}

// Close deletes the routes configure added and closes the device (which
// destroys it, and whatever else it had).
func (d *utunDevice) Close() error {
	d.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), utunConfigureTimeout)
		defer cancel()
		d.mu.Lock()
		rs := append(slices.Clone(d.subnets), d.routes...)
		d.subnets = nil
		d.mu.Unlock()
		for _, r := range rs {
			argv := utunRouteCmd("delete", d.name, r)
			out, err := runTool(ctx, argv)
			if reason := routeFailure(out, d.name); err != nil || reason != "" {
				d.log.Debug("delete route", "route", r.dst, "device", d.name, "err", commandError(argv, out, err), "reason", reason)
			}
		}
		d.closeErr = d.kernelDevice.Close()
	})
	return d.closeErr
}

// setSubnetRoutes adds and deletes the routes for peers' subnet routes
// through the device with route(8).
func (d *utunDevice) setSubnetRoutes(add, del []tunRoute) error {
	ctx, cancel := context.WithTimeout(context.Background(), utunConfigureTimeout)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, r := range del {
		argv := utunRouteCmd("delete", d.name, r)
		out, err := runTool(ctx, argv)
		if reason := routeFailure(out, d.name); err != nil || reason != "" {
			errs = append(errs, utunError(fmt.Sprintf("delete route %s via %s", r.dst, d.name), commandError(argv, out, err)))
		}
		d.subnets = slices.DeleteFunc(d.subnets, func(x tunRoute) bool { return x == r })
	}
	for _, r := range add {
		argv := utunRouteCmd("add", d.name, r)
		out, err := runTool(ctx, argv)
		if reason := routeFailure(out, d.name); err != nil || reason != "" {
			if reason != "" {
				err = errors.New(reason)
			}
			errs = append(errs, utunError(fmt.Sprintf("add route %s via %s", r.dst, d.name), commandError(argv, out, err)))
			continue
		}
		d.subnets = append(d.subnets, r)
	}
	return errors.Join(errs...)
}

// runTool runs argv and returns what it printed (stdout and stderr).
func runTool(ctx context.Context, argv []string) (string, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}
