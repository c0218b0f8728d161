package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestSOCKSConnect(t *testing.T) {
	echo4 := startEcho(t, "tcp4")
	echo6 := startEcho(t, "tcp6")
	_, addr := startProxy(t, Config{Resolve: mapResolver(map[string]netip.Addr{
		"echo":                  echo4.Addr(),
		"echo6.warren.internal": echo6.Addr(),
	})}, nil)

	tests := []struct {
		name    string
		req     SOCKSRequest
		wantBnd netip.Addr // family of the bound address in the reply
	}{
		{"ipv4", SOCKSRequest{Cmd: socksCmdConnect, Addr: echo4.Addr(), Port: echo4.Port()}, echo4.Addr()},
		{"ipv6", SOCKSRequest{Cmd: socksCmdConnect, Addr: echo6.Addr(), Port: echo6.Port()}, echo6.Addr()},
		{"domain", SOCKSRequest{Cmd: socksCmdConnect, Host: "echo", Port: echo4.Port()}, echo4.Addr()},
		{"fqdn ipv6", SOCKSRequest{Cmd: socksCmdConnect, Host: "echo6.warren.internal", Port: echo6.Port()}, echo6.Addr()},
		{"ip literal as domain", SOCKSRequest{Cmd: socksCmdConnect, Host: "127.0.0.1", Port: echo4.Port()}, echo4.Addr()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rep := socksDial(t, addr, tt.req)
			if rep.code != socksSucceeded {
				t.Fatalf("reply code %#x, want success", rep.code)
			}
			if rep.bnd.Addr() != tt.wantBnd || rep.bnd.Port() == 0 {
				t.Errorf("BND %v, want %v with the upstream conn's local port", rep.bnd, tt.wantBnd)
			}
			checkEcho(t, c, nil)
		})
	}
}

func TestSOCKSFailureReplies(t *testing.T) {
	echo := startEcho(t, "tcp4")
	closed := closedPort(t)
	_, addr := startProxy(t, Config{Resolve: mapResolver(map[string]netip.Addr{"echo": echo.Addr()})}, nil)
	_, slowAddr := startProxy(t, Config{Dial: blockingDialer(nil), DialTimeout: 20 * time.Millisecond}, nil)
	_, brokenAddr := startProxy(t, Config{Dial: func(context.Context, string, netip.AddrPort) (net.Conn, error) {
		return nil, errors.New("netstack is down")
	}}, nil)

	tests := []struct {
		name  string
		proxy string
		req   SOCKSRequest
		want  byte
	}{
		{"unknown host", addr, SOCKSRequest{Cmd: socksCmdConnect, Host: "db2", Port: 5432}, socksHostUnreachable},
		{"refused", addr, SOCKSRequest{Cmd: socksCmdConnect, Addr: closed.Addr(), Port: closed.Port()}, socksConnRefused},
		{"dial timeout", slowAddr, SOCKSRequest{Cmd: socksCmdConnect, Addr: echo.Addr(), Port: echo.Port()}, socksTTLExpired},
		{"dialer error", brokenAddr, SOCKSRequest{Cmd: socksCmdConnect, Addr: echo.Addr(), Port: echo.Port()}, socksGeneralFailure},
		{"bind", addr, SOCKSRequest{Cmd: 0x02, Host: "echo", Port: echo.Port()}, socksCmdNotSupported},
		{"udp associate", addr, SOCKSRequest{Cmd: 0x03, Addr: echo.Addr(), Port: echo.Port()}, socksCmdNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rep := socksDial(t, tt.proxy, tt.req)
			if rep.code != tt.want {
				t.Fatalf("reply code %#x, want %#x", rep.code, tt.want)
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("after failure reply read = %d, %v; want EOF", n, err)
			}
		})
	}
}

