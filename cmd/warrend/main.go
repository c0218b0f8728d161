// Command warrend is Warren's node daemon: it keeps the node's keys in a
// 0600 state file, follows the coordinator, runs the WireGuard data plane
// (userspace by default, kernel TUN with --tun as root), serves a local
// SOCKS5/HTTP proxy into the mesh, forwards exposed ports, and answers the
// warren CLI on a unix socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

func main() {
	cli.Main("warrend", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stderr) })
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("warrend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", "/var/lib/warren", "directory for the node's 0600 state file (keys, coordinator)")
	socket := fs.String("socket", localapi.DefaultSocket, "unix socket of the local API, used by the warren CLI (Windows: a named pipe)")
	group := fs.String("socket-group", "", "group allowed to use the local API besides root and this user: socket mode 0660 (Windows: a group or user, by name or SID, given read/write on the pipe)")
	tun := fs.String("tun", "", "use a kernel TUN device of this name (root) instead of the userspace stack")
	port := fs.Uint("port", 0, "WireGuard UDP port (0: last run's, or any free one)")
	socks := fs.String("socks5", "127.0.0.1:1055", "loopback address for the SOCKS5 proxy into the mesh (empty: none)")
	httpProxy := fs.String("http-proxy", "", "loopback address for the HTTP CONNECT proxy (empty: the --socks5 port speaks both)")
	var expose, endpoints cli.StringList
	fs.Var(&expose, "expose", "forward inbound mesh connections: PORT (to 127.0.0.1:PORT) or PORT=HOST:PORT (repeatable; userspace mode)")
	fs.Var(&endpoints, "endpoint", "advertise this IP[:PORT] instead of the interface addresses (repeatable)")
	relayOnly := fs.Bool("relay-only", false, "send all traffic through relays, never directly (for networks where peer-to-peer UDP is unwanted)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see warrend --help)", fs.Arg(0))
	}
	log, err := cli.NewLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	if *port > 65535 {
		return fmt.Errorf("--port %d is not a port", *port)
	}
	cfg := daemon.Config{StateDir: *stateDir, TUN: *tun, ListenPort: uint16(*port), Logger: log, RelayOnly: *relayOnly}
	for _, e := range expose {
		x, err := parseExpose(e)
		if err != nil {
			return err
		}
		cfg.Expose = append(cfg.Expose, x)
	}
	for _, e := range endpoints {
		ap, err := parseEndpoint(e)
		if err != nil {
			return err
		}
		cfg.Endpoints = append(cfg.Endpoints, ap)
	}
	var access localapi.Access
	if *group != "" {
		if access, err = socketAccess(*group); err != nil {
			return fmt.Errorf("--socket-group: %w", err)
		}
	}

	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	apiLn, err := localapi.Listen(*socket, access)
	if err != nil {
		return err
	}
	defer apiLn.Close()
	api, err := localapi.NewServer(localapi.Config{Backend: d, Logger: log.With("part", "localapi"), Access: access})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	serve := func(name string, fn func() error) {
		wg.Add(1)
		go func() { // joined below
			defer wg.Done()
			if err := fn(); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	serve("local API", func() error { return api.Serve(ctx, apiLn) })
	for _, addr := range uniqueNonEmpty(*socks, *httpProxy) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("proxy: %w", err)
		}
		log.Info("proxy into the mesh (SOCKS5 and HTTP CONNECT)", "addr", ln.Addr().String())
		serve("proxy", func() error { return d.ServeProxy(ctx, ln) })
	}
	log.Info("warrend running", "state", *stateDir, "socket", *socket, "mode", modeName(*tun), "node_key", d.NodeKey().ShortString())
	d.Start()
	<-ctx.Done()
	log.Info("shutting down")
	d.Close()
	wg.Wait()
	close(errs)
	return <-errs // nil when everything stopped cleanly
}

func modeName(tun string) string {
	if tun != "" {
		return "tun:" + tun
	}
	return "userspace"
}

func uniqueNonEmpty(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// parseExpose reads PORT or PORT=HOST:PORT.
func parseExpose(s string) (daemon.Expose, error) {
	portStr, target, hasTarget := strings.Cut(s, "=")
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return daemon.Expose{}, fmt.Errorf("--expose %q: want PORT or PORT=HOST:PORT", s)
	}
	if !hasTarget {
		target = net.JoinHostPort("127.0.0.1", portStr)
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return daemon.Expose{}, fmt.Errorf("--expose %q: target must be HOST:PORT", s)
	}
	return daemon.Expose{Port: uint16(port), Target: target}, nil
}

// parseEndpoint reads IP or IP:PORT (port 0 means the WireGuard port).
func parseEndpoint(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("--endpoint %q: want IP or IP:PORT", s)
	}
	return netip.AddrPortFrom(a, 0), nil
}
