//go:build linux

package engine

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// TestMasqueradeRules: one rule per mesh range: the family, the source
// address under the range's mask, any interface but the TUN device, and
// masquerade.
func TestMasqueradeRules(t *testing.T) {
	rules := masqueradeRules("wrn0")
	if len(rules) != len(meshPrefixes) {
		t.Fatalf("%d rules, want %d", len(rules), len(meshPrefixes))
	}
	for i, p := range meshPrefixes {
		r := rules[i]
		if len(r) != 8 {
			t.Fatalf("rule %d: %d expressions", i, len(r))
		}
		proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
		if p.Addr().Is6() {
			proto, off, n = unix.NFPROTO_IPV6, 8, 16
		}
		if m, ok := r[0].(*expr.Meta); !ok || m.Key != expr.MetaKeyNFPROTO {
			t.Errorf("rule %d: first %#v, want the protocol family", i, r[0])
		}
		if c, ok := r[1].(*expr.Cmp); !ok || c.Op != expr.CmpOpEq || !bytes.Equal(c.Data, []byte{proto}) {
			t.Errorf("rule %d: family %#v", i, r[1])
		}
		if pl, ok := r[2].(*expr.Payload); !ok || pl.Base != expr.PayloadBaseNetworkHeader || pl.Offset != off || pl.Len != n {
			t.Errorf("rule %d: payload %#v, want the source address", i, r[2])
		}
		b, ok := r[3].(*expr.Bitwise)
		if !ok || b.Len != n {
			t.Fatalf("rule %d: bitwise %#v", i, r[3])
		}
		// The mask keeps exactly the range's bits.
		masked, _ := netip.AddrFromSlice(b.Mask)
		if netip.PrefixFrom(masked, p.Bits()).Masked().Addr() != masked {
			t.Errorf("rule %d: mask %s for %s", i, masked, p)
		}
		if c, ok := r[4].(*expr.Cmp); !ok || !bytes.Equal(c.Data, p.Addr().AsSlice()) {
			t.Errorf("rule %d: range %#v, want %s", i, r[4], p.Addr())
		}
		if m, ok := r[5].(*expr.Meta); !ok || m.Key != expr.MetaKeyOIFNAME {
			t.Errorf("rule %d: %#v, want the output interface", i, r[5])
		}
		if c, ok := r[6].(*expr.Cmp); !ok || c.Op != expr.CmpOpNeq || len(c.Data) != unix.IFNAMSIZ || string(bytes.TrimRight(c.Data, "\x00")) != "wrn0" {
			t.Errorf("rule %d: %#v, want != wrn0", i, r[6])
		}
		if _, ok := r[7].(*expr.Masq); !ok {
			t.Errorf("rule %d: verdict %#v, want masquerade", i, r[7])
		}
	}
	if got := natTableName("wrn0"); got != "warren-wrn0" {
		t.Errorf("table %q", got)
	}
}

// TestKernelRouter: in a fresh namespace (forwarding off), the router
// turns forwarding on and creates its table, replacing one a crashed run
// left; Close deletes the table and turns forwarding off again. With SNAT
// off there is no table, and a stale one still goes.
func TestKernelRouter(t *testing.T) {
	netns.Skip(t)
	ns := netns.New(t, "f-krouter")
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	tables := func() []string {
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		ts, err := c.ListTables()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tb := range ts {
			names = append(names, tb.Name)
		}
		return names
	}
	if err := ns.Do(func() error {
		log := slog.New(slog.DiscardHandler)
		stale, err := startKernelRouter("wrnf9", true, log)
		if err != nil {
			return err
		}
		stale.table = nil // as if it crashed: the table stays
		r, err := startKernelRouter("wrnf9", true, log)
		if err != nil {
			return err
		}
		if got := tables(); !slices.Equal(got, []string{"warren-wrnf9"}) {
			t.Errorf("tables while routing: %q", got)
		}
		c, err := nftables.New()
		if err != nil {
			return err
		}
		rules, err := c.GetRules(r.table, &nftables.Chain{Name: "postrouting", Table: r.table})
		if err != nil || len(rules) != len(meshPrefixes) {
			t.Errorf("%d rules (%v), want %d: the stale table's must be gone", len(rules), err, len(meshPrefixes))
		}
		for _, p := range forwardingSysctls {
			if _, err := os.Stat(p); err == nil && read(p) != "1" {
				t.Errorf("%s = %s while routing", p, read(p))
			}
		}
		if err := r.Close(); err != nil {
			return err
		}
		if got := tables(); len(got) != 0 {
			t.Errorf("tables after Close: %q", got)
		}
		// The crashed run's Close would restore forwarding; the second
		// run found it on and leaves it on.
		if err := stale.Close(); err != nil {
			return err
		}
		for _, p := range forwardingSysctls {
			if _, err := os.Stat(p); err == nil && read(p) != "0" {
				t.Errorf("%s = %s after Close, want 0 as it was", p, read(p))
			}
		}
		if _, err := addNATTable("wrnf9"); err != nil {
			return err
		}
		r, err = startKernelRouter("wrnf9", false, log)
		if err != nil {
			return err
		}
		if got := tables(); len(got) != 0 {
			t.Errorf("tables with SNAT off: %q", got)
		}
		return r.Close()
	}); err != nil {
		t.Fatal(err)
	}
}
