package magicdns

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzRespond feeds arbitrary bytes to the resolver as a query, over UDP
// and TCP: it must never panic, and what it sends back is either nothing
// or a valid DNS response no longer than the transport allows, with the
// query's ID.
func FuzzRespond(f *testing.F) {
	for _, name := range []string{"db.warren.internal.", "db.", "nosuch.warren.internal.", "many.warren.internal.",
		"2.0.64.100.in-addr.arpa.", "x.corp.example.com.", "example.com."} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypePTR, dns.TypeANY} {
			m := new(dns.Msg).SetQuestion(name, qt)
			m.SetEdns0(4096, true)
			b, _ := m.Pack()
			f.Add(b, false)
		}
	}
	f.Add([]byte{}, true)
	f.Add([]byte("\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03foo\x00\x00\x01\x00\x01"), false)
	// No upstreams, and a route to a closed port on loopback: forwards
	// fail fast, with no traffic beyond this host.
	r := New(Config{ForwardTimeout: 50e6})
	z := testZone(netip.MustParseAddrPort("127.0.0.1:9"))
	r.SetZone(z)
	f.Fuzz(func(t *testing.T, query []byte, tcp bool) {
		out := r.Respond(context.Background(), query, tcp)
		if out == nil {
			return
		}
		limit := dns.MaxMsgSize
		if !tcp {
			limit = maxUDPAnswer
		}
		if len(out) > limit {
			t.Fatalf("answer of %d bytes, limit %d", len(out), limit)
		}
		m := new(dns.Msg)
		if err := m.Unpack(out); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		if !m.Response {
			t.Fatal("answer without QR")
		}
		if len(query) >= 2 && m.Id != uint16(query[0])<<8|uint16(query[1]) {
			t.Fatalf("answer ID %d for query ID %x", m.Id, query[:2])
		}
	})
}
