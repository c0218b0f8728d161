package engine

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// darwinSample reads a sample output of a macOS tool from testdata/darwin
// (see its README: written to the documented format, not recorded).
func darwinSample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "darwin", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func meshPlan(prefixes ...string) tunPlan {
	var ps []netip.Prefix
	for _, s := range prefixes {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return planTUN(ps)
}

func TestUtunName(t *testing.T) {
	for _, tt := range []struct{ requested, want string }{
		{"utun", "utun"},
		{"utun0", "utun0"},
		{"utun7", "utun7"},
		{"utun123", "utun123"},
		{"utun1234", "utun"}, // beyond the kernel's unit numbers
		{"utunx", "utun"},
		{"utun-1", "utun"},
		{"warren0", "utun"},
		{"tun0", "utun"},
		{"", "utun"},
	} {
		if got := utunName(tt.requested); got != tt.want {
			t.Errorf("utunName(%q) = %q, want %q", tt.requested, got, tt.want)
		}
	}
}

func TestUtunAddrCmds(t *testing.T) {
	tests := []struct {
		name string
		plan tunPlan
		want []string
	}{
		{"both families", meshPlan("100.64.7.1/32", "fd7a:115c:a1e0::7:1/128"), []string{
			"/sbin/ifconfig utun3 inet 100.64.7.1 100.64.7.1 netmask 255.255.255.255 alias",
			"/sbin/ifconfig utun3 inet6 fd7a:115c:a1e0::7:1 prefixlen 128 alias",
			"/sbin/ifconfig utun3 up",
		}},
		{"IPv6 only", meshPlan("fd7a:115c:a1e0::7:1/128"), []string{
			"/sbin/ifconfig utun3 inet6 fd7a:115c:a1e0::7:1 prefixlen 128 alias",
			"/sbin/ifconfig utun3 up",
		}},
		{"no address", meshPlan(), []string{"/sbin/ifconfig utun3 up"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, argv := range utunAddrCmds("utun3", tt.plan) {
				got = append(got, strings.Join(argv, " "))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestUtunRouteCmds(t *testing.T) {
	plan := meshPlan("100.64.7.1/32", "fd7a:115c:a1e0::7:1/128")
	var got []string
	for _, r := range plan.routes {
		for _, op := range []string{"add", "delete"} {
			got = append(got, strings.Join(utunRouteCmd(op, "utun3", r), " "))
		}
		got = append(got, strings.Join(utunRouteGetCmd(r.dst), " "))
	}
	got = append(got, strings.Join(utunIfconfigCmd("utun3"), " "))
	want := []string{
		"/sbin/route -n add -inet 100.64.0.0/10 -interface utun3",
		"/sbin/route -n delete -inet 100.64.0.0/10 -interface utun3",
		"/sbin/route -n get -inet 100.64.0.0",
		"/sbin/route -n add -inet6 fd7a:115c:a1e0::/48 -interface utun3",
		"/sbin/route -n delete -inet6 fd7a:115c:a1e0::/48 -interface utun3",
		"/sbin/route -n get -inet6 fd7a:115c:a1e0::",
		"/sbin/ifconfig utun3",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRouteFailure(t *testing.T) {
	for _, tt := range []struct {
		sample, ifname, want string
	}{
		{"route_add_ok.txt", "utun3", ""},
		{"route_add_v6_ok.txt", "utun3", ""},
		{"route_delete_ok.txt", "utun3", ""},
		{"route_add_exists.txt", "utun3", "File exists"},
		{"route_delete_missing.txt", "utun3", "not in table"},
		{"route_add_notroot.txt", "utun3", "must be root to alter routing table"},
		// Lines about another device say nothing about this one.
		{"route_add_exists.txt", "utun30", ""},
		{"route_add_exists.txt", "utun", ""},
	} {
		if got := routeFailure(darwinSample(t, tt.sample), tt.ifname); got != tt.want {
			t.Errorf("routeFailure(%s, %s) = %q, want %q", tt.sample, tt.ifname, got, tt.want)
		}
	}
}

func TestParseRouteGet(t *testing.T) {
	for _, tt := range []struct {
		sample  string
		want    routeGet
		wantErr bool
	}{
		{sample: "route_get_default.txt", want: routeGet{Destination: "default", Mask: "default", Gateway: "192.168.1.1", Interface: "en0",
			Flags: []string{"UP", "GATEWAY", "DONE", "STATIC", "PRCLONING", "GLOBAL"}}},
		{sample: "route_get_other.txt", want: routeGet{Destination: "100.64.0.0", Mask: "255.192.0.0", Interface: "utun4",
			Flags: []string{"UP", "DONE", "CLONING", "STATIC"}}},
		{sample: "route_get_v6.txt", want: routeGet{Destination: "fd7a:115c:a1e0::", Mask: "ffff:ffff:ffff::", Interface: "utun3",
			Flags: []string{"UP", "DONE", "STATIC"}}},
		{sample: "route_get_none.txt", wantErr: true},
	} {
		got, err := parseRouteGet(darwinSample(t, tt.sample))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseRouteGet(%s): err = %v, want error %t", tt.sample, err, tt.wantErr)
			continue
		}
		if tt.wantErr {
			continue
		}
		if got.Destination != tt.want.Destination || got.Mask != tt.want.Mask || got.Gateway != tt.want.Gateway ||
			got.Interface != tt.want.Interface || !slices.Equal(got.Flags, tt.want.Flags) {
			t.Errorf("parseRouteGet(%s) = %+v, want %+v", tt.sample, got, tt.want)
		}
	}
}

func TestParseIfconfig(t *testing.T) {
	v4 := netip.MustParseAddr("100.64.7.1")
	v6 := netip.MustParseAddr("fd7a:115c:a1e0::7:1")
	ll := netip.MustParseAddr("fe80::a8bb:ccff:fedd:eeff")
	plan := meshPlan("100.64.7.1/32", "fd7a:115c:a1e0::7:1/128")
	tests := []struct {
		sample      string
		wantName    string
		wantMTU     int
		wantAddrs   []ifconfigAddr
		wantMissing []netip.Addr
		wantUp      bool
	}{
		{"ifconfig_new.txt", "utun3", 1280, nil, []netip.Addr{v4, v6}, false},
		{"ifconfig_tentative.txt", "utun3", 1280,
			[]ifconfigAddr{{Addr: v4}, {Addr: ll, Tentative: true}, {Addr: v6, Tentative: true}}, []netip.Addr{v6}, true},
		{"ifconfig_ready.txt", "utun3", 1280,
			[]ifconfigAddr{{Addr: v4}, {Addr: ll}, {Addr: v6}}, nil, true},
		// Only the first interface counts: v6 is on utun4.
		{"ifconfig_two.txt", "utun3", 1280, []ifconfigAddr{{Addr: v4}}, []netip.Addr{v6}, true},
	}
	for _, tt := range tests {
		t.Run(tt.sample, func(t *testing.T) {
			info, err := parseIfconfig(darwinSample(t, tt.sample))
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != tt.wantName || info.MTU != tt.wantMTU || !slices.Equal(info.Addrs, tt.wantAddrs) {
				t.Errorf("parseIfconfig = %+v, want name %s, MTU %d, addresses %+v", info, tt.wantName, tt.wantMTU, tt.wantAddrs)
			}
			missing, up := utunMissing(info, plan)
			if !slices.Equal(missing, tt.wantMissing) || up != tt.wantUp {
				t.Errorf("utunMissing = %v, up %t; want %v, up %t", missing, up, tt.wantMissing, tt.wantUp)
			}
		})
	}
}

func TestParseIfconfigErrors(t *testing.T) {
	for _, tt := range []struct{ name, out, want string }{
		{"unknown interface", darwinSample(t, "ifconfig_missing.txt"), "unexpected header"},
		{"empty", "", "no interface"},
		{"bad address", "utun3: flags=8051<UP> mtu 1280\n\tinet 100.64.7.x --> 100.64.7.1\n", "address in"},
		{"no address", "utun3: flags=8051<UP> mtu 1280\n\tinet\n", "no address"},
		{"bad mtu", "utun3: flags=8051<UP> mtu big\n", "mtu"},
	} {
		_, err := parseIfconfig(tt.out)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestUtunErrors(t *testing.T) {
	argv := []string{"/sbin/route", "-n", "add", "-inet", "100.64.0.0/10", "-interface", "utun3"}
	notRoot := commandError(argv, darwinSample(t, "route_add_notroot.txt"), nil)
	exitErr := exec.Command("false").Run()
	tests := []struct {
		name   string
		err    error
		is     error
		wants  []string
		denies []string
	}{
		{"not root", utunError("add route", notRoot), syscall.EPERM,
			[]string{"/sbin/route -n add -inet 100.64.0.0/10 -interface utun3", "must be root to alter routing table", "run warrend as root", "userspace mode"}, nil},
		{"ifconfig denied", utunError("configure utun3", commandError([]string{"/sbin/ifconfig", "utun3", "up"}, "ifconfig: ioctl (SIOCAIFADDR): Operation not permitted\n", exitErr)), syscall.EPERM,
			[]string{"configure utun3", "/sbin/ifconfig utun3 up", "Operation not permitted", "run warrend as root"}, nil},
		{"create denied", utunError("create TUN device utun", syscall.EPERM), syscall.EPERM,
			[]string{"create TUN device utun", "run warrend as root"}, nil},
		{"unit taken", utunError("create TUN device utun3", syscall.EBUSY), syscall.EBUSY,
			[]string{"that utun device is taken", "--tun utun"}, []string{"root"}},
		{"tool failed", utunError("configure utun3", commandError([]string{"/sbin/ifconfig", "utun3", "up"}, "", exitErr)), nil,
			[]string{"/sbin/ifconfig utun3 up", "exit status 1"}, []string{"root", "()"}},
		{"route exists elsewhere", routeExistsError(netip.MustParsePrefix("100.64.0.0/10"), "utun4"), nil,
			[]string{"100.64.0.0/10 already exists", "through utun4", "sudo route -n delete -inet 100.64.0.0/10", "userspace mode"}, nil},
		{"route exists, holder unknown", routeExistsError(netip.MustParsePrefix("fd7a:115c:a1e0::/48"), ""), nil,
			[]string{"fd7a:115c:a1e0::/48 already exists on this host (", "route -n delete -inet6 fd7a:115c:a1e0::/48"}, []string{"through"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.err.Error()
			if tt.is != nil && !errors.Is(tt.err, tt.is) {
				t.Errorf("%q is not %v", msg, tt.is)
			}
			for _, w := range tt.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			for _, d := range tt.denies {
				if strings.Contains(msg, d) {
					t.Errorf("%q has %q", msg, d)
				}
			}
		})
	}
}

// FuzzUtunOutputs feeds the parsers of ifconfig and route output anything:
// they must not panic, and what parseIfconfig accepts has a name.
func FuzzUtunOutputs(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "darwin"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".txt") {
			f.Add(darwinSample(f, e.Name()))
		}
	}
	plan := meshPlan("100.64.7.1/32", "fd7a:115c:a1e0::7:1/128")
	f.Fuzz(func(t *testing.T, out string) {
		if info, err := parseIfconfig(out); err == nil {
			if info.Name == "" {
				t.Errorf("parseIfconfig(%q) accepted with no name", out)
			}
			utunMissing(info, plan)
		}
		if g, err := parseRouteGet(out); err == nil && g.Interface == "" {
			t.Errorf("parseRouteGet(%q) accepted with no interface", out)
		}
		routeFailure(out, "utun3")
	})
}
