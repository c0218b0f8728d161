package magic

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/disco"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every poll in these tests; conditions normally hold within
// milliseconds.
const wait = 10 * time.Second

// maxMessage is the buffer size wireguard-go hands its receive functions
// (device.MaxMessageSize).
const maxMessage = 1<<16 - 1

// delivered is a packet a receive function handed to WireGuard.
type delivered struct {
	data []byte
	ep   conn.Endpoint
}

// node is a Conn with its bind open and its receive functions running, as
// a WireGuard device would run them.
type node struct {
	t     *testing.T
	c     *Conn
	nodeK key.NodePrivate
	disco key.DiscoPrivate
	port  uint16

	mu  sync.Mutex
	got []delivered // what the receive functions gave WireGuard
	new chan struct{}

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// startNode creates a Conn with fresh keys (cfg's keys are replaced),
// opens its bind on a free port and runs its receive functions until the
// test ends or close is called.
func startNode(t *testing.T, cfg Config) *node {
	t.Helper()
	n := &node{t: t, nodeK: key.NewNode(), disco: key.NewDisco(), new: make(chan struct{}, 1)}
	cfg.NodeKey, cfg.DiscoKey = n.nodeK, n.disco
	if cfg.HTTPClient == nil {
		tr := &http.Transport{}
		cfg.HTTPClient = &http.Client{Transport: tr, Timeout: 5 * time.Second}
		t.Cleanup(tr.CloseIdleConnections) // runs after close: no idle connection outlives the test
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	fns, port, err := c.Bind().Open(0)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	n.port = port
	batch := c.Bind().BatchSize()
	for _, fn := range fns {
		n.wg.Add(1)
		go n.receive(fn, batch)
	}
	t.Cleanup(n.close)
	return n
}

// receive calls fn the way wireguard-go's receive loop does, recording
// every packet with a non-zero size, until the bind closes.
func (n *node) receive(fn conn.ReceiveFunc, batch int) {
	defer n.wg.Done()
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, maxMessage)
	}
	sizes := make([]int, batch)
	eps := make([]conn.Endpoint, batch)
	for {
		count, err := fn(bufs, sizes, eps)
		for i := range count {
			if sizes[i] == 0 {
				continue
			}
			n.mu.Lock()
			n.got = append(n.got, delivered{data: slices.Clone(bufs[i][:sizes[i]]), ep: eps[i]})
			n.mu.Unlock()
			select {
			case n.new <- struct{}{}:
			default:
			}
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				n.t.Errorf("receive: %v", err)
			}
			return
		}
	}
}

// close closes the bind (ending the receive functions) and then the Conn,
// in the order a WireGuard device and its owner would.
func (n *node) close() {
	n.closeOnce.Do(func() {
		if err := n.c.Bind().Close(); err != nil {
			n.t.Errorf("close bind: %v", err)
		}
		n.wg.Wait()
		n.c.Close()
	})
}

// addr is the node's UDP address on IPv4 loopback.
func (n *node) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.port)
}

// packets returns a copy of what WireGuard was given so far.
func (n *node) packets() []delivered {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.got)
}

// waitPacket waits until WireGuard has been given a packet satisfying ok.
func (n *node) waitPacket(ok func(delivered) bool) delivered {
	n.t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		for _, d := range n.packets() {
			if ok(d) {
				return d
			}
		}
		select {
		case <-n.new:
		case <-deadline.C:
			n.t.Fatalf("no matching packet reached WireGuard within %v (got %d others)", wait, len(n.packets()))
		}
	}
}

// asPeer is the netmap entry describing n to another node.
func (n *node) asPeer(home int, endpoints ...netip.AddrPort) wire.Node {
	return wire.Node{NodeKey: n.nodeK.Public(), DiscoKey: n.disco.Public(), HomeRelay: home, Endpoints: endpoints}
}

// endpoint returns the WireGuard endpoint for the peer with node key k,
// parsed the way wireguard-go parses a configured endpoint.
func (n *node) endpoint(k key.NodePublic) conn.Endpoint {
	n.t.Helper()
	ep, err := n.c.Bind().ParseEndpoint(k.String())
	if err != nil {
		n.t.Fatal(err)
	}
	return ep
}

// wgPacket returns a WireGuard-looking message of the given type (1..4),
// size bytes long, its tail filled with fill.
func wgPacket(typ byte, size int, fill byte) []byte {
	b := make([]byte, size)
	b[0] = typ
	for i := 4; i < size; i++ {
		b[i] = fill
	}
	return b
}

// udpSock is a plain UDP socket on loopback, standing in for another host.
type udpSock struct {
	t *testing.T
	*net.UDPConn
}

func listenUDP(t *testing.T) *udpSock {
	t.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	return &udpSock{t: t, UDPConn: uc}
}

func (s *udpSock) addr() netip.AddrPort {
	return s.LocalAddr().(*net.UDPAddr).AddrPort()
}

// send sends pkt to to; it may be called from any goroutine.
func (s *udpSock) send(to netip.AddrPort, pkt []byte) {
	if _, err := s.WriteToUDPAddrPort(pkt, to); err != nil {
		s.t.Errorf("send %d bytes to %v: %v", len(pkt), to, err)
	}
}

// waitDisco reads disco packets (opened with sk) until one satisfies ok.
// It may be called from any goroutine.
func (s *udpSock) waitDisco(sk disco.SharedKey, ok func(disco.Message) bool) (disco.Message, error) {
	buf := make([]byte, maxMessage)
	_ = s.SetReadDeadline(time.Now().Add(wait))
	for {
		nr, _, err := s.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, fmt.Errorf("waiting for a disco message on %v: %w", s.addr(), err)
		}
		if m, err := sk.Open(buf[:nr]); err == nil && ok(m) {
			return m, nil
		}
	}
}

// pongTo reports whether m is the pong for tx.
func pongTo(tx [12]byte) func(disco.Message) bool {
	return func(m disco.Message) bool {
		p, ok := m.(*disco.Pong)
		return ok && p.TxID == tx
	}
}

// queued returns the datagrams already waiting on s. (A read deadline
// already past fails without reading, so the deadline is a little ahead:
// a queued datagram is returned at once, an empty queue costs that much.)
func (s *udpSock) queued() [][]byte {
	s.t.Helper()
	var out [][]byte
	buf := make([]byte, maxMessage)
	for {
		_ = s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		nr, _, err := s.ReadFromUDPAddrPort(buf)
		if err != nil {
			return out
		}
		out = append(out, slices.Clone(buf[:nr]))
	}
}
