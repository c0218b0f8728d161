package magicdns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// upstream is a real DNS server on loopback (UDP and TCP on one port)
// answering every A question with addr; names starting with "big." get a
// truncated answer over UDP and the full one over TCP.
func upstream(t *testing.T, addr netip.Addr) netip.AddrPort {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: addr.AsSlice()})
		}
		if strings.HasPrefix(q.Name, "big.") && w.LocalAddr().Network() == "udp" {
			m.Answer, m.Truncated = nil, true
		}
		w.WriteMsg(m)
	})
	// The same port for UDP and TCP: the UDP port the system picks may be
	// taken for TCP (a busy machine's outgoing connections), so try again.
	var pc net.PacketConn
	var ln net.Listener
	var port int
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port
		ln, err = net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String())
		if err == nil {
			break
		}
		pc.Close()
		if try == 100 {
			t.Fatal(err)
		}
	}
	var started sync.WaitGroup
	started.Add(2)
	us := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: started.Done}
	ts := &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: started.Done}
	var done sync.WaitGroup
	done.Add(2)
	go func() { defer done.Done(); us.ActivateAndServe() }()
	go func() { defer done.Done(); ts.ActivateAndServe() }()
	started.Wait()
	t.Cleanup(func() {
		us.Shutdown()
		ts.Shutdown()
		done.Wait()
	})
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

var (
	dbV4  = netip.MustParseAddr("100.64.0.2")
	dbV6  = netip.MustParseAddr("fd7a:115c:a1e0::6440:2")
	self4 = netip.MustParseAddr("100.64.0.1")
)

func testZone(route netip.AddrPort) Zone {
	many := make([]netip.Addr, 100)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 9, byte(i / 256), byte(i)})
	}
	return Zone{
		Domain: "warren.internal",
		Hosts: []Record{
			{Name: "laptop", Addrs: []netip.Addr{self4}},
			{Name: "db", Addrs: []netip.Addr{dbV4, dbV6}},
		},
		Extra: []Record{
			{Name: "wiki.warren.internal.", Addrs: []netip.Addr{netip.MustParseAddr("100.64.0.9")}},
			{Name: "many.warren.internal", Addrs: many},
		},
		Routes: []Route{{Domain: "corp.example.com", Resolvers: []netip.AddrPort{route}}},
	}
}

func query(t *testing.T, r *Resolver, name string, qtype uint16, tcp bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := r.Respond(context.Background(), b, tcp)
	if out == nil {
		t.Fatalf("%s %s: no answer", name, dns.TypeToString[qtype])
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(out); err != nil {
		t.Fatalf("%s: answer does not parse: %v", name, err)
	}
	if resp.Id != m.Id {
		t.Fatalf("%s: answer ID %d, query ID %d", name, resp.Id, m.Id)
	}
	return resp
}

func answerAddrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	return out
}

