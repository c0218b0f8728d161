package engine

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/warrenmesh/warren/internal/key"
)

// UAPIAuto is the Config.UAPIName that names the UAPI socket after the
// TUN device in TUN mode, and serves none in userspace mode.
const UAPIAuto = "auto"

// uapiServer serves WireGuard's cross-platform configuration protocol
// (UAPI) for the engine's device on the standard socket, so that wg(8)
// and wgctrl programs read its peers, endpoints, handshakes and counters
// (/var/run/wireguard/NAME.sock, root only; a named pipe on Windows). It
// owns the accept goroutine and one goroutine per open connection.
type uapiServer struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// serveUAPI opens the UAPI socket for name and hands each connection to
// handle (device.IpcHandle).
func serveUAPI(name string, handle func(net.Conn)) (*uapiServer, error) {
	ln, err := listenUAPI(name)
	if err != nil {
		return nil, fmt.Errorf("engine: WireGuard UAPI socket %q: %w", name, err)
	}
	s := &uapiServer{name: name, ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.conns == nil { // closing
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				handle(c) // closes c when the client is done
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

// Close removes the socket, ends open connections and waits for their
// goroutines.
func (s *uapiServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// wgctrlStatus reads the device's peers through its UAPI socket with
// wgctrl, the way any WireGuard tool would. The socket is this process's
// own, answered at once by the device.
func wgctrlStatus(name string) ([]PeerStatus, error) {
	c, err := wgctrl.New()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	d, err := c.Device(name)
	if err != nil {
		return nil, err
	}
	out := make([]PeerStatus, 0, len(d.Peers))
	for _, p := range d.Peers {
		pk, err := key.PublicFromSlice[key.NodeKind](p.PublicKey[:])
		if err != nil {
			return nil, errors.Join(errors.New("engine: a peer key from wgctrl"), err)
		}
		ps := PeerStatus{NodeKey: pk, RxBytes: uint64(p.ReceiveBytes), TxBytes: uint64(p.TransmitBytes)}
		if !p.LastHandshakeTime.IsZero() && p.LastHandshakeTime.After(time.Unix(0, 0)) {
			ps.LastHandshake = p.LastHandshakeTime
		}
		out = append(out, ps)
	}
	return out, nil
}