func TestSOCKSMalformed(t *testing.T) {
	_, addr := startProxy(t, Config{}, nil)
	greet := []byte{socksVersion, 1, socksMethodNoAuth}
	okMethod := []byte{socksVersion, socksMethodNoAuth}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	fail := func(code byte) []byte { return []byte{socksVersion, code, 0, socksATYPIPv4, 0, 0, 0, 0, 0, 0} }

	tests := []struct {
		name string
		in   []byte
		want []byte // everything the proxy sends before closing
	}{
		{"no acceptable auth method", []byte{socksVersion, 2, 0x02, 0x80}, []byte{socksVersion, socksMethodNone}},
		{"zero methods", []byte{socksVersion, 0}, []byte{socksVersion, socksMethodNone}},
		{"truncated greeting", []byte{socksVersion, 3, 0}, nil},
		{"version only", []byte{socksVersion}, nil},
		{"truncated request", cat(greet, []byte{socksVersion, 1, 0, socksATYPIPv4, 127, 0}), okMethod},
		{"truncated domain", cat(greet, []byte{socksVersion, 1, 0, socksATYPDomain, 10, 'd', 'b'}), okMethod},
		{"empty domain", cat(greet, []byte{socksVersion, 1, 0, socksATYPDomain, 0, 0, 80}), cat(okMethod, fail(socksGeneralFailure))},
		{"bad address type", cat(greet, []byte{socksVersion, 1, 0, 0x05, 1, 2, 3, 4, 0, 80}), cat(okMethod, fail(socksAddrTypeUnsupported))},
		{"bad request version", cat(greet, []byte{0x04, 1, 0, socksATYPIPv4, 127, 0, 0, 1, 0, 80}), cat(okMethod, fail(socksGeneralFailure))},
		{"socks4", []byte{0x04, 0x01, 0, 80, 127, 0, 0, 1, 0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exchange(t, addr, tt.in); !bytes.Equal(got, tt.want) {
				t.Fatalf("proxy sent % x, want % x", got, tt.want)
			}
		})
	}
}

func TestHandshakeTimeoutDropsIdleClients(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"silent", nil},
		{"half a SOCKS greeting", []byte{socksVersion, 2}},
		{"half an HTTP request", []byte("CONNECT db:5432 HTTP/1.1\r\n")},
	}
	_, addr := startProxy(t, Config{}, func(s *Server) { s.handshake = 50 * time.Millisecond })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialProxy(t, addr)
			if _, err := c.Write(tt.in); err != nil {
				t.Fatal(err)
			}
			// Without the handshake deadline this read would block until
			// the test's own deadline and fail.
			got, err := io.ReadAll(c)
			if err != nil || len(got) != 0 {
				t.Fatalf("read = %q, %v; want the proxy to close silently", got, err)
			}
		})
	}
}

func TestParseSOCKSRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    SOCKSRequest
		wantErr error // nil: success; io.ErrUnexpectedEOF etc. via errors.Is
	}{
		{"ipv4", []byte{5, 1, 0, 1, 100, 64, 0, 7, 0x15, 0x38}, SOCKSRequest{Cmd: 1, Addr: netip.MustParseAddr("100.64.0.7"), Port: 5432}, nil},
		{"ipv6", append(append([]byte{5, 1, 0, 4}, netip.MustParseAddr("fd7a:115c:a1e0::7").AsSlice()...), 0, 22),
			SOCKSRequest{Cmd: 1, Addr: netip.MustParseAddr("fd7a:115c:a1e0::7"), Port: 22}, nil},
		{"domain", []byte{5, 1, 0, 3, 2, 'd', 'b', 0x1f, 0x90}, SOCKSRequest{Cmd: 1, Host: "db", Port: 8080}, nil},
		{"nonzero rsv accepted", []byte{5, 2, 9, 1, 1, 2, 3, 4, 0, 1}, SOCKSRequest{Cmd: 2, Addr: netip.MustParseAddr("1.2.3.4"), Port: 1}, nil},
		{"empty", nil, SOCKSRequest{}, io.EOF},
		{"short header", []byte{5, 1}, SOCKSRequest{}, io.ErrUnexpectedEOF},
		{"version 4", []byte{4, 1, 0, 1, 1, 2, 3, 4, 0, 1}, SOCKSRequest{}, errSOCKSVersion},
		{"bad atyp", []byte{5, 1, 0, 2, 1, 2, 3, 4, 0, 1}, SOCKSRequest{}, errSOCKSAddrType},
		{"empty domain", []byte{5, 1, 0, 3, 0, 0, 1}, SOCKSRequest{}, errSOCKSEmptyDomain},
		{"short domain", []byte{5, 1, 0, 3, 255, 'a'}, SOCKSRequest{}, io.ErrUnexpectedEOF},
		{"no port", []byte{5, 1, 0, 1, 1, 2, 3, 4}, SOCKSRequest{}, io.EOF},
		{"half port", []byte{5, 1, 0, 1, 1, 2, 3, 4, 0}, SOCKSRequest{}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSOCKSRequest(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
