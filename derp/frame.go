package derp

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/nacl/box"

	"github.com/warrenmesh/warren/internal/key"
)

// Subprotocol is the websocket subprotocol both ends must negotiate. A
// future incompatible protocol gets a new name.
const Subprotocol = "warren-derp-v1"

// ProtocolVersion is the version carried inside the sealed hellos. It
// changes for compatible additions; incompatible ones change Subprotocol.
const ProtocolVersion = 1

// MaxPacketSize is the largest packet a client may send or receive in one
// frame: 64 KiB, far above any WireGuard packet.
const MaxPacketSize = 64 << 10

// frameType is the first byte of every frame.
type frameType byte

// Frame types. The numbers are the wire format; never renumber.
const (
	frameServerHello frameType = 0x01 // relay key(32) challenge(32)
	frameClientHello frameType = 0x02 // node key(32) nonce(24) sealed(challenge(32) info)
	frameServerInfo  frameType = 0x03 // nonce(24) sealed(client nonce(24) info)
	frameSendPacket  frameType = 0x04 // dst key(32) data
	frameRecvPacket  frameType = 0x05 // src key(32) data
	framePeerGone    frameType = 0x06 // key(32) reason(1)
	frameKeepAlive   frameType = 0x07 // empty
	framePing        frameType = 0x08 // data(8)
	framePong        frameType = 0x09 // data(8), echoing a Ping
	frameError       frameType = 0x0a // UTF-8 text
)

// Sizes of the fixed parts and the limits of the variable ones.
const (
	challengeLen   = 32
	nonceLen       = 24
	pingLen        = 8
	maxInfoLen     = 256  // JSON inside the sealed hellos
	maxErrorText   = 1024 // bytes of an Error frame's text
	minClientSeal  = box.Overhead + challengeLen
	maxClientSeal  = box.Overhead + challengeLen + maxInfoLen
	minServerSeal  = box.Overhead + nonceLen
	maxServerSeal  = box.Overhead + nonceLen + maxInfoLen
	packetHeaderSz = 1 + key.Size

	// maxFrameSize bounds every frame after the handshake.
	maxFrameSize = packetHeaderSz + MaxPacketSize
	// maxHandshakeFrame bounds every frame before the handshake is done.
	maxHandshakeFrame = 1 + key.Size + nonceLen + maxClientSeal + maxErrorText
)

// String names the frame type for errors and logs.
func (t frameType) String() string {
	switch t {
	case frameServerHello:
		return "ServerHello"
	case frameClientHello:
		return "ClientHello"
	case frameServerInfo:
		return "ServerInfo"
	case frameSendPacket:
		return "SendPacket"
	case frameRecvPacket:
		return "RecvPacket"
	case framePeerGone:
		return "PeerGone"
	case frameKeepAlive:
		return "KeepAlive"
	case framePing:
		return "Ping"
	case framePong:
		return "Pong"
	case frameError:
		return "Error"
	}
	return fmt.Sprintf("frameType(0x%02x)", byte(t))
}

// frame is one decoded frame. It is a flat struct rather than one type per
// frame so that the hot path (SendPacket in, RecvPacket out) decodes without
// allocating; which fields are meaningful depends on typ, as listed at the
// frame type constants.
type frame struct {
	typ       frameType
	key       [key.Size]byte     // ServerHello, ClientHello, SendPacket, RecvPacket, PeerGone
	challenge [challengeLen]byte // ServerHello
	nonce     [nonceLen]byte     // ClientHello, ServerInfo
	ping      [pingLen]byte      // Ping, Pong
	reason    PeerGoneReason     // PeerGone
	// data is the packet (SendPacket, RecvPacket), the sealed box
	// (ClientHello, ServerInfo) or the text (Error). After decodeFrame it
	// aliases the input.
	data []byte
}

var errEmptyFrame = errors.New("derp: empty frame")

