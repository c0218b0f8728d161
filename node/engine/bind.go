package engine

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
)

var errNoPath = errors.New("engine: no path to peer (it has no endpoints)")

// Bind is Warren's conn.Bind: WireGuard addresses peers by node key, and
// the Bind chooses the network path for each. Today that path is direct
// UDP to the peer's endpoints from the netmap (sent to all of them until a
// packet from one arrives, then to that one); the relay work adds DERP and
// hole punching behind the same interface. UDP I/O itself is wireguard-go's
// StdNetBind (batched, GSO where the kernel has it).
//
// The packet paths read immutable snapshots through atomic pointers and
// take no lock.
type Bind struct {
	udp conn.Bind

	mu     sync.Mutex                                       // serialises writers of the snapshots
	peers  atomic.Pointer[map[key.NodePublic]*peerPath]     // node key -> path
	byAddr atomic.Pointer[map[netip.AddrPort]*PeerEndpoint] // UDP address -> peer, for receive
}

// peerPath is what the Bind knows of the way to one peer.
type peerPath struct {
	ep        *PeerEndpoint
	cands     []candidate               // immutable once stored
	confirmed atomic.Pointer[candidate] // the candidate a packet came from
}

// candidate is one endpoint of a peer.
type candidate struct {
	addr netip.AddrPort
	ep   conn.Endpoint // parsed by the UDP bind
}

// NewBind returns a Bind over a fresh UDP bind.
func NewBind() *Bind {
	b := &Bind{udp: conn.NewStdNetBind()}
	b.peers.Store(&map[key.NodePublic]*peerPath{})
	b.byAddr.Store(&map[netip.AddrPort]*PeerEndpoint{})
	return b
}

// PeerEndpoint is the conn.Endpoint WireGuard holds for a peer: the peer's
// node key, never an address, so the path can change under it.
type PeerEndpoint struct {
	Key  key.NodePublic
	bind *Bind
}

// ClearSrc implements conn.Endpoint.
func (e *PeerEndpoint) ClearSrc() {}

// SrcToString implements conn.Endpoint.
func (e *PeerEndpoint) SrcToString() string { return "" }

// DstToString implements conn.Endpoint: the node key.
func (e *PeerEndpoint) DstToString() string { return e.Key.String() }

// DstToBytes implements conn.Endpoint (input to WireGuard's cookie MAC).
func (e *PeerEndpoint) DstToBytes() []byte { k := e.Key.Raw(); return k[:] }

// DstIP implements conn.Endpoint: the confirmed address's IP, if any (used
// by WireGuard's handshake rate limiter).
func (e *PeerEndpoint) DstIP() netip.Addr {
	if p := e.bind.path(e.Key); p != nil {
		if c := p.confirmed.Load(); c != nil {
			return c.addr.Addr()
		}
	}
	return netip.Addr{}
}

// SrcIP implements conn.Endpoint.
func (e *PeerEndpoint) SrcIP() netip.Addr { return netip.Addr{} }

func (b *Bind) path(k key.NodePublic) *peerPath { return (*b.peers.Load())[k] }

// SetPeer records a peer's candidate endpoints and returns the endpoint
// string to give WireGuard for it.
func (b *Bind) SetPeer(k key.NodePublic, endpoints []netip.AddrPort) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.path(k)
	p := &peerPath{ep: &PeerEndpoint{Key: k, bind: b}}
	if old != nil {
		p.ep = old.ep
	}
	for _, a := range endpoints {
		if ep, err := b.udp.ParseEndpoint(a.String()); err == nil {
			p.cands = append(p.cands, candidate{addr: a, ep: ep})
		}
	}
	if old != nil {
		if c := old.confirmed.Load(); c != nil {
			for i := range p.cands {
				if p.cands[i].addr == c.addr {
					p.confirmed.Store(&p.cands[i])
				}
			}
		}
	}
	b.update(func(m map[key.NodePublic]*peerPath) { m[k] = p })
	return k.String()
}

