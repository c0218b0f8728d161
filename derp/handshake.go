package derp

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/warrenmesh/warren/internal/key"
)

// clientInfo is the JSON a client seals after the challenge in its
// ClientHello. Unknown fields are ignored, so clients may add some.
type clientInfo struct {
	Version int `json:"version"`
}

// serverInfo is the JSON the server seals in its ServerInfo frame.
type serverInfo struct {
	Version int `json:"version"`
	// KeepAliveMillis is how often the server pings an idle client; a
	// client that hears nothing for a few of these presumes the
	// connection dead.
	KeepAliveMillis int64 `json:"keepAliveMs"`
}

// errBadHello is why a ClientHello that does not open is refused; the
// text goes to the client in an Error frame.
var errBadHello = errors.New("handshake failed: the hello was not sealed with the claimed node key for this connection's challenge")

// newServerHello returns a ServerHello frame with a fresh challenge.
func newServerHello(relay key.RelayPublic) (frame, error) {
	f := frame{typ: frameServerHello, key: relay.Raw()}
	if _, err := rand.Read(f.challenge[:]); err != nil {
		return f, fmt.Errorf("derp: challenge: %w", err)
	}
	return f, nil
}

// sealClientHello builds the ClientHello that answers hello: the
// challenge and info sealed from the node key to the relay key.
func sealClientHello(node key.NodePrivate, hello *frame) (frame, error) {
	f := frame{typ: frameClientHello, key: node.Public().Raw()}
	if _, err := rand.Read(f.nonce[:]); err != nil {
		return f, fmt.Errorf("derp: nonce: %w", err)
	}
	info, err := json.Marshal(clientInfo{Version: ProtocolVersion})
	if err != nil {
		return f, err
	}
	msg := make([]byte, 0, challengeLen+len(info))
	msg = append(append(msg, hello.challenge[:]...), info...)
	relay, priv := hello.key, node.Raw()
	f.data = box.Seal(nil, msg, &f.nonce, &relay, &priv)
	return f, nil
}

// openClientHello checks a ClientHello against the challenge sent on this
// connection: opening the box with the relay key and the claimed node key
// proves the client holds that node key, and the challenge proves the hello
// was made for this connection (no replay).
func openClientHello(relay key.RelayPrivate, challenge *[challengeLen]byte, f *frame) (key.NodePublic, clientInfo, error) {
	var info clientInfo
	if f.typ != frameClientHello {
		return key.NodePublic{}, info, fmt.Errorf("handshake failed: want ClientHello, got %v", f.typ)
	}
	claimed, priv := f.key, relay.Raw()
	msg, ok := box.Open(nil, f.data, &f.nonce, &claimed, &priv)
	if !ok || len(msg) < challengeLen || subtle.ConstantTimeCompare(msg[:challengeLen], challenge[:]) != 1 {
		return key.NodePublic{}, info, errBadHello
	}
	if err := json.Unmarshal(msg[challengeLen:], &info); err != nil {
		return key.NodePublic{}, info, fmt.Errorf("handshake failed: client info: %w", err)
	}
	if info.Version < 1 {
		return key.NodePublic{}, info, fmt.Errorf("handshake failed: client protocol version %d, want >= 1", info.Version)
	}
	return key.PublicFromRaw[key.NodeKind](claimed), info, nil
}

// sealServerInfo builds the ServerInfo frame. It echoes the client's
// hello nonce inside the box, so the client knows the answer is fresh and
// comes from the holder of the relay key.
func sealServerInfo(relay key.RelayPrivate, node key.NodePublic, clientNonce *[nonceLen]byte, keepAlive time.Duration) (frame, error) {
	f := frame{typ: frameServerInfo}
	if _, err := rand.Read(f.nonce[:]); err != nil {
		return f, fmt.Errorf("derp: nonce: %w", err)
	}
	info, err := json.Marshal(serverInfo{Version: ProtocolVersion, KeepAliveMillis: keepAlive.Milliseconds()})
	if err != nil {
		return f, err
	}
	msg := make([]byte, 0, nonceLen+len(info))
	msg = append(append(msg, clientNonce[:]...), info...)
	peer, priv := node.Raw(), relay.Raw()
	f.data = box.Seal(nil, msg, &f.nonce, &peer, &priv)
	return f, nil
}

// openServerInfo checks a ServerInfo frame sealed for node by relay in
// answer to the hello with clientNonce.
func openServerInfo(node key.NodePrivate, relay key.RelayPublic, clientNonce *[nonceLen]byte, f *frame) (serverInfo, error) {
	var info serverInfo
	peer, priv := relay.Raw(), node.Raw()
	msg, ok := box.Open(nil, f.data, &f.nonce, &peer, &priv)
	if !ok || len(msg) < nonceLen || !bytes.Equal(msg[:nonceLen], clientNonce[:]) {
		return info, errors.New("relay's ServerInfo is not sealed by the relay key for this handshake")
	}
	if err := json.Unmarshal(msg[nonceLen:], &info); err != nil {
		return info, fmt.Errorf("relay's ServerInfo: %w", err)
	}
	return info, nil
}
