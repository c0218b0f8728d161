// Package proxyproto writes and reads PROXY protocol version 2 headers
// (the binary form of HAProxy's PROXY protocol), which a TCP forwarder
// sends first on a connection so the service behind it learns the real
// client address instead of the forwarder's.
//
// It supports the PROXY and LOCAL commands, TCP over IPv4 and IPv6, and
// TLVs. ReadV2 reads at most the 16-byte fixed part plus the length that
// part announces (at most 65535 bytes), checks every field and TLV
// length, and returns an error, never panics, on malformed input.
//
// Warren's identity TLV: Warren's --expose PORT=HOST:PORT,proxy-protocol
// adds one TLV of type TypeWarrenIdentity (0xE0, in the range the
// specification leaves to applications, PP2_TYPE_MIN_CUSTOM 0xE0 to
// PP2_TYPE_MAX_CUSTOM 0xEF) whose value is a JSON object:
//
//	{"user":"ann@example.com","userName":"Ann Example","node":"ann-laptop","tags":["tag:ci"]}
//
// "user" and "userName" are the owner's login and display name (absent
// for a tagged node), "node" the connecting node's name, "tags" its tags
// (absent for a user's node). See Identity.
//
// The package must never trust a header on its own: only a service that
// accepts connections from a forwarder it trusts (Warren's node on the
// same host) may believe the addresses and identity it carries.
package proxyproto

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// signature starts every version 2 header.
var signature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

const (
	fixedLen = 16 // signature, version and command, family and protocol, length

	cmdLocal = 0x20 // version 2, LOCAL
	cmdProxy = 0x21 // version 2, PROXY

	famUnspec = 0x00
	famTCP4   = 0x11 // AF_INET, STREAM
	famTCP6   = 0x21 // AF_INET6, STREAM

	addrLen4 = 12 // two IPv4 addresses, two ports
	addrLen6 = 36 // two IPv6 addresses, two ports
)

// TypeWarrenIdentity is the TLV type of Warren's identity TLV (see the
// package doc and Identity).
const TypeWarrenIdentity byte = 0xE0

// ErrNoHeader is returned (wrapped) by ReadV2 when the connection does not
// start with the version 2 signature.
var ErrNoHeader = errors.New("proxyproto: no PROXY v2 signature")

// TLV is one type-length-value field after the addresses.
type TLV struct {
	Type  byte
	Value []byte
}

// Header is a PROXY v2 header.
type Header struct {
	// Local is the LOCAL command (a connection the forwarder made for
	// itself, e.g. a health check): Src and Dst are then absent.
	Local bool
	// Src is the client's address and port, Dst the address and port it
	// connected to; both IPv4 or both IPv6.
	Src, Dst netip.AddrPort
	TLVs     []TLV
}

