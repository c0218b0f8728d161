package netstack

import (
	"os"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// linkEndpoint is the stack's only NIC: what the stack sends is queued for
// WireGuard to drain in batches (read), and what WireGuard decrypted is
// injected into the stack (inject).
//
// Outbound packets are held by reference until read copies them straight
// into WireGuard's buffers (cutting large TCP segments into MTU-sized
// packets on the way, segment.go): one copy, no intermediate view. The queue is
// bounded, and a full queue pushes back: WritePackets waits for the reader
// to make room, as a kernel's full device queue stops its senders. Dropping
// instead would turn every burst WireGuard cannot absorb at once into TCP
// loss, recovered by retransmission timeouts of at least 200 ms (measured:
// throughput fell from ~100 to under 20 MB/s with a few dozen drops). The
// wait is bounded by WireGuard's reader, which never stops while the device
// is open and needs none of the stack's locks; Close ends it.
type linkEndpoint struct {
	mtu atomic.Uint32

	mu         sync.Mutex
	ready      sync.Cond // signalled when packets are queued or the endpoint closes
	space      sync.Cond // signalled when read makes room or the endpoint closes
	waiting    bool      // a reader waits on ready
	blocked    int       // writers waiting on space
	dispatcher stack.NetworkDispatcher
	ring       []*stack.PacketBuffer // outbound queue, ring[head] is the oldest
	head, n    int
	closed     bool

	// The reader's state, guarded by readMu: packets taken from the ring,
	// pending[next] being emitted from its packet number seg on.
	readMu    sync.Mutex
	pending   []*stack.PacketBuffer
	next, seg int

	gros sync.Pool // *gro.GRO, one per concurrent inject

	stalls    atomic.Uint64 // times a writer waited for room in the queue
	tooBig    atomic.Uint64 // outbound packets that did not fit WireGuard's buffer
	malformed atomic.Uint64 // inbound packets rejected before the stack
}

var (
	_ stack.LinkEndpoint = (*linkEndpoint)(nil)
	_ stack.GSOEndpoint  = (*linkEndpoint)(nil)
)

func newLinkEndpoint(mtu uint32, queueLen int) *linkEndpoint {
	e := &linkEndpoint{ring: make([]*stack.PacketBuffer, queueLen)}
	e.mtu.Store(mtu)
	e.ready.L = &e.mu
	e.space.L = &e.mu
	e.gros.New = func() any {
		g := new(gro.GRO)
		g.Init(true)
		return g
	}
	return e
}

// WritePackets implements stack.LinkWriter: it queues packets for read,
// waiting for room when the queue is full.
func (e *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	e.mu.Lock()
	queued := 0
	for _, pkt := range pkts.AsSlice() {
		for e.n == len(e.ring) && !e.closed {
			e.stalls.Add(1)
			e.wakeReaderLocked()
			e.blocked++
			e.space.Wait()
			e.blocked--
		}
		if e.closed {
			break
		}
		e.ring[(e.head+e.n)%len(e.ring)] = pkt.IncRef()
		e.n++
		queued++
	}
	e.wakeReaderLocked()
	e.mu.Unlock()
	if queued == 0 {
		return 0, &tcpip.ErrClosedForSend{}
	}
	return queued, nil
}

// wakeReaderLocked wakes a reader waiting for packets, if there are some.
func (e *linkEndpoint) wakeReaderLocked() {
	if e.waiting && e.n > 0 {
		e.waiting = false
		e.ready.Signal()
	}
}

// read blocks until at least one packet is queued, then writes every
// queued packet, up to len(bufs), into bufs[i][offset:], cutting TCP
// segments larger than the MTU into several packets (segment.go). A
// segment that does not fit in the rest of bufs is continued by the next
// read. It returns os.ErrClosed once the endpoint is closed.
func (e *linkEndpoint) read(bufs [][]byte, sizes []int, offset int) (int, error) {
	e.readMu.Lock()
	defer e.readMu.Unlock()
	n := 0
	for n < len(bufs) {
		if e.next == len(e.pending) {
			if err := e.take(len(bufs)-n, n == 0); err != nil {
				if n > 0 {
					break // the next read reports it
				}
				e.releasePending()
				return 0, err
			}
			if e.next == len(e.pending) {
				break // nothing more queued
			}
		}
		pkt := e.pending[e.next]
		segs := segmentCount(pkt)
		for ; e.seg < segs && n < len(bufs); e.seg++ {
			if size := writeSegment(bufs[n][offset:], pkt, e.seg); size >= 0 {
				sizes[n] = size
				n++
			} else {
				e.tooBig.Add(1)
			}
		}
		if e.seg == segs {
			pkt.DecRef()
			e.pending[e.next] = nil
			e.next++
			e.seg = 0
		}
	}
	return n, nil
}

// take refills e.pending with up to max packets from the ring, waiting for
// the first if block is set. The caller holds readMu and has emitted all of
// e.pending; the references move to it.
func (e *linkEndpoint) take(max int, block bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.n == 0 {
		if e.closed {
			return os.ErrClosed
		}
		if !block {
			return nil
		}
		e.waiting = true
		e.ready.Wait()
	}
	e.waiting = false
	k := min(max, e.n)
	out := e.pending[:0]
	for range k {
		out = append(out, e.ring[e.head])
		e.ring[e.head] = nil
		e.head = (e.head + 1) % len(e.ring)
	}
	e.n -= k
	e.pending, e.next, e.seg = out, 0, 0
	if e.blocked > 0 {
		e.space.Broadcast()
	}
	return nil
}

// releasePending drops the packets read has taken but not emitted. The
// caller holds readMu.
func (e *linkEndpoint) releasePending() {
	for i := e.next; i < len(e.pending); i++ {
		e.pending[i].DecRef()
	}
	clear(e.pending)
	e.pending, e.next, e.seg = e.pending[:0], 0, 0
}

// copyPacket copies the whole of pkt (headers and payload) into dst and
// returns its size, or -1 if it does not fit.
func copyPacket(dst []byte, pkt *stack.PacketBuffer) int {
	size := pkt.Size()
	if size > len(dst) {
		return -1
	}
	views, off := pkt.AsViewList()
	copyRange(dst[:size], views, off)
	return size
}

// inject hands packets from WireGuard to the stack. Each is copied once into
// a pooled gVisor chunk (the stack keeps segments after this returns, and
// WireGuard reuses its buffers). TCP segments of one flow arriving in the
// same batch are coalesced by gVisor's GRO, so the stack processes one large
// segment instead of many small ones. Packets that are not IPv4 or IPv6, or
// are shorter than their fixed header, are dropped and counted; everything
// else is validated by the stack itself.
func (e *linkEndpoint) inject(bufs [][]byte, offset int) {
	e.mu.Lock()
	d := e.dispatcher
	e.mu.Unlock()
	if d == nil {
		return
	}
	g := e.gros.Get().(*gro.GRO)
	g.Dispatcher = d
	for _, b := range bufs {
		if offset > len(b) {
			e.malformed.Add(1)
			continue
		}
		p := b[offset:]
		proto, ok := networkProtocol(p)
		if !ok {
			e.malformed.Add(1)
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		pkt.NetworkProtocolNumber = proto
		pkt.RXChecksumValidated = true // see Capabilities
		g.Enqueue(pkt)
		pkt.DecRef()
	}
	flushGRO(g)
	g.Dispatcher = nil
	e.gros.Put(g)
}

// groBucketSize is how many packets gVisor's GRO holds per bucket (its
// unexported groBucketSize).
const groBucketSize = 8

// flushGRO delivers every packet g holds. gVisor's GRO.Flush (this
// version) delivers only the oldest packet of each bucket: it walks the
// bucket's list with Next() after removing the element, which clears the
// link. Each call empties at least one slot of every bucket, so
// groBucketSize calls empty them all; calls on empty buckets cost a nil
// check each.
func flushGRO(g *gro.GRO) {
	for range groBucketSize {
		g.Flush()
	}
}

// networkProtocol reads the IP version of p and checks that p holds at
// least that version's fixed header.
func networkProtocol(p []byte) (tcpip.NetworkProtocolNumber, bool) {
	if len(p) == 0 {
		return 0, false
	}
	switch header.IPVersion(p) {
	case header.IPv4Version:
		return header.IPv4ProtocolNumber, len(p) >= header.IPv4MinimumSize
	case header.IPv6Version:
		return header.IPv6ProtocolNumber, len(p) >= header.IPv6MinimumSize
	}
	return 0, false
}

// close drops queued packets and wakes the reader, which then returns
// os.ErrClosed, and any waiting writers. Further writes fail.
func (e *linkEndpoint) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	for e.n > 0 {
		e.ring[e.head].DecRef()
		e.ring[e.head] = nil
		e.head = (e.head + 1) % len(e.ring)
		e.n--
	}
	e.ready.Broadcast()
	e.space.Broadcast()
}

// MTU implements stack.LinkEndpoint.
func (e *linkEndpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint.
func (e *linkEndpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint: packets are bare IP.
func (*linkEndpoint) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.LinkEndpoint: there is no link address.
func (*linkEndpoint) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.LinkEndpoint.
func (*linkEndpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint. Checksums are computed on
// send (the peer may be a kernel stack that checks them) but not verified
// on receive: gVisor's GRO only works when the link claims RX checksum
// offload (the NIC overwrites the packet's validated flag from this), and
// verifying is redundant behind WireGuard, whose AEAD guarantees a packet
// is exactly what the authenticated peer sent. A wrong checksum can only
// come from the peer's own stack, and accepting it gives the peer nothing
// it could not send with a right one.
func (*linkEndpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

// Attach implements stack.LinkEndpoint.
func (e *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dispatcher = d
}

// IsAttached implements stack.LinkEndpoint.
func (e *linkEndpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint: the endpoint starts no goroutines.
func (*linkEndpoint) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (*linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.LinkEndpoint: there is no link header.
func (*linkEndpoint) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.LinkEndpoint.
func (*linkEndpoint) ParseHeader(*stack.PacketBuffer) bool { return true }

// Close implements stack.LinkEndpoint; the stack calls it when the NIC is
// removed.
func (e *linkEndpoint) Close() { e.close() }

// SetOnCloseAction implements stack.LinkEndpoint.
func (*linkEndpoint) SetOnCloseAction(func()) {}

// GSOMaxSize implements stack.GSOEndpoint: how large a TCP segment the
// stack may hand to WritePackets for read to cut (see segment.go).
func (*linkEndpoint) GSOMaxSize() uint32 { return gsoMaxSize }

// SupportedGSO implements stack.GSOEndpoint: "host" GSO, which here means
// this endpoint's own segmentation in read (segment.go).
func (*linkEndpoint) SupportedGSO() stack.SupportedGSO { return stack.HostGSOSupported }
