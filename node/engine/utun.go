package engine

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// This file is the OS-independent half of kernel TUN mode on macOS: which
// utun device to ask for, the ifconfig and route commands that configure it
// (argv lists, run by tun_darwin.go), and the parsing of what those tools
// print. It runs nothing, so its tests run on every OS.

// The macOS tools, by absolute path: launchd gives daemons a short PATH.
const (
	ifconfigPath = "/sbin/ifconfig"
	routePath    = "/sbin/route"
)

// utunName is the device name to ask macOS for: "utunN" as given, else
// "utun", with which the kernel picks the first free utunN. macOS names
// every TUN device so; a --tun name such as "warren0" only says "TUN mode".
func utunName(requested string) string {
	if n, ok := strings.CutPrefix(requested, "utun"); ok && n != "" && len(n) <= 3 && isDigits(n) {
		return requested
	}
	return "utun"
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// utunAddrCmds are the commands that give the utun device ifname the
// plan's addresses, each as a host address (a point-to-point IPv4 address
// to itself with a /32 netmask; an IPv6 /128), and then set it up. The MTU
// is set when the device is created.
func utunAddrCmds(ifname string, plan tunPlan) [][]string {
	var cmds [][]string
	for _, a := range plan.addrs {
		if a.Is4() {
			cmds = append(cmds, []string{ifconfigPath, ifname, "inet", a.String(), a.String(), "netmask", "255.255.255.255", "alias"})
		} else {
			cmds = append(cmds, []string{ifconfigPath, ifname, "inet6", a.String(), "prefixlen", "128", "alias"})
		}
	}
	return append(cmds, []string{ifconfigPath, ifname, "up"})
}

// utunRouteCmd is the route command that adds (op "add") or deletes (op
// "delete") the route r through the device ifname. Without -q, so that
// route prints its outcome for routeFailure to read.
func utunRouteCmd(op, ifname string, r tunRoute) []string {
	return []string{routePath, "-n", op, familyFlag(r.dst.Addr()), r.dst.String(), "-interface", ifname}
}

// utunRouteGetCmd asks which route macOS uses for the first address of
// dst: when adding the mesh route fails because it exists, this names the
// device that holds it.
func utunRouteGetCmd(dst netip.Prefix) []string {
	return []string{routePath, "-n", "get", familyFlag(dst.Addr()), dst.Addr().String()}
}

// utunIfconfigCmd shows the device, for parseIfconfig.
func utunIfconfigCmd(ifname string) []string { return []string{ifconfigPath, ifname} }

func familyFlag(a netip.Addr) string {
	if a.Is4() {
		return "-inet"
	}
	return "-inet6"
}

// routeFailure reads what route(8) printed for an add or delete through
// ifname and returns why it failed, or "" when it reports success. route
// prints "add net DEST: gateway GW" on success and appends ": REASON" on
// failure ("File exists", "not in table", ...); it writes a warning such as
// "route: writing to routing socket: File exists" first, and refuses
// non-root callers with "must be root to alter routing table". Older
// versions exit 0 even on failure, so the text is what counts.
func routeFailure(out, ifname string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "must be root") {
			return "must be root to alter routing table"
		}
		_, rest, ok := strings.Cut(line, ": gateway "+ifname)
		if !ok || (rest != "" && !strings.HasPrefix(rest, ":") && !strings.HasPrefix(rest, " ")) {
			continue // not this device: "utun3" is a prefix of "utun30"
		}
		if reason, failed := strings.CutPrefix(rest, ": "); failed {
			return reason
		}
	}
	return ""
}

// routeGet is what `route -n get` prints about the route it finds.
type routeGet struct {
	Destination string // an address, or "default"
	Mask        string
	Gateway     string
	Interface   string
	Flags       []string
}

// parseRouteGet parses the "key: value" lines of `route -n get` (macOS and
// the BSDs): "   route to: 100.64.0.1", "destination: default",
// "  interface: en0", "      flags: <UP,GATEWAY,DONE,STATIC>", then a
// table of metrics it ignores. It is an error when no interface is named
// (route prints "route: route has not been found" or nothing useful).
func parseRouteGet(out string) (routeGet, error) {
	var r routeGet
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "destination":
			r.Destination = v
		case "mask":
			r.Mask = v
		case "gateway":
			r.Gateway = v
		case "interface":
			r.Interface = v
		case "flags":
			v = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
			if v != "" {
				r.Flags = strings.Split(v, ",")
			}
		}
	}
	if r.Interface == "" {
		return r, fmt.Errorf("route get: no interface in %q", firstLine(out))
	}
	return r, nil
}

// ifconfigInfo is what parseIfconfig reads from `ifconfig IFNAME`.
type ifconfigInfo struct {
	Name  string
	Flags []string
	MTU   int
	Addrs []ifconfigAddr
}

// ifconfigAddr is one inet or inet6 line of ifconfig's output.
type ifconfigAddr struct {
	Addr netip.Addr
	// Tentative is an IPv6 address still in duplicate address detection:
	// nothing can bind it yet.
	Tentative bool
}

