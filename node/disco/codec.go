package disco

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/warrenmesh/warren/internal/key"
)

// Encoding of a message (the plaintext inside the box):
//
//	type (1) || version (1) || body
//
//	Ping        (type 1): TxID (12) || sender node key (32)            = 44 bytes
//	Pong        (type 2): TxID (12) || Src address (18)                = 30 bytes
//	CallMeMaybe (type 3): count (1, <= MaxEndpoints) || count × address (18)
//
// An address is 16 bytes of IPv6 (IPv4 as IPv4-mapped IPv6) and a 2-byte
// big-endian port. Decoding unmaps IPv4-mapped addresses and drops zones;
// 16 zero bytes stand for "no address" (an invalid netip.Addr).
//
// Versions: a message of our Version must have exactly the length above. A
// message of a higher version decodes if its body holds at least the fields
// this version knows; the extra trailing bytes are ignored, so newer nodes
// may only ever append fields. Version 0 and unknown types are errors.

// Version is the version byte this package writes.
const Version = 1

// MaxEndpoints is the most endpoints a CallMeMaybe carries.
const MaxEndpoints = 32

// Message types on the wire.
const (
	typePing        = 1
	typePong        = 2
	typeCallMeMaybe = 3
)

const (
	txLen   = 12
	addrLen = 18
	msgHead = 2 // type, version

	pingBody = txLen + keyLen
	pongBody = txLen + addrLen
)

// isNil reports whether m is nil or a nil pointer.
func isNil(m Message) bool {
	switch m := m.(type) {
	case *Ping:
		return m == nil
	case *Pong:
		return m == nil
	case *CallMeMaybe:
		return m == nil
	}
	return true
}

// encodedLen is the length encode(m) returns.
func encodedLen(m Message) int {
	switch m := m.(type) {
	case *Ping:
		return msgHead + pingBody
	case *Pong:
		return msgHead + pongBody
	case *CallMeMaybe:
		return msgHead + 1 + addrLen*min(len(m.Endpoints), MaxEndpoints)
	}
	panic(fmt.Sprintf("disco: unknown message type %T", m))
}

// encode returns the plaintext encoding of m. CallMeMaybe endpoints beyond
// MaxEndpoints are dropped.
func encode(m Message) []byte {
	b := make([]byte, 0, encodedLen(m))
	switch m := m.(type) {
	case *Ping:
		raw := m.NodeKey.Raw()
		b = append(b, typePing, Version)
		b = append(b, m.TxID[:]...)
		b = append(b, raw[:]...)
	case *Pong:
		b = append(b, typePong, Version)
		b = append(b, m.TxID[:]...)
		b = appendAddr(b, m.Src)
	case *CallMeMaybe:
		eps := m.Endpoints[:min(len(m.Endpoints), MaxEndpoints)]
		b = append(b, typeCallMeMaybe, Version, byte(len(eps)))
		for _, ep := range eps {
			b = appendAddr(b, ep)
		}
	}
	return b
}

func appendAddr(b []byte, ap netip.AddrPort) []byte {
	var ip [16]byte
	if ap.Addr().IsValid() {
		ip = ap.Addr().As16()
	}
	b = append(b, ip[:]...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

func readAddr(b []byte) netip.AddrPort {
	ip := [16]byte(b[:16])
	port := binary.BigEndian.Uint16(b[16:addrLen])
	var addr netip.Addr
	if ip != [16]byte{} {
		addr = netip.AddrFrom16(ip).Unmap()
	}
	return netip.AddrPortFrom(addr, port)
}

// malformed wraps ErrMalformed with a reason.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// decode parses a plaintext message. Errors wrap ErrMalformed.
func decode(b []byte) (Message, error) {
	if len(b) < msgHead {
		return nil, malformed("%d bytes, shorter than the %d-byte type and version", len(b), msgHead)
	}
	typ, ver, body := b[0], b[1], b[msgHead:]
	if ver == 0 {
		return nil, malformed("version 0 is not valid (want %d)", Version)
	}
	// check enforces the body length: exact for our version, at least for
	// newer ones (which may append fields).
	check := func(name string, want int) error {
		switch {
		case len(body) < want:
			return malformed("%s body is %d bytes, too short (want %d)", name, len(body), want)
		case len(body) > want && ver <= Version:
			return malformed("%s body is %d bytes, too long (want %d)", name, len(body), want)
		}
		return nil
	}
	switch typ {
	case typePing:
		if err := check("ping", pingBody); err != nil {
			return nil, err
		}
		m := &Ping{TxID: [txLen]byte(body)}
		m.NodeKey = key.PublicFromRaw[key.NodeKind]([keyLen]byte(body[txLen:]))
		return m, nil
	case typePong:
		if err := check("pong", pongBody); err != nil {
			return nil, err
		}
		return &Pong{TxID: [txLen]byte(body), Src: readAddr(body[txLen:])}, nil
	case typeCallMeMaybe:
		if len(body) < 1 {
			return nil, malformed("call-me-maybe body is empty, want an endpoint count")
		}
		n := int(body[0])
		if n > MaxEndpoints {
			return nil, malformed("call-me-maybe has %d endpoints, more than %d", n, MaxEndpoints)
		}
		if err := check("call-me-maybe", 1+n*addrLen); err != nil {
			return nil, err
		}
		m := &CallMeMaybe{}
		if n > 0 {
			m.Endpoints = make([]netip.AddrPort, n)
		}
		for i := range n {
			m.Endpoints[i] = readAddr(body[1+i*addrLen:])
		}
		return m, nil
	}
	return nil, malformed("unknown message type %d", typ)
}
