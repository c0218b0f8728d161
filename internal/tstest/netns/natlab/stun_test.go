package natlab_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/warrenmesh/warren/derp/stunserver"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/netns/natlab"
)

// startSTUN runs Warren's STUN server in ns on each of addrs until the
// test ends.
func startSTUN(t *testing.T, ns *netns.Namespace, addrs ...netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, addr := range addrs {
		var pc net.PacketConn
		if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", addr.String()); return err }); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- stunserver.Serve(ctx, pc, slog.New(slog.DiscardHandler)) }()
		t.Cleanup(func() {
			cancel()
			pc.Close()
			if err := <-done; err != nil {
				t.Errorf("STUN server on %s: %v", addr, err)
			}
		})
	}
}

// mapped asks the STUN server at server, from pc, for pc's mapped address,
// resending every 100ms, and gives up after timeout.
func mapped(pc net.PacketConn, server netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return netip.AddrPort{}, err
	}
	dst := net.UDPAddrFromAddrPort(server)
	deadline := time.Now().Add(timeout)
	defer pc.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := pc.WriteTo(req.Raw, dst); err != nil {
			return netip.AddrPort{}, fmt.Errorf("STUN request to %s: %w", server, err)
		}
		wait := time.Now().Add(100 * time.Millisecond)
		if wait.After(deadline) {
			wait = deadline
		}
		pc.SetReadDeadline(wait)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break // resend, or give up at the deadline
			}
			resp := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if resp.Decode() != nil || resp.TransactionID != req.TransactionID {
				continue // a stray packet, or an answer to an earlier request
			}
			var xor stun.XORMappedAddress
			if err := xor.GetFrom(resp); err != nil {
				return netip.AddrPort{}, fmt.Errorf("STUN response from %s: %w", server, err)
			}
			ip, _ := netip.AddrFromSlice(xor.IP)
			return netip.AddrPortFrom(ip.Unmap(), uint16(xor.Port)), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no STUN response from %s in %s", server, timeout)
}

// listenUDP opens a UDP socket on an ephemeral port inside ns.
func listenUDP(t *testing.T, ns *netns.Namespace) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func localPort(pc net.PacketConn) uint16 {
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

// TestDebianSTUNClient runs Debian's classic (RFC 3489) stun client on the
// LAN hosts against Warren's STUN server in the public namespace and checks
// what it can tell from a server with one address: the router's WAN
// address as the mapped address, and whether the NAT kept the client's
// port. The server answers only its plain binding request ("test I"): it
// drops CHANGE-REQUESTs and sends no CHANGED-ADDRESS, so the client never
// hears from a second address. It then prints "Port Dependent Filter"
// (inferred from the silence) and "Independent Mapping" even behind the
// symmetric NAT (it had no second address to compare); those parts are
// not checked. Its exit status is a bit mask of its findings, not success
// or failure.
func TestDebianSTUNClient(t *testing.T) {
	t.Parallel()
	const bin = "/usr/bin/stun"
	if _, err := exec.LookPath(bin); err != nil {
		t.Skip("skipping: Debian's stun client is not installed (apt-get install stun-client)")
	}
	lab := newLab(t, natlab.EndpointIndependent, natlab.Symmetric)
	for _, tt := range []struct {
		name string
		site *natlab.Site
		port string // what the client says about ports
	}{
		{"endpoint-independent", lab.Left, "preserves ports"},
		{"symmetric", lab.Right, "random port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ip", "netns", "exec", tt.site.Host.Name, bin, stunA.Addr().String(), "-v")
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("stun did not finish in 10s: %v\n%s", err, out)
			}
			text := string(out)
			m := regexp.MustCompile(`Opened port (\d+) with fd 3`).FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("stun printed no \"Opened port N with fd 3\":\n%s", text)
			}
			want := "MappedAddress = " + tt.site.WANIP.String() + ":"
			if !strings.Contains(text, want) {
				t.Errorf("stun printed no %q:\n%s", want, text)
			}
			if tt.site.Router.NAT() == natlab.EndpointIndependent && !strings.Contains(text, want+m[1]+"\n") {
				t.Errorf("stun printed no %q (the port kept):\n%s", want+m[1], text)
			}
			primary, _ := lineWith(text, "Primary: ")
			if !strings.Contains(primary, tt.port) {
				t.Errorf("stun's verdict %q lacks %q; its output:\n%s", primary, tt.port, text)
			}
			if !strings.Contains(text, "is nat  = 1") {
				t.Errorf("stun did not see a NAT:\n%s", text)
			}
			t.Log(primary)
		})
	}
}

// lineWith returns the first line of text containing substr.
func lineWith(text, substr string) (string, bool) {
	for line := range strings.Lines(text) {
		if strings.Contains(line, substr) {
			return strings.TrimSpace(line), true
		}
	}
	return "", false
}
