package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	id, err := IdentityTLV(Identity{User: "ann@example.com", UserName: "Änn Example", Node: "ann-laptop"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		h    Header
		want Header // zero: same as h
	}{
		{"tcp4", Header{Src: netip.MustParseAddrPort("100.64.0.2:41000"), Dst: netip.MustParseAddrPort("100.64.0.1:5432")}, Header{}},
		{"tcp6 with TLVs", Header{Src: netip.MustParseAddrPort("[fd7a:115c:a1e0::2]:1"), Dst: netip.MustParseAddrPort("[fd7a:115c:a1e0::1]:65535"),
			TLVs: []TLV{id, {Type: 0x04, Value: []byte{}}}}, Header{}},
		{"mapped addresses become IPv4", Header{Src: netip.MustParseAddrPort("[::ffff:100.64.0.2]:7"), Dst: netip.MustParseAddrPort("100.64.0.1:80")},
			Header{Src: netip.MustParseAddrPort("100.64.0.2:7"), Dst: netip.MustParseAddrPort("100.64.0.1:80")}},
		{"local", Header{Local: true}, Header{}},
		{"local with a TLV", Header{Local: true, TLVs: []TLV{{Type: 0xE1, Value: []byte("x")}}}, Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want.Src == (netip.AddrPort{}) && !want.Local {
				want = tt.h
			}
			var buf bytes.Buffer
			if err := WriteV2(&buf, tt.h); err != nil {
				t.Fatal(err)
			}
			buf.WriteString("payload")
			r := bufio.NewReader(&buf)
			got, err := ReadV2(r)
			if err != nil {
				t.Fatal(err)
			}
			if !equal(got, want) {
				t.Errorf("read %+v, want %+v", got, want)
			}
			if rest, _ := io.ReadAll(r); string(rest) != "payload" {
				t.Errorf("left %q after the header, want the payload", rest)
			}
		})
	}
}

func equal(a, b Header) bool {
	if a.Local != b.Local || a.Src != b.Src || a.Dst != b.Dst || len(a.TLVs) != len(b.TLVs) {
		return false
	}
	for i := range a.TLVs {
		if a.TLVs[i].Type != b.TLVs[i].Type || !bytes.Equal(a.TLVs[i].Value, b.TLVs[i].Value) {
			return false
		}
	}
	return true
}

