// Package noise provides the encrypted, mutually authenticated channel that
// carries Warren's control protocol between a node and the coordinator.
//
// The channel is Noise_IK_25519_ChaChaPoly_BLAKE2s (via github.com/flynn/noise)
// over any message-oriented transport (MessageConn), in practice one
// websocket per node (WebSocket). The node is the initiator: it knows and pins
// the coordinator's static key and proves its machine key in the first
// message, which also carries a timestamp so the coordinator can reject
// replayed handshakes (ReplayGuard). After the two handshake messages each
// direction is a stream of Noise transport messages, exposed as an
// io.ReadWriteCloser (Conn).
//
// This package must never implement cryptography itself, never log or send a
// private key, and never hand out plaintext that failed authentication.
package noise

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flynn/noise"

	"github.com/warrenmesh/warren/internal/key"
)

// MaxMessage is the largest Noise message, handshake or transport, on the
// wire. Transports must refuse longer messages.
const MaxMessage = noise.MaxMsgLen // 65535

// tagSize is the size of the ChaCha20-Poly1305 authentication tag.
const tagSize = 16

// MaxPlaintext is the most plaintext one transport message carries: MaxMessage
// minus the AEAD tag. Conn.Write splits larger writes.
const MaxPlaintext = MaxMessage - tagSize

// prologue binds both sides to this protocol and version; a peer speaking
// another version fails the handshake instead of misreading it.
const prologue = "warren control v1"

// Sizes of the two IK handshake messages:
//
//	-> e, es, s, ss  (payload: timestamp)
//	<- e, ee, se     (payload: empty)
const (
	initiatorMsgSize = key.Size + (key.Size + tagSize) + (timestampSize + tagSize) // 108
	responderMsgSize = key.Size + tagSize                                          // 48
)

var (
	// ErrHandshake wraps every handshake failure, on both sides.
	ErrHandshake = errors.New("noise: handshake failed")

	// ErrReplay reports a handshake that was replayed or whose timestamp is
	// outside the coordinator's clock window. Errors wrapping it from Server
	// also wrap ErrHandshake.
	ErrReplay = errors.New("noise: handshake replayed or node clock out of window")
)

var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// ClientConfig configures the node (initiator) side of the handshake.
type ClientConfig struct {
	// Machine is the node's static key.
	Machine key.MachinePrivate
	// Coordinator is the pinned public key of the coordinator.
	Coordinator key.ControlPublic
	// Now returns the time put in the handshake; nil means time.Now.
	Now func() time.Time
}

// ServerConfig configures the coordinator (responder) side of the handshake.
type ServerConfig struct {
	// Key is the coordinator's static key.
	Key key.ControlPrivate
	// Replay rejects replayed handshakes. Required; share one guard between
	// all connections of a coordinator.
	Replay *ReplayGuard
	// Now returns the coordinator's clock; nil means time.Now.
	Now func() time.Time
}

// Client runs the IK handshake as initiator over mc and returns the encrypted
// stream. The peer must prove it holds the private half of cfg.Coordinator.
//
// Client takes ownership of mc: on error it closes mc, on success the returned
// Conn closes it. ctx bounds the handshake only. On the client side
// Conn.Peer is the zero key (the peer is cfg.Coordinator).
func Client(ctx context.Context, mc MessageConn, cfg ClientConfig) (_ *Conn, err error) {
	defer func() {
		if err != nil {
			mc.Close()
		}
	}()
	if cfg.Machine.IsZero() {
		return nil, fmt.Errorf("%w: ClientConfig.Machine is not set", ErrHandshake)
	}
	if cfg.Coordinator.IsZero() {
		return nil, fmt.Errorf("%w: ClientConfig.Coordinator is not set: get the coordinator key from the coordinator's /key URL", ErrHandshake)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	priv, pub := cfg.Machine.Raw(), cfg.Machine.Public().Raw()
	coord := cfg.Coordinator.Raw()
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Pattern:       noise.HandshakeIK,
		Initiator:     true,
		Prologue:      []byte(prologue),
		StaticKeypair: noise.DHKey{Private: priv[:], Public: pub[:]},
		PeerStatic:    coord[:],
	})
	if err != nil {
		return nil, fmt.Errorf("%w: start handshake: %w", ErrHandshake, err)
	}

	ts := appendTimestamp(make([]byte, 0, timestampSize), now())
	msg, _, _, err := hs.WriteMessage(make([]byte, 0, initiatorMsgSize), ts)
	if err != nil {
		return nil, fmt.Errorf("%w: build handshake message: %w", ErrHandshake, err)
	}
	if err := mc.WriteMessage(ctx, msg); err != nil {
		return nil, fmt.Errorf("%w: send handshake to coordinator: %w", ErrHandshake, err)
	}

	resp, err := mc.ReadMessage(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: coordinator did not complete the handshake: is the pinned coordinator key %s right? get it from the coordinator's /key URL: %w",
			ErrHandshake, cfg.Coordinator, err)
	}
	if len(resp) != responderMsgSize {
		return nil, fmt.Errorf("%w: coordinator sent a %d-byte handshake response, want %d: is this a Warren coordinator of the same protocol version?",
			ErrHandshake, len(resp), responderMsgSize)
	}
	// IK: the initiator sends with the first cipher state, receives with the second.
	_, send, recv, err := hs.ReadMessage(nil, resp)
	if err != nil {
		return nil, fmt.Errorf("%w: coordinator's handshake response could not be decrypted: is the pinned coordinator key %s right? get it from the coordinator's /key URL: %w",
			ErrHandshake, cfg.Coordinator, err)
	}
	if send == nil || recv == nil {
		return nil, fmt.Errorf("%w: handshake did not finish after the response", ErrHandshake)
	}
	return newConn(mc, key.MachinePublic{}, send, recv), nil
}

