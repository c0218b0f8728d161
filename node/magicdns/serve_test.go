package magicdns

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serving runs r on UDP and TCP on 127.0.0.1 until the test ends.
func serving(t *testing.T, r *Resolver) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.ServeUDP(ctx, pc) }()
	go func() { defer wg.Done(); r.ServeTCP(ctx, ln) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return addr
}

func packQuery(t *testing.T, name string) []byte {
	t.Helper()
	b, err := new(dns.Msg).SetQuestion(name, dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServeRefusesOtherSources: a query from a source Allow refuses gets
// no answer (the resolver is never open), while an allowed one queued
// after it does, over UDP and TCP.
func TestServeRefusesOtherSources(t *testing.T) {
	allowed := netip.MustParseAddr("127.0.0.2")
	r := New(Config{Allow: func(src netip.Addr) bool { return src == allowed }})
	r.SetZone(Zone{Domain: "warren.internal", Hosts: []Record{{Name: "db", Addrs: []netip.Addr{dbV4}}}})
	srv := serving(t, r)

	outsider, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, net.UDPAddrFromAddrPort(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close()
	insider, err := net.DialUDP("udp", &net.UDPAddr{IP: allowed.AsSlice()}, net.UDPAddrFromAddrPort(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	if _, err := outsider.Write(packQuery(t, "db.warren.internal.")); err != nil {
		t.Fatal(err)
	}
	if _, err := insider.Write(packQuery(t, "db.warren.internal.")); err != nil {
		t.Fatal(err)
	}
	// The server reads its socket in order: once the insider has its
	// answer, the outsider's query was read (and dropped) before it.
	insider.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 1500)
	n, err := insider.Read(buf)
	if err != nil {
		t.Fatalf("allowed source got no answer: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil || len(m.Answer) != 1 {
		t.Fatalf("answer %v, %v", m, err)
	}
	if got := r.Stats().Refused; got != 1 {
		t.Fatalf("refused %d queries, want 1", got)
	}
	outsider.SetReadDeadline(time.Now()) // anything sent is queued by now
	if n, err := outsider.Read(buf); err == nil {
		t.Fatalf("refused source got %d bytes", n)
	}

	// TCP: the refused source's connection is closed unanswered.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Timeout: 30 * time.Second}
	c, err := d.Dial("tcp", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("refused TCP source got %d bytes", n)
	}
	d.LocalAddr = &net.TCPAddr{IP: allowed.AsSlice()}
	c2, err := d.Dial("tcp", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(30 * time.Second))
	q := packQuery(t, "db.")
	if _, err := c2.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		t.Fatal(err)
	}
	var lenBuf [2]byte
	if _, err := io.ReadFull(c2, lenBuf[:]); err != nil {
		t.Fatalf("allowed TCP source: %v", err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
	if _, err := io.ReadFull(c2, resp); err != nil {
		t.Fatal(err)
	}
	if err := m.Unpack(resp); err != nil || len(m.Answer) != 1 {
		t.Fatalf("TCP answer %v, %v", m, err)
	}
}

func TestIsLocalSource(t *testing.T) {
	own := []netip.Addr{self4}
	for _, tt := range []struct {
		src  string
		want bool
	}{
		{"127.0.0.1", true}, {"::1", true}, {"100.100.100.100", true}, {"fd7a:115c:a1e0::53", true},
		{"100.64.0.1", true}, {"::ffff:100.64.0.1", true},
		{"100.64.0.2", false}, {"10.78.0.2", false}, {"192.168.1.5", false},
	} {
		if got := IsLocalSource(netip.MustParseAddr(tt.src), own); got != tt.want {
			t.Errorf("IsLocalSource(%s) = %v, want %v", tt.src, got, tt.want)
		}
	}
}