func TestRespond(t *testing.T) {
	system := upstream(t, netip.MustParseAddr("192.0.2.1"))
	corp := upstream(t, netip.MustParseAddr("192.0.2.2"))
	r := New(Config{Upstreams: []netip.AddrPort{netip.AddrPortFrom(ServiceV4, 53), system}})
	r.SetZone(testZone(corp))
	tests := []struct {
		name  string
		qtype uint16
		tcp   bool
		rcode int
		want  []string
		tc    bool
	}{
		{"db.warren.internal.", dns.TypeA, false, dns.RcodeSuccess, []string{"100.64.0.2"}, false},
		{"DB.Warren.INTERNAL.", dns.TypeA, false, dns.RcodeSuccess, []string{"100.64.0.2"}, false},
		{"db.warren.internal.", dns.TypeAAAA, false, dns.RcodeSuccess, []string{"fd7a:115c:a1e0::6440:2"}, false},
		{"db.", dns.TypeA, false, dns.RcodeSuccess, []string{"100.64.0.2"}, false},
		{"laptop.", dns.TypeAAAA, false, dns.RcodeSuccess, nil, false}, // NODATA: no IPv6 address
		{"db.warren.internal.", dns.TypeMX, false, dns.RcodeSuccess, nil, false},
		{"nosuch.warren.internal.", dns.TypeA, false, dns.RcodeNameError, nil, false},
		{"a.db.warren.internal.", dns.TypeA, false, dns.RcodeNameError, nil, false},
		{"warren.internal.", dns.TypeA, false, dns.RcodeSuccess, nil, false},
		{"wiki.warren.internal.", dns.TypeA, false, dns.RcodeSuccess, []string{"100.64.0.9"}, false},
		{"2.0.64.100.in-addr.arpa.", dns.TypePTR, false, dns.RcodeSuccess, []string{"db.warren.internal."}, false},
		{"77.0.64.100.in-addr.arpa.", dns.TypePTR, false, dns.RcodeNameError, nil, false},
		{"2.0.0.0.0.4.4.6.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.", dns.TypePTR, false, dns.RcodeSuccess, []string{"db.warren.internal."}, false},
		{"example.com.", dns.TypeA, false, dns.RcodeSuccess, []string{"192.0.2.1"}, false},
		{"big.example.com.", dns.TypeA, false, dns.RcodeSuccess, []string{"192.0.2.1"}, false}, // TCP fallback upstream
		{"db.corp.example.com.", dns.TypeA, false, dns.RcodeSuccess, []string{"192.0.2.2"}, false},
		{"corp.example.com.", dns.TypeA, true, dns.RcodeSuccess, []string{"192.0.2.2"}, false},
		{"many.warren.internal.", dns.TypeA, true, dns.RcodeSuccess, nil, false}, // all 100, checked below
		{"many.warren.internal.", dns.TypeA, false, dns.RcodeSuccess, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			resp := query(t, r, tt.name, tt.qtype, tt.tcp)
			if resp.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			if resp.Truncated != tt.tc {
				t.Fatalf("TC %v, want %v", resp.Truncated, tt.tc)
			}
			got := answerAddrs(resp)
			if strings.HasPrefix(tt.name, "many.") {
				if tt.tcp && len(got) != 100 {
					t.Fatalf("over TCP %d answers, want 100", len(got))
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("answers %q, want %q", got, tt.want)
			}
			for _, rr := range resp.Answer {
				if rr.Header().Name != tt.name {
					t.Fatalf("answer for %q, asked %q (the question's case must be kept)", rr.Header().Name, tt.name)
				}
			}
		})
	}
}

func TestRespondWithoutUpstreams(t *testing.T) {
	r := New(Config{ForwardTimeout: time.Second})
	r.SetZone(Zone{Domain: "warren.internal"})
	if resp := query(t, r, "example.com.", dns.TypeA, false); resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
}

func TestRespondMalformed(t *testing.T) {
	r := New(Config{})
	valid := new(dns.Msg).SetQuestion("db.warren.internal.", dns.TypeA)
	asResponse := valid.Copy()
	asResponse.Response = true
	two := valid.Copy()
	two.Question = append(two.Question, two.Question[0])
	notify := valid.Copy()
	notify.Opcode = dns.OpcodeNotify
	pack := func(m *dns.Msg) []byte { b, _ := m.Pack(); return b }
	tests := []struct {
		name  string
		in    []byte
		rcode int // -1: no answer
	}{
		{"empty", nil, -1},
		{"short", []byte{1, 2, 3}, -1},
		{"oversized", make([]byte, MaxQuery+1), -1},
		{"garbage", []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"), dns.RcodeFormatError},
		{"response", pack(asResponse), -1},
		{"two questions", pack(two), dns.RcodeFormatError},
		{"notify", pack(notify), dns.RcodeNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := r.Respond(context.Background(), tt.in, false)
			if tt.rcode < 0 {
				if out != nil {
					t.Fatalf("answered %x", out)
				}
				return
			}
			m := new(dns.Msg)
			if err := m.Unpack(out); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if m.Rcode != tt.rcode || !m.Response {
				t.Fatalf("rcode %s response %v, want %s", dns.RcodeToString[m.Rcode], m.Response, dns.RcodeToString[tt.rcode])
			}
		})
	}
}