// Server runs the IK handshake as responder over mc. It reads the node's
// first message, authenticates the node's machine key, checks the handshake
// timestamp against cfg.Replay, and only then answers. The returned Conn's
// Peer is the authenticated machine key; deciding whether that machine may
// connect is the caller's job.
//
// Server takes ownership of mc: on error it closes mc, on success the
// returned Conn closes it. ctx bounds the handshake only.
func Server(ctx context.Context, mc MessageConn, cfg ServerConfig) (_ *Conn, err error) {
	defer func() {
		if err != nil {
			mc.Close()
		}
	}()
	if cfg.Key.IsZero() {
		return nil, fmt.Errorf("%w: ServerConfig.Key is not set", ErrHandshake)
	}
	if cfg.Replay == nil {
		return nil, fmt.Errorf("%w: ServerConfig.Replay is nil: create one ReplayGuard with NewReplayGuard and share it", ErrHandshake)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	msg, err := mc.ReadMessage(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: read node's handshake: %w", ErrHandshake, err)
	}
	if len(msg) != initiatorMsgSize {
		return nil, fmt.Errorf("%w: node's handshake message is %d bytes, want %d: the peer is not a Warren node of the same protocol version",
			ErrHandshake, len(msg), initiatorMsgSize)
	}

	priv, pub := cfg.Key.Raw(), cfg.Key.Public().Raw()
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Pattern:       noise.HandshakeIK,
		Initiator:     false,
		Prologue:      []byte(prologue),
		StaticKeypair: noise.DHKey{Private: priv[:], Public: pub[:]},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: start handshake: %w", ErrHandshake, err)
	}
	payload, _, _, err := hs.ReadMessage(make([]byte, 0, timestampSize), msg)
	if err != nil {
		return nil, fmt.Errorf("%w: node's handshake could not be decrypted: it pinned a different coordinator key, or the message is corrupt: %w",
			ErrHandshake, err)
	}
	peer, err := key.PublicFromSlice[key.MachineKind](hs.PeerStatic())
	if err != nil {
		return nil, fmt.Errorf("%w: node's machine key: %w", ErrHandshake, err)
	}
	ts, err := parseTimestamp(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: node %s: %w", ErrHandshake, peer, err)
	}
	if err := cfg.Replay.Check(peer, ts, now()); err != nil {
		return nil, fmt.Errorf("%w: node %s: %w", ErrHandshake, peer, err)
	}

	resp, recv, send, err := hs.WriteMessage(make([]byte, 0, responderMsgSize), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: build handshake response: %w", ErrHandshake, err)
	}
	if send == nil || recv == nil {
		return nil, fmt.Errorf("%w: handshake did not finish after the response", ErrHandshake)
	}
	if err := mc.WriteMessage(ctx, resp); err != nil {
		return nil, fmt.Errorf("%w: send handshake response to node %s: %w", ErrHandshake, peer, err)
	}
	return newConn(mc, peer, send, recv), nil
}