// RemovePeer forgets a peer.
func (b *Bind) RemovePeer(k key.NodePublic) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.update(func(m map[key.NodePublic]*peerPath) { delete(m, k) })
}

// update copies the peer map, applies fn and republishes both snapshots.
// Callers hold b.mu.
func (b *Bind) update(fn func(map[key.NodePublic]*peerPath)) {
	old := *b.peers.Load()
	peers := make(map[key.NodePublic]*peerPath, len(old)+1)
	for k, v := range old {
		peers[k] = v
	}
	fn(peers)
	byAddr := make(map[netip.AddrPort]*PeerEndpoint)
	for _, p := range peers {
		for _, c := range p.cands {
			byAddr[c.addr] = p.ep
		}
	}
	b.peers.Store(&peers)
	b.byAddr.Store(&byAddr)
}

// Path describes how traffic to a peer travels now, for status output.
func (b *Bind) Path(k key.NodePublic) string {
	p := b.path(k)
	switch {
	case p == nil || len(p.cands) == 0:
		return "none"
	case p.confirmed.Load() != nil:
		return "direct " + p.confirmed.Load().addr.String()
	}
	return "direct (unconfirmed)"
}

// Open implements conn.Bind: it opens the UDP socket and wraps its receive
// functions so that packets from a known peer address carry that peer's
// endpoint, and confirm that address as the path to the peer.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.udp.Open(port)
	if err != nil {
		return nil, 0, err
	}
	wrapped := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		wrapped[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(packets, sizes, eps)
			idx := *b.byAddr.Load()
			for j := 0; j < n; j++ {
				std, ok := eps[j].(*conn.StdNetEndpoint)
				if !ok {
					continue
				}
				if pe := idx[std.AddrPort]; pe != nil {
					b.confirm(pe.Key, std.AddrPort)
					eps[j] = pe
				}
			}
			return n, err
		}
	}
	return wrapped, actual, nil
}

// confirm records that a packet came from addr, an endpoint of peer k.
// WireGuard authenticates the packet afterwards; a forged source can at
// worst point our ciphertext at the wrong address until the next packet.
func (b *Bind) confirm(k key.NodePublic, addr netip.AddrPort) {
	p := b.path(k)
	if p == nil {
		return
	}
	if c := p.confirmed.Load(); c != nil && c.addr == addr {
		return
	}
	for i := range p.cands {
		if p.cands[i].addr == addr {
			p.confirmed.Store(&p.cands[i])
			return
		}
	}
}

// Close implements conn.Bind.
func (b *Bind) Close() error { return b.udp.Close() }

// SetMark implements conn.Bind.
func (b *Bind) SetMark(mark uint32) error { return b.udp.SetMark(mark) }

// BatchSize implements conn.Bind.
func (b *Bind) BatchSize() int { return b.udp.BatchSize() }

// ParseEndpoint implements conn.Bind: s is a node key ("nodekey:…"), or a
// plain ip:port (a peer that roamed to an address not in the netmap).
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	if k, err := key.ParsePublic[key.NodeKind](s); err == nil {
		if p := b.path(k); p != nil {
			return p.ep, nil
		}
		return &PeerEndpoint{Key: k, bind: b}, nil
	}
	return b.udp.ParseEndpoint(s)
}

// Send implements conn.Bind: to the confirmed address when there is one,
// else to every candidate endpoint.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	pe, ok := ep.(*PeerEndpoint)
	if !ok {
		return b.udp.Send(bufs, ep)
	}
	p := b.path(pe.Key)
	if p == nil || len(p.cands) == 0 {
		return errNoPath
	}
	if c := p.confirmed.Load(); c != nil {
		return b.udp.Send(bufs, c.ep)
	}
	var firstErr error
	for _, c := range p.cands {
		if err := b.udp.Send(bufs, c.ep); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}
