// Package stunserver answers STUN Binding requests, so that nodes learn
// the public address and port their NAT maps them to (endpoint discovery
// for hole punching). It runs beside each DERP relay on UDP 3478.
//
// It answers modern (RFC 8489/5389, with the magic cookie) and classic
// (RFC 3489) requests. It keeps no state, never answers anything but a
// well-formed Binding request, and never sends more than one small
// response per request, to a request's source address only. Requests
// asking for a response from another IP or port (CHANGE-REQUEST) are
// dropped: a server with a single address cannot honour them, and no
// answer is what RFC 3489 clients expect from such a server.
package stunserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v3"
)

// Software is the SOFTWARE attribute in modern responses.
const Software = "warren"

const (
	headerLen        = 20
	magicCookie      = 0x2112A442
	typeBindingReq   = 0x0001
	typeBindingResp  = 0x0101
	attrChangeReq    = 0x0003
	changeIPOrPort   = 0x06 // CHANGE-REQUEST flags "change IP" | "change port"
	maxRequestLen    = 1500
	readBufferLength = 2048
)

// Serve answers STUN Binding requests arriving on pc until ctx ends
// (then it returns nil) or pc fails or is closed (then it returns the
// error). It does not close pc.
func Serve(ctx context.Context, pc net.PacketConn, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	stop := context.AfterFunc(ctx, func() {
		_ = pc.SetReadDeadline(aLongTimeAgo)
	})
	defer stop()
	buf := make([]byte, readBufferLength)
	var dropped uint64
	for {
		n, addr, err := pc.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stun: read: %w", err)
		}
		src, ok := addrPort(addr)
		if !ok {
			continue
		}
		resp := Respond(buf[:n], src)
		if resp == nil {
			dropped++
			if dropped&(dropped-1) == 0 { // log the 1st, 2nd, 4th, 8th… only
				log.Debug("stun: dropped packets that are not Binding requests", "count", dropped, "last_from", src)
			}
			continue
		}
		if _, err := pc.WriteTo(resp, addr); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("stun: write: %w", err)
			}
			log.Debug("stun: cannot answer", "to", src, "err", err)
		}
	}
}

// aLongTimeAgo is a read deadline in the past: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort(), true
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap, err == nil
}

// Respond returns the response to the STUN request req received from src,
// or nil if req is not a well-formed Binding request this server answers.
// It is a pure function: no I/O, no state.
func Respond(req []byte, src netip.AddrPort) []byte {
	if len(req) < headerLen || len(req) > maxRequestLen || !src.IsValid() {
		return nil
	}
	typ := binary.BigEndian.Uint16(req[0:2])
	length := int(binary.BigEndian.Uint16(req[2:4]))
	if typ != typeBindingReq || length%4 != 0 || headerLen+length != len(req) {
		return nil
	}
	// Walk the attributes: they must tile the body exactly, and a
	// CHANGE-REQUEST for another IP or port means no answer.
	for body := req[headerLen:]; len(body) > 0; {
		if len(body) < 4 {
			return nil
		}
		at := binary.BigEndian.Uint16(body[0:2])
		al := int(binary.BigEndian.Uint16(body[2:4]))
		padded := (al + 3) &^ 3
		if 4+padded > len(body) {
			return nil
		}
		if at == attrChangeReq {
			if al != 4 || binary.BigEndian.Uint32(body[4:8])&changeIPOrPort != 0 {
				return nil
			}
		}
		body = body[4+padded:]
	}
	ip := net.IP(src.Addr().Unmap().AsSlice())
	port := int(src.Port())
	if binary.BigEndian.Uint32(req[4:8]) == magicCookie {
		return respondModern(req, ip, port)
	}
	return respondClassic(req, ip, port)
}

// respondModern answers an RFC 8489 request: XOR-MAPPED-ADDRESS, and
// MAPPED-ADDRESS for clients that only read that, SOFTWARE, FINGERPRINT.
func respondModern(req []byte, ip net.IP, port int) []byte {
	m := new(stun.Message)
	if err := stun.Decode(req, m); err != nil {
		return nil
	}
	if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(m) != nil {
		return nil
	}
	resp, err := stun.Build(
		stun.BindingSuccess,
		stun.NewTransactionIDSetter(m.TransactionID),
		&stun.XORMappedAddress{IP: ip, Port: port},
		&stun.MappedAddress{IP: ip, Port: port},
		stun.NewSoftware(Software),
		stun.Fingerprint,
	)
	if err != nil {
		return nil
	}
	return resp.Raw
}

// respondClassic answers an RFC 3489 request, whose 16-byte transaction ID
// takes the place of the magic cookie. Such clients reject attributes
// they do not know below 0x8000, and older ones mis-parse padding, so the
// answer carries MAPPED-ADDRESS alone (no XOR-MAPPED-ADDRESS, whose
// meaning depends on the cookie, and no FINGERPRINT, which covers it).
func respondClassic(req []byte, ip net.IP, port int) []byte {
	resp, err := stun.Build(stun.BindingSuccess, &stun.MappedAddress{IP: ip, Port: port})
	if err != nil {
		return nil
	}
	out := resp.Raw
	binary.BigEndian.PutUint16(out[0:2], typeBindingResp)
	copy(out[4:headerLen], req[4:headerLen]) // the whole classic transaction ID
	return out
}
