//go:build linux

package engine

import (
	"encoding/base64"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestUAPISocket: an engine with a UAPI name serves WireGuard's standard
// socket, root only; wgctrl (Status) and wg(8) read its peers through
// it; Close removes the socket.
func TestUAPISocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: /var/run/wireguard needs root")
	}
	verifyNoLeaks(t)
	name := "wrntest-uapi"
	sock := "/var/run/wireguard/" + name + ".sock"
	e, err := New(Config{NodeKey: key.NewNode(), Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.7.1/32")}, UAPIName: name})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	peer := key.NewNode().Public()
	if err := e.SetNetmap([]wire.Node{{NodeKey: peer, Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.7.2/32")}}}, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s: mode %v, want root's alone", sock, fi.Mode().Perm())
	}
	st, err := wgctrlStatus(name)
	if err != nil || len(st) != 1 || st[0].NodeKey != peer {
		t.Fatalf("through wgctrl: %+v, %v", st, err)
	}
	if wg, err := exec.LookPath("wg"); err == nil {
		out, err := exec.Command(wg, "show", name).CombinedOutput()
		if err != nil {
			t.Fatalf("wg show %s: %v\n%s", name, err, out)
		}
		// No path yet: the relay address with region 0.
		for _, want := range []string{"interface: " + name, "peer: " + base64.StdEncoding.EncodeToString(raw(peer)),
			"endpoint: 127.3.3.40:0", "allowed ips: 100.64.7.2/32"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("wg show: no %q in:\n%s", want, out)
			}
		}
	}
	e.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("after Close, %s: %v", sock, err)
	}
}

func raw(k key.NodePublic) []byte { r := k.Raw(); return r[:] }
