package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// SOCKS5 (RFC 1928) constants.
const (
	socksVersion      = 0x05
	socksMethodNoAuth = 0x00
	socksMethodNone   = 0xFF
	socksCmdConnect   = 0x01

	socksATYPIPv4   = 0x01
	socksATYPDomain = 0x03
	socksATYPIPv6   = 0x04

	socksSucceeded           = 0x00
	socksGeneralFailure      = 0x01
	socksNetUnreachable      = 0x03
	socksHostUnreachable     = 0x04
	socksConnRefused         = 0x05
	socksTTLExpired          = 0x06
	socksCmdNotSupported     = 0x07
	socksAddrTypeUnsupported = 0x08
)

var (
	errSOCKSVersion     = errors.New("not a SOCKS5 request")
	errSOCKSAddrType    = errors.New("unsupported SOCKS address type")
	errSOCKSEmptyDomain = errors.New("empty SOCKS domain name")
)

// SOCKSRequest is a parsed SOCKS5 request. Host is set for ATYP 0x03
// (domain name), Addr for ATYP 0x01 (IPv4) and 0x04 (IPv6).
type SOCKSRequest struct {
	Cmd  byte
	Host string
	Addr netip.Addr
	Port uint16
}

// target is the request's destination as a host string: the domain name or
// the IP literal.
func (r SOCKSRequest) target() string {
	if r.Host != "" {
		return r.Host
	}
	return r.Addr.String()
}

// ParseSOCKSRequest parses a SOCKS5 request (after the greeting) from r:
// VER CMD RSV ATYP DST.ADDR DST.PORT. It reads exactly the request's bytes
// and never allocates from a client-given length (domain names are at most
// 255 bytes by the format). RSV is not checked. Exported for fuzzing and
// tests.
func ParseSOCKSRequest(r io.Reader) (SOCKSRequest, error) {
	var buf [256]byte
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		return SOCKSRequest{}, fmt.Errorf("read SOCKS request header: %w", err)
	}
	if buf[0] != socksVersion {
		return SOCKSRequest{}, fmt.Errorf("%w: version byte %#02x", errSOCKSVersion, buf[0])
	}
	req := SOCKSRequest{Cmd: buf[1]}
	switch atyp := buf[3]; atyp {
	case socksATYPIPv4:
		if _, err := io.ReadFull(r, buf[:4]); err != nil {
			return SOCKSRequest{}, fmt.Errorf("read SOCKS IPv4 address: %w", err)
		}
		req.Addr = netip.AddrFrom4([4]byte(buf[:4]))
	case socksATYPIPv6:
		if _, err := io.ReadFull(r, buf[:16]); err != nil {
			return SOCKSRequest{}, fmt.Errorf("read SOCKS IPv6 address: %w", err)
		}
		req.Addr = netip.AddrFrom16([16]byte(buf[:16]))
	case socksATYPDomain:
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return SOCKSRequest{}, fmt.Errorf("read SOCKS domain length: %w", err)
		}
		n := int(buf[0])
		if n == 0 {
			return SOCKSRequest{}, errSOCKSEmptyDomain
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return SOCKSRequest{}, fmt.Errorf("read SOCKS domain name: %w", err)
		}
		req.Host = string(buf[:n])
	default:
		return SOCKSRequest{}, fmt.Errorf("%w: %#02x", errSOCKSAddrType, atyp)
	}
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return SOCKSRequest{}, fmt.Errorf("read SOCKS port: %w", err)
	}
	req.Port = uint16(buf[0])<<8 | uint16(buf[1])
	return req, nil
}

