package stunserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// modernRequest is a Binding request as pion builds it, plus attrs.
func modernRequest(t testing.TB, setters ...stun.Setter) *stun.Message {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// classicRequest is an RFC 3489 Binding request (no magic cookie) with an
// optional CHANGE-REQUEST, as Debian's stun client sends it.
func classicRequest(change int) []byte {
	b := []byte{0x00, 0x01, 0x00, 0x00, 0x01, 0x6d, 0xf4, 0x72, 0xd8, 0xf1, 0xe9, 0x7d, 0x70, 0xfb, 0xf5, 0x16, 0xba, 0x84, 0x9b, 0x50}
	if change >= 0 {
		b = append(b, 0x00, 0x03, 0x00, 0x04, 0, 0, 0, byte(change))
		binary.BigEndian.PutUint16(b[2:4], 8)
	}
	return b
}

type changeRequest uint32

func (c changeRequest) AddTo(m *stun.Message) error {
	m.Add(stun.AttrChangeRequest, binary.BigEndian.AppendUint32(nil, uint32(c)))
	return nil
}

func TestRespondModern(t *testing.T) {
	for _, src := range []string{"203.0.113.7:41641", "[2001:db8::1]:3478", "[::ffff:198.51.100.2]:1"} {
		t.Run(src, func(t *testing.T) {
			from := netip.MustParseAddrPort(src)
			req := modernRequest(t, stun.NewSoftware("test"), stun.Fingerprint)
			raw := Respond(req.Raw, from)
			if raw == nil {
				t.Fatal("no response")
			}
			resp := new(stun.Message)
			if err := stun.Decode(raw, resp); err != nil {
				t.Fatalf("decode response: %v", err)
			}
			if resp.Type != stun.BindingSuccess || resp.TransactionID != req.TransactionID {
				t.Fatalf("response type %v id %x, want BindingSuccess %x", resp.Type, resp.TransactionID, req.TransactionID)
			}
			if err := stun.Fingerprint.Check(resp); err != nil {
				t.Fatalf("fingerprint: %v", err)
			}
			var xor stun.XORMappedAddress
			var mapped stun.MappedAddress
			var sw stun.Software
			if err := resp.Parse(&xor, &mapped, &sw); err != nil {
				t.Fatalf("parse response: %v", err)
			}
			want := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			for name, got := range map[string]string{"XOR-MAPPED-ADDRESS": xor.String(), "MAPPED-ADDRESS": mapped.String()} {
				if got != want.String() {
					t.Errorf("%s = %s, want %s", name, got, want)
				}
			}
			if sw.String() != Software {
				t.Errorf("SOFTWARE = %q", sw)
			}
		})
	}
}

func TestRespondClassic(t *testing.T) {
	from := netip.MustParseAddrPort("192.0.2.9:24050")
	for _, change := range []int{-1, 0} {
		req := classicRequest(change)
		raw := Respond(req, from)
		if raw == nil {
			t.Fatalf("change %d: no response", change)
		}
		if binary.BigEndian.Uint16(raw[0:2]) != 0x0101 || string(raw[4:20]) != string(req[4:20]) {
			t.Fatalf("change %d: header %x, want type 0101 and id %x", change, raw[:20], req[4:20])
		}
		// One attribute: MAPPED-ADDRESS 192.0.2.9:24050.
		want := []byte{0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x5d, 0xf2, 192, 0, 2, 9}
		if string(raw[20:]) != string(want) || int(binary.BigEndian.Uint16(raw[2:4])) != len(want) {
			t.Fatalf("change %d: body %x, want %x", change, raw[20:], want)
		}
	}
}

func TestRespondDrops(t *testing.T) {
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	good := modernRequest(t).Raw
	badFP := modernRequest(t, stun.Fingerprint).Raw
	badFP[len(badFP)-1] ^= 1
	indication := modernRequest(t).Raw
	indication[1] = 0x11
	overflow := append(modernRequest(t).Raw, 0x80, 0x22, 0x00, 0x10, 'w', 'a', 'r', 'r')
	binary.BigEndian.PutUint16(overflow[2:4], 8)
	tests := []struct {
		name string
		req  []byte
	}{
		{"empty", nil},
		{"short", good[:19]},
		{"dns query", []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01")},
		{"binding response", append([]byte{0x01, 0x01}, good[2:]...)},
		{"indication", indication},
		{"length too long", append(append([]byte{}, good[:2]...), append([]byte{0, 4}, good[4:]...)...)},
		{"length not multiple of 4", append(append([]byte{}, good[:2]...), append([]byte{0, 2}, append(good[4:], 0, 0)...)...)},
		{"trailing bytes", append(append([]byte{}, good...), 0, 0, 0, 0)},
		{"attribute overflows", overflow},
		{"bad fingerprint", badFP},
		{"change ip (classic)", classicRequest(4)},
		{"change port (classic)", classicRequest(2)},
		{"change both (classic)", classicRequest(6)},
		{"change ip (modern)", modernRequest(t, changeRequest(4)).Raw},
		{"change port (modern)", modernRequest(t, changeRequest(2)).Raw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := Respond(tt.req, from); resp != nil {
				t.Fatalf("answered %x with %x", tt.req, resp)
			}
		})
	}
	if Respond(good, netip.AddrPort{}) != nil {
		t.Fatal("answered a request without a source address")
	}
}

// serve runs Serve on a loopback socket until the test ends.
func serve(t *testing.T) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, pc, quiet) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after its context ended, want nil", err)
		}
		pc.Close()
	})
	return pc.LocalAddr().(*net.UDPAddr)
}

