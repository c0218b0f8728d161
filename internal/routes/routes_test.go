package routes

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    string // Format of the result
		wantErr string // substring of the error
	}{
		{in: "", want: ""},
		{in: " , ,", want: ""},
		{in: "10.20.0.0/24", want: "10.20.0.0/24"},
		{in: "fd00:20::/64, 10.20.0.0/24 ,10.20.0.0/24", want: "10.20.0.0/24,fd00:20::/64"},
		{in: "192.168.1.0/24,10.0.0.0/8,10.0.0.0/16", want: "10.0.0.0/8,10.0.0.0/16,192.168.1.0/24"},
		{in: "10.0.0.7/32", want: "10.0.0.7/32"},
		{in: "10.20.0.1/24", wantErr: "did you mean 10.20.0.0/24"},
		{in: "10.20.0.5", wantErr: "write 10.20.0.5/32"},
		{in: "fd00::5", wantErr: "write fd00::5/128"},
		{in: "corp-db", wantErr: `"corp-db" is not a prefix`},
		{in: "10.0.0.0/33", wantErr: "is not a prefix"},
		{in: "0.0.0.0/0", wantErr: "--advertise-exit-node"},
		{in: "::/0", wantErr: "--advertise-exit-node"},
		{in: "100.64.0.0/10", wantErr: "overlaps the mesh"},
		{in: "100.100.100.100/32", wantErr: "overlaps the mesh"},
		{in: "64.0.0.0/2", wantErr: "overlaps the mesh"},
		{in: "fd7a:115c:a1e0:ab::/64", wantErr: "overlaps the mesh"},
		{in: "fc00::/7", wantErr: "overlaps the mesh"},
		{in: "127.0.0.0/8", wantErr: "loopback"},
		{in: "::1/128", wantErr: "loopback"},
		{in: "169.254.0.0/16", wantErr: "link-local"},
		{in: "fe80::/64", wantErr: "link-local"},
		{in: "239.1.0.0/16", wantErr: "multicast"},
		{in: "::ffff:10.0.0.0/104", wantErr: "write IPv4 routes as IPv4"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) = %v, %v; want an ErrInvalid containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || Format(got) != tt.want {
			t.Errorf("Parse(%q) = %q, %v; want %q", tt.in, Format(got), err, tt.want)
		}
	}
}

func TestParseTooMany(t *testing.T) {
	var b strings.Builder
	for i := range MaxAdvertised + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}).String() + "/24")
	}
	if _, err := Parse(b.String()); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("Parse(%d routes) = %v; want a limit error", MaxAdvertised+1, err)
	}
}

func TestCheckExitPair(t *testing.T) {
	both, err := Check([]netip.Prefix{ExitV6, netip.MustParsePrefix("10.1.0.0/16"), ExitV4})
	if err != nil {
		t.Fatal(err)
	}
	if Format(both) != "0.0.0.0/0,10.1.0.0/16,::/0" || !Exit(both) {
		t.Fatalf("Check = %s, Exit %v", Format(both), Exit(both))
	}
	for _, one := range []netip.Prefix{ExitV4, ExitV6} {
		if _, err := Check([]netip.Prefix{one}); err == nil || !strings.Contains(err.Error(), "both") {
			t.Errorf("Check(%s alone) = %v; want an error asking for both", one, err)
		}
	}
	if _, err := Check([]netip.Prefix{{}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Check(zero prefix) = %v", err)
	}
}

func TestEnabled(t *testing.T) {
	adv, _ := Check([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.0/16"), ExitV4, ExitV6})
	appr := []netip.Prefix{ExitV4, netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("10.9.0.0/16")}
	got := Enabled(adv, appr)
	if want := "0.0.0.0/0,10.2.0.0/16"; Format(got) != want {
		t.Fatalf("Enabled = %s; want %s (only advertised and approved)", Format(got), want)
	}
	if Exit(got) {
		t.Fatal("half an exit pair approved must not make an exit node")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "10.20.0.0/24,fd00:20::/64", "0.0.0.0/0", "10.0.0.1/24", "100.64.0.0/10", "::ffff:1.2.3.4/128", "fe80::1%eth0/64", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		// What Parse accepts is checked, sorted, free of duplicates, and
		// reads back the same.
		if !slices.IsSortedFunc(got, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		}) {
			t.Fatalf("Parse(%q) = %v, not sorted", s, got)
		}
		for _, p := range got {
			if p.Masked() != p || p.Overlaps(MeshV4) || p.Overlaps(MeshV6) || IsExit(p) {
				t.Fatalf("Parse(%q) accepted %s", s, p)
			}
		}
		again, err := Parse(Format(got))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("Parse(Format(%v)) = %v, %v", got, again, err)
		}
	})
}