// decodeFrame parses b into f. It checks every length strictly: a frame
// that is too short, too long, or of an unknown type is an error. f.data
// aliases b.
func decodeFrame(b []byte, f *frame) error {
	if len(b) == 0 {
		return errEmptyFrame
	}
	*f = frame{typ: frameType(b[0])}
	body := b[1:]
	exact := func(n int) error {
		if len(body) != n {
			return fmt.Errorf("derp: %v frame body is %d bytes, want %d", f.typ, len(body), n)
		}
		return nil
	}
	between := func(lo, hi int) error {
		if len(body) < lo || len(body) > hi {
			return fmt.Errorf("derp: %v frame body is %d bytes, want %d to %d", f.typ, len(body), lo, hi)
		}
		return nil
	}
	switch f.typ {
	case frameServerHello:
		if err := exact(key.Size + challengeLen); err != nil {
			return err
		}
		copy(f.key[:], body)
		copy(f.challenge[:], body[key.Size:])
	case frameClientHello:
		if err := between(key.Size+nonceLen+minClientSeal, key.Size+nonceLen+maxClientSeal); err != nil {
			return err
		}
		copy(f.key[:], body)
		copy(f.nonce[:], body[key.Size:])
		f.data = body[key.Size+nonceLen:]
	case frameServerInfo:
		if err := between(nonceLen+minServerSeal, nonceLen+maxServerSeal); err != nil {
			return err
		}
		copy(f.nonce[:], body)
		f.data = body[nonceLen:]
	case frameSendPacket, frameRecvPacket:
		if err := between(key.Size, key.Size+MaxPacketSize); err != nil {
			return err
		}
		copy(f.key[:], body)
		f.data = body[key.Size:]
	case framePeerGone:
		if err := exact(key.Size + 1); err != nil {
			return err
		}
		copy(f.key[:], body)
		f.reason = PeerGoneReason(body[key.Size])
	case frameKeepAlive:
		if err := exact(0); err != nil {
			return err
		}
	case framePing, framePong:
		if err := exact(pingLen); err != nil {
			return err
		}
		copy(f.ping[:], body)
	case frameError:
		if err := between(0, maxErrorText); err != nil {
			return err
		}
		if !utf8.Valid(body) {
			return errors.New("derp: Error frame text is not UTF-8")
		}
		f.data = body
	default:
		return fmt.Errorf("derp: unknown frame type 0x%02x", b[0])
	}
	return nil
}

// appendFrame appends the encoding of f to dst. It refuses frames that
// decodeFrame would refuse, so the two round-trip.
func appendFrame(dst []byte, f *frame) ([]byte, error) {
	dataBetween := func(lo, hi int) error {
		if len(f.data) < lo || len(f.data) > hi {
			return fmt.Errorf("derp: %v frame data is %d bytes, want %d to %d", f.typ, len(f.data), lo, hi)
		}
		return nil
	}
	var err error
	switch f.typ {
	case frameServerHello:
		dst = append(dst, byte(f.typ))
		dst = append(dst, f.key[:]...)
		dst = append(dst, f.challenge[:]...)
	case frameClientHello:
		if err = dataBetween(minClientSeal, maxClientSeal); err == nil {
			dst = append(dst, byte(f.typ))
			dst = append(dst, f.key[:]...)
			dst = append(dst, f.nonce[:]...)
			dst = append(dst, f.data...)
		}
	case frameServerInfo:
		if err = dataBetween(minServerSeal, maxServerSeal); err == nil {
			dst = append(dst, byte(f.typ))
			dst = append(dst, f.nonce[:]...)
			dst = append(dst, f.data...)
		}
	case frameSendPacket, frameRecvPacket:
		if err = dataBetween(0, MaxPacketSize); err == nil {
			dst = appendPacketFrame(dst, f.typ, f.key, f.data)
		}
	case framePeerGone:
		dst = append(dst, byte(f.typ))
		dst = append(dst, f.key[:]...)
		dst = append(dst, byte(f.reason))
	case frameKeepAlive:
		dst = append(dst, byte(f.typ))
	case framePing, framePong:
		dst = append(dst, byte(f.typ))
		dst = append(dst, f.ping[:]...)
	case frameError:
		if err = dataBetween(0, maxErrorText); err == nil {
			if !utf8.Valid(f.data) {
				return dst, errors.New("derp: Error frame text is not UTF-8")
			}
			dst = append(dst, byte(f.typ))
			dst = append(dst, f.data...)
		}
	default:
		err = fmt.Errorf("derp: cannot encode unknown frame type 0x%02x", byte(f.typ))
	}
	return dst, err
}

// appendPacketFrame appends a SendPacket or RecvPacket frame. The caller
// checks len(data) <= MaxPacketSize.
func appendPacketFrame(dst []byte, typ frameType, k [key.Size]byte, data []byte) []byte {
	dst = append(dst, byte(typ))
	dst = append(dst, k[:]...)
	return append(dst, data...)
}

// errorFrame encodes an Error frame, cutting text to the limit on a rune
// boundary.
func errorFrame(text string) []byte {
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
	}
	for !utf8.ValidString(text) {
		text = text[:len(text)-1]
	}
	b, _ := appendFrame(nil, &frame{typ: frameError, data: []byte(text)})
	return b
}
