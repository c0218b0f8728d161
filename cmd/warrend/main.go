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
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/metrics"
	"github.com/warrenmesh/warren/internal/version"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/expose"
	"github.com/warrenmesh/warren/node/flowspool"
	"github.com/warrenmesh/warren/node/localapi"
	"github.com/warrenmesh/warren/node/nodemetrics"
	"github.com/warrenmesh/warren/node/service"
)

func main() {
	// Under the Windows service manager the log goes to the event log and
	// the manager, not a signal, says when to stop.
	if managed, err := service.UnderManager(); err == nil && managed {
		err := service.RunManaged(serviceName, func(ctx context.Context, logs service.Sink) error {
			return run(ctx, os.Args[1:], io.Discard, io.Discard, logs)
		})
		if err != nil {
			os.Exit(1)
		}
		return
	}
	cli.Main("warrend", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil) })
}

// options are warrend's flags, shared by the daemon and install-service
// (which carries them into the service's command line).
type options struct {
	stateDir, socket, group, tun, wgName, socks, httpProxy *string
	dnsMethod, resolvConf                                  *string
	port                                                   *uint
	expose, endpoints                                      cli.StringList
	relayOnly, ssh                                         *bool
	snatSubnetRoutes                                       *bool
	logFormat, logLevel                                    *string
	metricsListen                                          *string
	postureInterval                                        *time.Duration
	flowSpool                                              byteSize
}

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	o.stateDir = fs.String("state-dir", defaultStateDir, "directory for the node's 0600 state file (keys, coordinator)")
	o.socket = fs.String("socket", localapi.DefaultSocket, "unix socket of the local API, used by the warren CLI (Windows: a named pipe)")
	o.group = fs.String("socket-group", "", "group allowed to use the local API besides root and this user: socket mode 0660 (Windows: a group or user, by name or SID, given read/write on the pipe)")
	o.tun = fs.String("tun", "", "use a kernel TUN device instead of the userspace stack (root; on Windows an administrator and wintun.dll beside warrend.exe): on Linux the device's name; on macOS any name means the first free utunN, as the kernel names them (utunN asks for that one); on Windows the Wintun adapter's name")
	o.dnsMethod = fs.String("dns", "", "with --tun, how the system's DNS is pointed at MagicDNS (100.100.100.100) for the mesh's domains: resolved, resolv.conf, resolver-dir, nrpt, or off (default: systemd-resolved when it runs, else resolv.conf; /etc/resolver on macOS; NRPT on Windows)")
	o.resolvConf = fs.String("resolv-conf", "/etc/resolv.conf", "the resolv.conf --dns resolv.conf manages (restored byte for byte on warren down)")
	o.wgName = fs.String("wg-name", "auto", "expose the WireGuard device to wg(8) and wgctrl as /var/run/wireguard/NAME.sock (root only; a named pipe on Windows); auto: the TUN device's name in TUN mode, none in userspace mode; empty: none")
	o.port = fs.Uint("port", 0, "WireGuard UDP port (0: last run's, or any free one)")
	o.socks = fs.String("socks5", "127.0.0.1:1055", "loopback address for the SOCKS5 proxy into the mesh (empty: none)")
	o.httpProxy = fs.String("http-proxy", "", "loopback address for the HTTP CONNECT proxy (empty: the --socks5 port speaks both)")
	fs.Var(&o.expose, "expose", "forward inbound mesh connections: PORT (to 127.0.0.1:PORT) or PORT=HOST:PORT, then optionally ,http-identity (HTTP with Warren-User-Login, Warren-User-Name, Warren-Node and Warren-Tags headers) or ,proxy-protocol (a PROXY v2 header with the mesh source and identity); plain TCP by default, where the service sees every mesh client as 127.0.0.1 (warren whois tells them apart) (repeatable; userspace mode)")
	fs.Var(&o.endpoints, "endpoint", "advertise this IP[:PORT] instead of the interface addresses (repeatable)")
	o.ssh = fs.Bool("ssh", false, "run an SSH server on port 22 of the mesh address: peers log in by mesh identity alone (no keys or passwords), as the policy's ssh rules allow, with check sign-ins and session recording; logging in as other users needs warrend to run as root (Linux and macOS)")
	o.relayOnly = fs.Bool("relay-only", false, "send all traffic through relays, never directly (for networks where peer-to-peer UDP is unwanted)")
	o.snatSubnetRoutes = fs.Bool("snat-subnet-routes", true, "with --tun on a subnet router, masquerade mesh sources into the routed networks, so their hosts see this router's address; false keeps the mesh source (the routed network then needs a route back to 100.64.0.0/10 through this router)")
	o.postureInterval = fs.Duration("posture-interval", daemon.DefaultPostureInterval, "how often the node collects its posture (node:os, node:diskEncrypted, node:firewall, …) and reports it, or a heartbeat when nothing changed, besides at start and on network changes; at least 10s")
	o.metricsListen = fs.String("metrics-listen", "", "serve Prometheus metrics at /metrics on this address, e.g. 127.0.0.1:9100 (no authentication, and the series name peers: keep it on loopback; empty: off)")
	o.flowSpool = byteSize(flowspool.DefaultSize)
	fs.Var(&o.flowSpool, "flow-spool-size", "bound on the spool of flow records waiting for the coordinator, in <state-dir>/flows (bytes, or with KiB, MiB or GiB); when full the oldest records are dropped and counted; 0 turns flow logs off on this node")
	o.logFormat = fs.String("log-format", "text", "log format: text or json")
	o.logLevel = fs.String("log-level", "info", "log level: debug, info, warn, error")
	return fs, o
}