func TestServeWithPionClient(t *testing.T) {
	server := serve(t)
	conn, err := net.DialUDP("udp4", nil, server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stun.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Garbage first: the server must ignore it and keep serving.
	if _, err := conn.Write([]byte("not stun at all")); err != nil {
		t.Fatal(err)
	}
	var got stun.XORMappedAddress
	var evErr error
	err = c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest), func(e stun.Event) {
		if evErr = e.Error; evErr == nil {
			evErr = got.GetFrom(e.Message)
		}
	})
	if err == nil {
		err = evErr
	}
	if err != nil {
		t.Fatalf("binding request: %v", err)
	}
	if local := conn.LocalAddr().(*net.UDPAddr); !got.IP.Equal(local.IP) || got.Port != local.Port {
		t.Fatalf("mapped address %v, want the client's socket %v", got, local)
	}
}

func TestServeEnds(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), pc, nil) }()
	pc.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed socket returned %v, want net.ErrClosed", err)
	}
}

// freePorts returns a UDP port p on 127.0.0.1 such that p..p+n-1 are free
// right now (Debian's stun binds its -p port and the next one).
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := probe.LocalAddr().(*net.UDPAddr).Port
		conns := []net.PacketConn{probe}
		ok := p+n-1 <= 65535
		for i := 1; ok && i < n; i++ {
			c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", p+i))
			ok = err == nil
			if ok {
				conns = append(conns, c)
			}
		}
		for _, c := range conns {
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free UDP ports")
	return 0
}

// TestDebianStunClient runs the classic RFC 3489 client from Debian's
// stun-client package against the server.
func TestDebianStunClient(t *testing.T) {
	bin, err := exec.LookPath("stun")
	if err != nil {
		t.Skip("Debian's stun client (package stun-client) is not installed; skipping the interoperability test")
	}
	server := serve(t).String()
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("stun %v timed out:\n%s", args, out)
		}
		// stun exits with a bit mask of its findings, not 0 for success.
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("stun %v: %v", args, err)
		}
		return string(out)
	}

	// Test 1 of RFC 3489 alone: a plain Binding request.
	port := freePorts(t, 1)
	out := run(server, "1", "-v", "-p", fmt.Sprint(port))
	if want := fmt.Sprintf("MappedAddress = 127.0.0.1:%d", port); !strings.Contains(out, want) {
		t.Fatalf("stun test 1 output lacks %q:\n%s", want, out)
	}

	// The full NAT-type run: test I is answered with the right address,
	// tests II and III (CHANGE-REQUEST) get no answer.
	port = freePorts(t, 2)
	out = run(server, "-v", "-p", fmt.Sprint(port))
	for _, want := range []string{
		fmt.Sprintf("MappedAddress = 127.0.0.1:%d", port),
		"test I = 1", "test II = 0", "test III = 0", "is nat  = 0",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("stun output lacks %q:\n%s", want, out)
		}
	}
}

// FuzzRespond checks that Respond never panics, answers only Binding
// requests, with a success response of bounded size that echoes the
// transaction ID.
func FuzzRespond(f *testing.F) {
	f.Add(modernRequest(f).Raw, []byte{192, 0, 2, 1}, uint16(3478))
	f.Add(modernRequest(f, stun.NewSoftware("x"), stun.Fingerprint).Raw, make([]byte, 16), uint16(1))
	f.Add(classicRequest(-1), []byte{127, 0, 0, 1}, uint16(24050))
	f.Add(classicRequest(4), []byte{127, 0, 0, 1}, uint16(24051))
	f.Add([]byte("garbage"), []byte{10, 0, 0, 1}, uint16(53))
	f.Fuzz(func(t *testing.T, req, ip []byte, port uint16) {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		resp := Respond(req, netip.AddrPortFrom(addr, port))
		if resp == nil {
			return
		}
		if len(req) < 20 || binary.BigEndian.Uint16(req[0:2]) != 0x0001 {
			t.Fatalf("answered a non-request %x", req)
		}
		if len(resp) > 100 || binary.BigEndian.Uint16(resp[0:2]) != 0x0101 {
			t.Fatalf("bad response %x", resp)
		}
		if string(resp[4:20]) != string(req[4:20]) {
			t.Fatalf("response id %x, request id %x", resp[4:20], req[4:20])
		}
		if binary.BigEndian.Uint32(req[4:8]) == 0x2112A442 {
			m := new(stun.Message)
			if err := stun.Decode(resp, m); err != nil {
				t.Fatalf("response does not decode: %v", err)
			}
			if err := stun.Fingerprint.Check(m); err != nil {
				t.Fatalf("response fingerprint: %v", err)
			}
		}
	})
}
