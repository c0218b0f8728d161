package engine

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestWintunAdapterName(t *testing.T) {
	for _, tt := range []struct {
		requested, want, wantErr string
	}{
		{requested: "Warren", want: "Warren"},
		{requested: "warren0", want: "warren0"},
		{requested: "Warren Mesh", want: "Warren Mesh"},
		{requested: strings.Repeat("w", 127), want: strings.Repeat("w", 127)},
		// 64 runes outside the BMP are 128 UTF-16 units.
		{requested: strings.Repeat("🐇", 64), wantErr: "128 UTF-16 units long; Wintun takes at most 127: pick a shorter --tun name"},
		{requested: strings.Repeat("w", 128), wantErr: "128 UTF-16 units"},
		{requested: "", wantErr: "empty adapter name"},
		{requested: "war\x00ren", wantErr: "NUL"},
	} {
		got, err := wintunAdapterName(tt.requested)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("wintunAdapterName(%q): %v", tt.requested, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("wintunAdapterName(%q): err = %v, want one containing %q", tt.requested, err, tt.wantErr)
		case got != tt.want:
			t.Errorf("wintunAdapterName(%q) = %q, want %q", tt.requested, got, tt.want)
		}
	}
}

func TestWintunFamilyConfig(t *testing.T) {
	plan := meshPlan("100.64.7.1/32", "fd7a:115c:a1e0::7:1/128")
	tests := []struct {
		v6         bool
		wantAddrs  []string
		wantRoutes []wintunRoute
	}{
		{false, []string{"100.64.7.1/32"},
			[]wintunRoute{{dst: netip.MustParsePrefix("100.64.0.0/10"), nextHop: netip.MustParseAddr("0.0.0.0")}}},
		{true, []string{"fd7a:115c:a1e0::7:1/128"},
			[]wintunRoute{{dst: netip.MustParsePrefix("fd7a:115c:a1e0::/48"), nextHop: netip.MustParseAddr("::")}}},
	}
	for _, tt := range tests {
		addrs, routes := wintunFamilyConfig(plan.family(tt.v6))
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tt.wantAddrs) || !slices.Equal(routes, tt.wantRoutes) {
			t.Errorf("v6=%t: got %v %v, want %v %v", tt.v6, got, routes, tt.wantAddrs, tt.wantRoutes)
		}
	}
	if addrs, routes := wintunFamilyConfig(plan.family(true).family(false)); addrs != nil || routes != nil {
		t.Errorf("empty family: got %v %v, want nothing", addrs, routes)
	}
}

func TestWintunErrors(t *testing.T) {
	cause := errors.New("The specified module could not be found.")
	tests := []struct {
		name   string
		err    error
		wants  []string
		denies []string
	}{
		{"DLL missing", wintunMissingError(`C:\Program Files\Warren`, cause),
			[]string{"wintun.dll not found in C:\\Program Files\\Warren or in System32", "could not be found", "beside warrend.exe", "userspace mode"}, nil},
		{"denied", wintunError(`create Wintun adapter "Warren"`, syscall.EPERM, true),
			[]string{`create Wintun adapter "Warren"`, "administrator", "userspace mode"}, nil},
		{"other", wintunError("set the interface of Warren", cause, false),
			[]string{"set the interface of Warren", "could not be found"}, []string{"administrator"}},
		{"address taken", wintunAddressTakenError("Warren", cause),
			[]string{"assign the mesh addresses to Warren", "another adapter has one of them", "Remove-NetIPAddress"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.err.Error()
			if !errors.Is(tt.err, cause) && !errors.Is(tt.err, syscall.EPERM) {
				t.Errorf("%q does not wrap its cause", msg)
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

// TestWintunOnLink: a peer's subnet route goes on-link through the
// adapter, with the unspecified next hop of its family.
func TestWintunOnLink(t *testing.T) {
	for dst, hop := range map[string]string{"10.20.0.0/24": "0.0.0.0", "fd00:20::/64": "::"} {
		r := onLink(tunRoute{dst: netip.MustParsePrefix(dst), src: netip.MustParseAddr("100.64.0.7")})
		if r.dst.String() != dst || r.nextHop.String() != hop {
			t.Errorf("onLink(%s) = %v", dst, r)
		}
	}
}