// config checks the flags and returns the daemon's configuration (without
// its logger).
func (o *options) config() (daemon.Config, error) {
	if *o.port > 65535 {
		return daemon.Config{}, fmt.Errorf("--port %d is not a port", *o.port)
	}
	if *o.postureInterval < daemon.MinPostureInterval {
		return daemon.Config{}, fmt.Errorf("--posture-interval %s is too short: collect at most every %s (the default is %s)", *o.postureInterval, daemon.MinPostureInterval, daemon.DefaultPostureInterval)
	}
	cfg := daemon.Config{PostureInterval: *o.postureInterval, StateDir: *o.stateDir, TUN: *o.tun, WGName: *o.wgName, ListenPort: uint16(*o.port), RelayOnly: *o.relayOnly, SSH: *o.ssh,
		NoSNATSubnetRoutes: !*o.snatSubnetRoutes, DNSMethod: *o.dnsMethod, ResolvConf: *o.resolvConf, FlowSpoolSize: int64(o.flowSpool)}
	if o.flowSpool == 0 {
		cfg.FlowSpoolSize = -1
	}
	for _, e := range o.expose {
		x, err := parseExpose(e)
		if err != nil {
			return daemon.Config{}, err
		}
		cfg.Expose = append(cfg.Expose, x)
	}
	for _, e := range o.endpoints {
		ap, err := parseEndpoint(e)
		if err != nil {
			return daemon.Config{}, err
		}
		cfg.Endpoints = append(cfg.Endpoints, ap)
	}
	return cfg, nil
}

// newLogger is the --log-format/--log-level logger on stderr, or, under a
// service manager that keeps its own log, one that writes there.
func newLogger(stderr io.Writer, logs service.Sink, format, level string) (*slog.Logger, error) {
	log, err := cli.NewLogger(stderr, format, level) // checks both flags
	if err != nil || logs == nil {
		return log, err
	}
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // checked above
	return slog.New(service.NewSinkHandler(logs, lv)), nil
}

// run is warrend: the daemon, or install-service and uninstall-service.
// logs, when not nil, receives the log instead of stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, logs service.Sink) error {
	if len(args) > 0 {
		switch args[0] {
		case "install-service":
			return installService(ctx, args[1:], stdout, stderr)
		case "uninstall-service":
			return uninstallService(ctx, args[1:], stdout, stderr)
		}
	}
	fs, o := newFlags("warrend", stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: warrend [flags]             run the node daemon\n"+
			"       warrend install-service [flags]   run it as this OS's service (see warrend install-service --help)\n"+
			"       warrend uninstall-service         stop and remove the service (keeps the state)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, "warrend", version.String())
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see warrend --help)", fs.Arg(0))
	}
	log, err := newLogger(stderr, logs, *o.logFormat, *o.logLevel)
	if err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	cfg.Logger = log
	var access localapi.Access
	if *o.group != "" {
		if access, err = socketAccess(*o.group); err != nil {
			return fmt.Errorf("--socket-group: %w", err)
		}
	}

	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	apiLn, err := localapi.Listen(*o.socket, access)
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
	errs := make(chan error, 4)
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
	for _, addr := range uniqueNonEmpty(*o.socks, *o.httpProxy) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("proxy: %w", err)
		}
		log.Info("proxy into the mesh (SOCKS5 and HTTP CONNECT)", "addr", ln.Addr().String())
		serve("proxy", func() error { return d.ServeProxy(ctx, ln) })
	}
	if *o.metricsListen != "" {
		ln, err := net.Listen("tcp", *o.metricsListen)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("metrics: %w", err)
		}
		reg := metrics.NewRegistry()
		reg.MustRegister(nodemetrics.New(nodemetrics.Config{Snapshot: d.MetricsSnapshot}))
		log.Info("Prometheus metrics", "url", "http://"+ln.Addr().String()+metrics.Path)
		serve("metrics", func() error { return metrics.Serve(ctx, ln, reg) })
	}
	log.Info("warrend running", "state", *o.stateDir, "socket", *o.socket, "mode", modeName(*o.tun), "node_key", d.NodeKey().ShortString())
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

// parseExpose reads PORT[=HOST:PORT][,MODE].
func parseExpose(s string) (daemon.Expose, error) {
	spec, modeStr, hasMode := strings.Cut(s, ",")
	portStr, target, hasTarget := strings.Cut(spec, "=")
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return daemon.Expose{}, fmt.Errorf("--expose %q: want PORT or PORT=HOST:PORT, then optionally ,http-identity or ,proxy-protocol", s)
	}
	if !hasTarget {
		target = net.JoinHostPort("127.0.0.1", portStr)
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return daemon.Expose{}, fmt.Errorf("--expose %q: target must be HOST:PORT", s)
	}
	mode := expose.Plain
	if hasMode {
		if modeStr == "" {
			return daemon.Expose{}, fmt.Errorf("--expose %q: nothing after the comma: want http-identity or proxy-protocol", s)
		}
		if mode, err = expose.ParseMode(modeStr); err != nil {
			return daemon.Expose{}, fmt.Errorf("--expose %q: %w", s, err)
		}
	}
	return daemon.Expose{Port: uint16(port), Target: target, Mode: mode}, nil
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
