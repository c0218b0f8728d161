// Package derp is Warren's relay: a server that forwards WireGuard packets
// between nodes that cannot reach each other directly, and the client
// nodes use to talk to it. Traffic starts on the relay and moves to a
// direct path once hole punching succeeds.
//
// The relay only ever sees WireGuard ciphertext addressed by node public
// key. It must never store packets beyond its bounded per-client queues,
// never block one client on another, and never forward for a node key
// that has not proven itself and been admitted by the coordinator.
//
// # Protocol (websocket subprotocol "warren-derp-v1")
//
// One binary websocket message carries one frame: a type byte and a body
// whose length is checked exactly. Frames after the handshake are at most
// 1+32+65536 bytes; handshake frames are far smaller. An unknown type, a
// wrong length, a text message or a frame of a type the receiver does not
// expect ends the connection (with an Error frame when possible).
//
//	0x01 ServerHello  relay key(32) challenge(32)               server → client
//	0x02 ClientHello  node key(32) nonce(24) box(...)           client → server
//	0x03 ServerInfo   nonce(24) box(...)                        server → client
//	0x04 SendPacket   dst node key(32) packet(0..65536)         client → server
//	0x05 RecvPacket   src node key(32) packet(0..65536)         server → client
//	0x06 PeerGone     node key(32) reason(1)                    server → client
//	0x07 KeepAlive    (empty)                                   either way, ignored
//	0x08 Ping         data(8)                                   either way
//	0x09 Pong         data(8) echoed from the Ping              either way
//	0x0a Error        UTF-8 text (≤ 1024 bytes), then close     server → client
//
// Handshake. On connect the server sends ServerHello with its relay key
// and 32 fresh random bytes. The client answers ClientHello: its node key,
// a random nonce and a NaCl box (golang.org/x/crypto/nacl/box) from the
// node private key to the relay public key holding the challenge followed
// by JSON info ({"version":1}). Opening the box with the relay private key
// and the claimed node key proves the client holds that node key; the
// challenge ties the proof to this connection, so a recorded hello cannot
// be replayed. The server then asks its Admitter about the key and sends
// either ServerInfo — a box from the relay key to the node key holding the
// client's nonce and JSON info ({"version":1,"keepAliveMs":30000}), which
// proves the relay holds its key — or an Error frame with the reason, and
// closes. The whole handshake has a 5 s deadline.
//
// Relaying. SendPacket frames are rewritten to RecvPacket frames carrying
// the proven sender key and queued for the destination's writer. When the
// destination is not connected, the sender gets PeerGone (at most once a
// second per destination). Each client's sending is rate limited in bytes
// (with FrameOverhead charged per frame); frames over the limit, and
// frames for a destination whose queue is full, are dropped and counted.
// Disco messages (path discovery; recognised by the disco magic prefix of
// their cleartext header, never opened) have a small queue of their own
// per destination that is written before data and drops its oldest
// message when full, so a data flood never starves path discovery.
// A second connection with the same node key replaces the first. The
// server pings each client every KeepAliveEvery (keeping idle connections
// alive through proxies) and disconnects clients silent for two periods;
// clients answer pings and consider a relay that stays silent dead.
package derp