// parseIfconfig parses the output of `ifconfig IFNAME` on macOS:
//
//	utun3: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1280
//		inet 100.64.7.1 --> 100.64.7.1 netmask 0xffffffff
//		inet6 fe80::1%utun3 prefixlen 64 scopeid 0x11
//		inet6 fd7a:115c:a1e0::7:1 prefixlen 128 tentative
//
// Lines it does not know (nd6 options, ether, status) are skipped; an
// address that does not parse is an error, so a format change is noticed.
func parseIfconfig(out string) (ifconfigInfo, error) {
	var info ifconfigInfo
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			if info.Name != "" {
				break // the next interface (ifconfig -a)
			}
			name, rest, ok := strings.Cut(line, ": ")
			if !ok || !strings.HasPrefix(rest, "flags=") { // "ifconfig: interface utun9 does not exist"
				return info, fmt.Errorf("ifconfig: unexpected header %q", line)
			}
			info.Name = name
			if err := parseIfconfigHeader(rest, &info); err != nil {
				return info, err
			}
			continue
		}
		if fields[0] != "inet" && fields[0] != "inet6" {
			continue
		}
		if len(fields) < 2 {
			return info, fmt.Errorf("ifconfig: no address in %q", strings.TrimSpace(line))
		}
		s, _, _ := strings.Cut(fields[1], "%") // fe80::1%utun3
		a, err := netip.ParseAddr(s)
		if err != nil {
			return info, fmt.Errorf("ifconfig: address in %q: %w", strings.TrimSpace(line), err)
		}
		ia := ifconfigAddr{Addr: a}
		for _, f := range fields[2:] {
			if f == "tentative" {
				ia.Tentative = true
			}
		}
		info.Addrs = append(info.Addrs, ia)
	}
	if info.Name == "" {
		return info, fmt.Errorf("ifconfig: no interface in %q", firstLine(out))
	}
	return info, nil
}

// parseIfconfigHeader reads "flags=8051<UP,POINTOPOINT> mtu 1280".
func parseIfconfigHeader(rest string, info *ifconfigInfo) error {
	fields := strings.Fields(rest)
	for i, f := range fields {
		switch {
		case strings.HasPrefix(f, "flags="):
			if _, list, ok := strings.Cut(f, "<"); ok {
				list = strings.TrimSuffix(list, ">")
				if list != "" {
					info.Flags = strings.Split(list, ",")
				}
			}
		case f == "mtu" && i+1 < len(fields):
			mtu, err := strconv.Atoi(fields[i+1])
			if err != nil {
				return fmt.Errorf("ifconfig: mtu %q: %w", fields[i+1], err)
			}
			info.MTU = mtu
		}
	}
	return nil
}

// utunMissing says which of the plan's addresses ifconfig does not show on
// the device yet (absent or still tentative), and whether it is up.
func utunMissing(info ifconfigInfo, plan tunPlan) (missing []netip.Addr, up bool) {
	for _, f := range info.Flags {
		if f == "UP" {
			up = true
		}
	}
	for _, a := range plan.addrs {
		ready := false
		for _, ia := range info.Addrs {
			if ia.Addr == a && !ia.Tentative {
				ready = true
			}
		}
		if !ready {
			missing = append(missing, a)
		}
	}
	return missing, up
}

// routeExistsError is the error for a mesh route that another device
// holds already (holder is its interface, or "" when unknown).
func routeExistsError(dst netip.Prefix, holder string) error {
	on := ""
	if holder != "" {
		on = " through " + holder
	}
	return fmt.Errorf("engine: kernel TUN mode: a route for %s already exists on this host%s (another Warren, Tailscale or VPN?): remove it (sudo route -n delete %s %s) or stop that VPN, or leave --tun empty to use userspace mode",
		dst, on, familyFlag(dst.Addr()), dst)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// utunError wraps err from step, saying what to do when it is a missing
// privilege or a utun unit already taken.
func utunError(step string, err error) error {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("engine: kernel TUN mode: %s: %w: it needs root: run warrend as root (sudo, or as the launchd daemon), or leave --tun empty to use userspace mode", step, err)
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("engine: kernel TUN mode: %s: %w: that utun device is taken: pass --tun utun (macOS then picks a free one)", step, err)
	}
	return fmt.Errorf("engine: kernel TUN mode: %s: %w", step, err)
}

// commandError is the error of a tool that failed (err, how it ended, or
// nil when only its output says so) with what it printed. It wraps
// syscall.EPERM when the output says the caller lacks the privilege, so
// utunError gives the hint for that.
func commandError(argv []string, out string, err error) error {
	out = strings.Join(strings.Fields(out), " ")
	cmd := strings.Join(argv, " ")
	for _, s := range []string{"must be root", "Permission denied", "Operation not permitted"} {
		if strings.Contains(out, s) {
			return fmt.Errorf("%s: %w (%s)", cmd, syscall.EPERM, out)
		}
	}
	switch {
	case err == nil:
		return fmt.Errorf("%s: %s", cmd, out)
	case out == "":
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return fmt.Errorf("%s: %w (%s)", cmd, err, out)
}