// AppendV2 appends h, encoded, to b. A PROXY header needs Src and Dst of
// the same family (IPv4-mapped IPv6 addresses count as IPv4); the TLVs
// must fit in the 16-bit length.
func AppendV2(b []byte, h Header) ([]byte, error) {
	cmd, fam, alen := byte(cmdLocal), byte(famUnspec), 0
	src, dst := netip.AddrPortFrom(h.Src.Addr().Unmap(), h.Src.Port()), netip.AddrPortFrom(h.Dst.Addr().Unmap(), h.Dst.Port())
	if !h.Local {
		cmd = cmdProxy
		switch {
		case !src.Addr().IsValid() || !dst.Addr().IsValid():
			return b, errors.New("proxyproto: a PROXY header needs both addresses")
		case src.Addr().Is4() && dst.Addr().Is4():
			fam, alen = famTCP4, addrLen4
		case src.Addr().Is6() && dst.Addr().Is6():
			fam, alen = famTCP6, addrLen6
		default:
			return b, fmt.Errorf("proxyproto: addresses %s and %s are of different families", src, dst)
		}
	}
	n := alen
	for _, t := range h.TLVs {
		if len(t.Value) > 0xFFFF {
			return b, fmt.Errorf("proxyproto: TLV 0x%02x value of %d bytes is over 65535", t.Type, len(t.Value))
		}
		n += 3 + len(t.Value)
	}
	if n > 0xFFFF {
		return b, fmt.Errorf("proxyproto: header of %d bytes after the fixed part is over 65535", n)
	}
	b = append(b, signature[:]...)
	b = append(b, cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	if alen > 0 {
		s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
		b = append(b, s...)
		b = append(b, d...)
		b = binary.BigEndian.AppendUint16(b, src.Port())
		b = binary.BigEndian.AppendUint16(b, dst.Port())
	}
	for _, t := range h.TLVs {
		b = append(b, t.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b, nil
}

// WriteV2 writes h to w in one Write.
func WriteV2(w io.Writer, h Header) error {
	b, err := AppendV2(nil, h)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadV2 reads one version 2 header from r, leaving what follows it in r.
// Without the signature it returns ErrNoHeader and consumes nothing that
// differs from the signature (only matching bytes it had to peek at).
// Families other than TCP over IPv4 and IPv6 are refused for PROXY; for
// LOCAL the address block, whatever it holds, is skipped.
func ReadV2(r *bufio.Reader) (Header, error) {
	for i := range signature {
		p, err := r.Peek(i + 1)
		if err != nil {
			if errors.Is(err, io.EOF) && i > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, fmt.Errorf("proxyproto: read signature: %w", err)
		}
		if p[i] != signature[i] {
			return Header{}, ErrNoHeader
		}
	}
	var fixed [fixedLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: read header: %w", eofIsUnexpected(err))
	}
	verCmd, fam := fixed[12], fixed[13]
	n := int(binary.BigEndian.Uint16(fixed[14:]))
	if verCmd>>4 != 2 {
		return Header{}, fmt.Errorf("proxyproto: version %d, want 2", verCmd>>4)
	}
	var h Header
	switch verCmd & 0x0F {
	case 0:
		h.Local = true
	case 1:
	default:
		return Header{}, fmt.Errorf("proxyproto: unknown command %d", verCmd&0x0F)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return Header{}, fmt.Errorf("proxyproto: read %d bytes of addresses and TLVs: %w", n, eofIsUnexpected(err))
	}
	alen := 0
	switch fam {
	case famTCP4:
		alen = addrLen4
	case famTCP6:
		alen = addrLen6
	case famUnspec:
		if !h.Local {
			return Header{}, errors.New("proxyproto: a PROXY header with no address family (0x00)")
		}
	default:
		if !h.Local {
			return Header{}, fmt.Errorf("proxyproto: family and protocol 0x%02x: only TCP over IPv4 (0x11) and IPv6 (0x21) are supported", fam)
		}
		// The receiver ignores a LOCAL header's addresses; this
		// family's block has no length known here, so neither the TLVs.
		return h, nil
	}
	if n < alen {
		return Header{}, fmt.Errorf("proxyproto: %d bytes after the fixed part, too short for the addresses (%d)", n, alen)
	}
	if !h.Local {
		a := body[:alen]
		half := (alen - 4) / 2
		src, _ := netip.AddrFromSlice(a[:half])
		dst, _ := netip.AddrFromSlice(a[half : 2*half])
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(a[2*half:]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(a[2*half+2:]))
	}
	tlvs, err := parseTLVs(body[alen:])
	if err != nil {
		return Header{}, err
	}
	h.TLVs = tlvs
	return h, nil
}

func parseTLVs(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		if len(b) < 3 {
			return nil, fmt.Errorf("proxyproto: %d stray bytes after the last TLV", len(b))
		}
		l := int(binary.BigEndian.Uint16(b[1:3]))
		if len(b)-3 < l {
			return nil, fmt.Errorf("proxyproto: TLV 0x%02x announces %d bytes, %d left", b[0], l, len(b)-3)
		}
		out = append(out, TLV{Type: b[0], Value: b[3 : 3+l : 3+l]})
		b = b[3+l:]
	}
	return out, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// TLV returns the value of the first TLV of type t.
func (h Header) TLV(t byte) ([]byte, bool) {
	for _, v := range h.TLVs {
		if v.Type == t {
			return v.Value, true
		}
	}
	return nil, false
}

// Identity is the value of Warren's identity TLV: who is behind the
// connection, as the forwarding node's netmap says.
type Identity struct {
	// User is the owner's login and UserName the display name; both
	// empty for a tagged node.
	User     string `json:"user,omitempty"`
	UserName string `json:"userName,omitempty"`
	// Node is the connecting node's name.
	Node string `json:"node"`
	// Tags are the node's tags; empty for a user's node.
	Tags []string `json:"tags,omitempty"`
}

// maxIdentity bounds an identity TLV a reader accepts.
const maxIdentity = 8 << 10

// IdentityTLV encodes id as Warren's identity TLV.
func IdentityTLV(id Identity) (TLV, error) {
	v, err := json.Marshal(id)
	if err != nil {
		return TLV{}, fmt.Errorf("proxyproto: encode identity: %w", err)
	}
	if len(v) > maxIdentity {
		return TLV{}, fmt.Errorf("proxyproto: identity of %d bytes is over %d", len(v), maxIdentity)
	}
	return TLV{Type: TypeWarrenIdentity, Value: v}, nil
}

// Identity decodes h's Warren identity TLV; ok is false when it has none.
func (h Header) Identity() (id Identity, ok bool, err error) {
	v, ok := h.TLV(TypeWarrenIdentity)
	if !ok {
		return Identity{}, false, nil
	}
	if len(v) > maxIdentity {
		return Identity{}, true, fmt.Errorf("proxyproto: identity TLV of %d bytes is over %d", len(v), maxIdentity)
	}
	if err := json.Unmarshal(v, &id); err != nil {
		return Identity{}, true, fmt.Errorf("proxyproto: identity TLV: %w", err)
	}
	return id, true, nil
}