func TestIdentity(t *testing.T) {
	want := Identity{Node: "ci-runner", Tags: []string{"tag:ci", "tag:prod"}}
	tlv, err := IdentityTLV(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(tlv.Value) != `{"node":"ci-runner","tags":["tag:ci","tag:prod"]}` {
		t.Errorf("identity TLV value %s", tlv.Value)
	}
	got, ok, err := Header{TLVs: []TLV{{Type: 0x01, Value: []byte("h2")}, tlv}}.Identity()
	if err != nil || !ok || got.Node != want.Node || strings.Join(got.Tags, ",") != "tag:ci,tag:prod" || got.User != "" {
		t.Errorf("Identity() = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := (Header{}).Identity(); ok || err != nil {
		t.Errorf("no TLV: ok %v, err %v", ok, err)
	}
	if _, ok, err := (Header{TLVs: []TLV{{Type: TypeWarrenIdentity, Value: []byte("{")}}}).Identity(); !ok || err == nil {
		t.Errorf("bad JSON: ok %v, err %v", ok, err)
	}
}

func TestWriteErrors(t *testing.T) {
	v4, v6 := netip.MustParseAddrPort("100.64.0.1:1"), netip.MustParseAddrPort("[fd7a:115c:a1e0::1]:1")
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{"mixed families", Header{Src: v4, Dst: v6}, "different families"},
		{"no source", Header{Dst: v4}, "needs both addresses"},
		{"TLVs too long", Header{Src: v4, Dst: v4, TLVs: []TLV{{Type: 0xE1, Value: make([]byte, 40000)}, {Type: 0xE2, Value: make([]byte, 40000)}}}, "over 65535"},
		{"one TLV too long", Header{Src: v4, Dst: v4, TLVs: []TLV{{Type: 0xE1, Value: make([]byte, 70000)}}}, "over 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := AppendV2(nil, tt.h); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	good, err := AppendV2(nil, Header{Src: netip.MustParseAddrPort("100.64.0.2:1"), Dst: netip.MustParseAddrPort("100.64.0.1:2"),
		TLVs: []TLV{{Type: 0xE0, Value: []byte("{}")}}})
	if err != nil {
		t.Fatal(err)
	}
	with := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"v1 text header", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "no PROXY v2 signature"},
		{"HTTP", []byte("GET / HTTP/1.1\r\n"), "no PROXY v2 signature"},
		{"signature cut", good[:7], "unexpected EOF"},
		{"fixed part cut", good[:14], "unexpected EOF"},
		{"body cut", good[:len(good)-1], "unexpected EOF"},
		{"version 1", with(12, 0x11), "version 1"},
		{"unknown command", with(12, 0x22), "unknown command"},
		{"UDP", with(13, 0x12), "only TCP"},
		{"unix", with(13, 0x31), "only TCP"},
		{"PROXY unspec", with(13, 0x00), "no address family"},
		{"too short for addresses", append(with(15, 4), good[16:20]...)[:20], "too short"},
		{"TLV overruns", with(len(good)-3, 9), "announces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadV2(bufio.NewReader(bytes.NewReader(tt.in)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
	_, err = ReadV2(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\n")))
	if !errors.Is(err, ErrNoHeader) {
		t.Errorf("HTTP: %v, want ErrNoHeader", err)
	}
	// Without a signature nothing but the matching prefix is consumed.
	r := bufio.NewReader(strings.NewReader("\r\nhello"))
	if _, err := ReadV2(r); !errors.Is(err, ErrNoHeader) {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "\r\nhello" {
		t.Errorf("consumed input: left %q", rest)
	}
	// A LOCAL header of an unknown family is accepted, its block skipped.
	local := with(12, 0x20)
	local[13] = 0x31
	h, err := ReadV2(bufio.NewReader(bytes.NewReader(local)))
	if err != nil || !h.Local {
		t.Errorf("LOCAL unix: %+v, %v", h, err)
	}
}

func FuzzReadV2(f *testing.F) {
	good, _ := AppendV2(nil, Header{Src: netip.MustParseAddrPort("100.64.0.2:1"), Dst: netip.MustParseAddrPort("100.64.0.1:2"),
		TLVs: []TLV{{Type: 0xE0, Value: []byte(`{"node":"a"}`)}}})
	six, _ := AppendV2(nil, Header{Src: netip.MustParseAddrPort("[fd7a:115c:a1e0::2]:1"), Dst: netip.MustParseAddrPort("[fd7a:115c:a1e0::1]:2")})
	local, _ := AppendV2(nil, Header{Local: true})
	for _, s := range [][]byte{good, six, local, []byte("GET /"), signature[:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadV2(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		_, _, _ = h.Identity()
		if h.Local {
			return
		}
		// What was read writes back to the same bytes.
		out, err := AppendV2(nil, h)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", h, err)
		}
		if !bytes.Equal(out, b[:len(out)]) {
			t.Fatalf("re-encoded %x, read from %x", out, b[:len(out)])
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{100, 64, 0, 2}, []byte{100, 64, 0, 1}, uint16(1), uint16(80), byte(0xE0), []byte(`{"node":"a"}`), false)
	f.Add(netip.MustParseAddr("fd7a:115c:a1e0::2").AsSlice(), netip.MustParseAddr("fd7a:115c:a1e0::1").AsSlice(), uint16(0), uint16(0), byte(0), []byte{}, false)
	f.Add([]byte{}, []byte{}, uint16(0), uint16(0), byte(0xE1), []byte("x"), true)
	f.Fuzz(func(t *testing.T, src, dst []byte, sp, dp uint16, typ byte, val []byte, local bool) {
		s, _ := netip.AddrFromSlice(src)
		d, _ := netip.AddrFromSlice(dst)
		h := Header{Local: local, Src: netip.AddrPortFrom(s, sp), Dst: netip.AddrPortFrom(d, dp), TLVs: []TLV{{Type: typ, Value: val}}}
		b, err := AppendV2(nil, h)
		if err != nil {
			return
		}
		got, err := ReadV2(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("read back %x: %v", b, err)
		}
		want := h
		if local {
			want.Src, want.Dst = netip.AddrPort{}, netip.AddrPort{}
		} else {
			want.Src = netip.AddrPortFrom(s.Unmap(), sp)
			want.Dst = netip.AddrPortFrom(d.Unmap(), dp)
		}
		if !equal(got, want) {
			t.Fatalf("read %+v, wrote %+v", got, want)
		}
	})
}