// serveSOCKS runs a SOCKS5 connection whose version byte was read. When not
// admitted it completes the handshake only to reply general failure.
func (s *Server) serveSOCKS(c net.Conn, admitted bool) {
	client := c.RemoteAddr().String()
	var buf [255]byte
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		s.log.Debug("socks: truncated greeting", "client", client, "err", err)
		return
	}
	methods := buf[:buf[0]]
	if _, err := io.ReadFull(c, methods); err != nil {
		s.log.Debug("socks: truncated greeting", "client", client, "err", err)
		return
	}
	if !bytes.Contains(methods, []byte{socksMethodNoAuth}) {
		s.log.Debug("socks: client offers no acceptable auth method (only 0x00, no auth, is supported)",
			"client", client, "methods", fmt.Sprintf("%x", methods))
		_, _ = c.Write([]byte{socksVersion, socksMethodNone})
		lingerClose(c)
		return
	}
	if _, err := c.Write([]byte{socksVersion, socksMethodNoAuth}); err != nil {
		return
	}
	req, err := ParseSOCKSRequest(c)
	if err != nil {
		s.log.Debug("socks: bad request", "client", client, "err", err)
		switch {
		case errors.Is(err, errSOCKSAddrType):
			s.socksFail(c, socksAddrTypeUnsupported)
		case errors.Is(err, errSOCKSEmptyDomain), errors.Is(err, errSOCKSVersion):
			s.socksFail(c, socksGeneralFailure)
		}
		return
	}
	if req.Cmd != socksCmdConnect {
		s.log.Debug("socks: unsupported command (only CONNECT)", "client", client, "cmd", req.Cmd)
		s.socksFail(c, socksCmdNotSupported)
		return
	}
	if !admitted {
		s.log.Warn("socks: refusing client: too many connections", "client", client, "max_conns", s.cfg.MaxConns)
		s.socksFail(c, socksGeneralFailure)
		return
	}
	_ = c.SetDeadline(time.Time{}) // the dial has its own bound
	host := req.target()
	up, err := s.dialTarget(host, req.Port)
	if err != nil {
		if errors.Is(err, errServerClosed) {
			return
		}
		s.log.Info("socks: cannot reach target", "client", client, "target", displayHost(host), "port", req.Port, "err", err)
		s.socksFail(c, socksReply(classify(err)))
		return
	}
	defer s.closeConn(up)
	_ = c.SetWriteDeadline(time.Now().Add(s.handshake))
	if _, err := c.Write(socksReplyBytes(socksSucceeded, up.LocalAddr())); err != nil {
		return
	}
	_ = c.SetWriteDeadline(time.Time{})
	s.log.Debug("socks: connected", "client", client, "target", displayHost(host)+":"+strconv.Itoa(int(req.Port)))
	s.splice(c, c, up, up)
}

// socksReply maps a dial failure to a SOCKS reply code.
func socksReply(f failure) byte {
	switch f {
	case failUnknownHost, failHostUnreachable:
		return socksHostUnreachable
	case failNetUnreachable:
		return socksNetUnreachable
	case failRefused:
		return socksConnRefused
	case failTimeout:
		return socksTTLExpired
	}
	return socksGeneralFailure
}

// socksFail writes a failure reply and lingers so the client reads it.
func (s *Server) socksFail(c net.Conn, code byte) {
	_ = c.SetWriteDeadline(time.Now().Add(s.handshake))
	if _, err := c.Write(socksReplyBytes(code, nil)); err != nil {
		return
	}
	lingerClose(c)
}

// socksReplyBytes builds VER REP RSV ATYP BND.ADDR BND.PORT, with bnd as
// the bound address when it is an IP address and zeros otherwise.
func socksReplyBytes(code byte, bnd net.Addr) []byte {
	var ap netip.AddrPort
	if bnd != nil {
		if ta, ok := bnd.(*net.TCPAddr); ok {
			ap = ta.AddrPort()
		} else if p, err := netip.ParseAddrPort(bnd.String()); err == nil {
			ap = p
		}
	}
	addr := ap.Addr().Unmap()
	b := []byte{socksVersion, code, 0x00}
	switch {
	case addr.Is4():
		b = append(b, socksATYPIPv4)
		b = append(b, addr.AsSlice()...)
	case addr.Is6():
		b = append(b, socksATYPIPv6)
		b = append(b, addr.AsSlice()...)
	default:
		b = append(b, socksATYPIPv4, 0, 0, 0, 0)
	}
	return append(b, byte(ap.Port()>>8), byte(ap.Port()))
}
