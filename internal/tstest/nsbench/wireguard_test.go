package nsbench

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/device"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/node/engine"
)

// wgDefaultMTU is wireguard-go's own default, for the baseline tunnel.
const wgDefaultMTU = device.DefaultMTU

// warrenMTU is the MTU Warren's engine gives its device by default; one
// bare tunnel uses it too, to separate the cost of the smaller MTU from
// the cost of Warren itself.
const warrenMTU = engine.DefaultMTU

// bareTunnel describes one bare wireguard-go tunnel between A and B.
type bareTunnel struct {
	dev    string // TUN device name, the same in both namespaces
	subnet string // first three octets of the tunnel /24: A is .1, B is .2
	port   int    // UDP port of both ends
	mtu    int
}

// startBareWireGuard runs a benchnode wg process in each namespace (a
// wireguard-go device on a kernel TUN with the standard UDP bind), sets
// fresh keys and the other end as peer over UAPI, addresses the devices
// and brings them up. It returns B's tunnel address.
func startBareWireGuard(b *testing.B, bin string, nsA, nsB *netns.Namespace, t bareTunnel) string {
	b.Helper()
	type end struct {
		ns     *netns.Namespace
		key    key.NodePrivate
		veth   string
		tunnel string
	}
	ends := []*end{
		{ns: nsA, key: key.NewNode(), veth: vethA, tunnel: t.subnet + ".1"},
		{ns: nsB, key: key.NewNode(), veth: vethB, tunnel: t.subnet + ".2"},
	}
	dir := b.TempDir()
	for i, e := range ends {
		peer := ends[1-i]
		sock := filepath.Join(dir, fmt.Sprintf("%s-%d.sock", t.dev, i))
		p := e.ns.Start(bin, "wg", "-tun", t.dev, "-uapi", sock, "-mtu", fmt.Sprint(t.mtu))
		if _, err := p.WaitFor("ready", 10*time.Second); err != nil {
			b.Fatal(err)
		}
		priv, pub := e.key.Raw(), peer.key.Public().Raw()
		cfg := fmt.Sprintf("private_key=%s\nlisten_port=%d\nreplace_peers=true\npublic_key=%s\nendpoint=%s:%d\nallowed_ip=%s/32\n",
			hex.EncodeToString(priv[:]), t.port, hex.EncodeToString(pub[:]), peer.veth, t.port, peer.tunnel)
		if err := uapiSet(sock, cfg); err != nil {
			b.Fatalf("configure %s in %s: %v", t.dev, e.ns.Name, err)
		}
		e.ns.AddAddr(t.dev, e.tunnel+"/24")
		e.ns.Run("ip", "link", "set", t.dev, "up")
	}
	return ends[1].tunnel
}

// uapiSet applies cfg (UAPI set lines) to the wireguard-go device serving
// the UAPI socket at sock.
func uapiSet(sock, cfg string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "set=1\n%s\n", cfg); err != nil {
		return err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() && sc.Text() != "" {
		if v, ok := strings.CutPrefix(sc.Text(), "errno="); ok {
			if v != "0" {
				return fmt.Errorf("UAPI set failed: errno %s", v)
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("UAPI set: no errno in the answer")
}
