package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/engine"
	"github.com/warrenmesh/warren/node/sshserver"
)

// The node's SSH server (Config.SSH, warrend --ssh): one per session,
// created with the session's first data plane, serving port 22 of each
// data plane's mesh addresses, fed every netmap the data plane gets, and
// closed (ending every SSH session) when the session ends.

// startSSH serves SSH on eng's mesh addresses, creating the session's
// SSH server the first time. It runs on the control client's goroutine,
// from startEngine.
func (s *session) startSSH(eng *engine.Engine) {
	if !s.d.cfg.SSH {
		return
	}
	s.mu.Lock()
	srv := s.ssh
	s.mu.Unlock()
	if srv == nil {
		var err error
		if srv, err = s.newSSHServer(); err != nil {
			s.d.log.Error("ssh: not serving", "err", err)
			return
		}
		s.mu.Lock()
		s.ssh = srv
		s.mu.Unlock()
		s.helpers.Add(1)
		go func() { // ends with the session, ending the SSH sessions
			defer s.helpers.Done()
			<-s.ctx.Done()
			_ = srv.Close()
		}()
	}
	ln, err := eng.ListenTCP(wire.SSHPort)
	if err != nil {
		s.d.log.Error("ssh: listen on the mesh address", "port", wire.SSHPort, "err", err)
		return
	}
	s.helpers.Add(1)
	go func() { // ends when the server closes or eng's listener does
		defer s.helpers.Done()
		_ = srv.Serve(ln)
	}()
	s.d.log.Info("ssh: serving on the mesh address", "port", wire.SSHPort)
}

func (s *session) newSSHServer() (*sshserver.Server, error) {
	key, err := sshserver.LoadHostKey(s.d.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	// Recordings upload for as long as a session lasts: no overall
	// timeout, unlike the daemon's client for short calls.
	var transport http.RoundTripper
	if s.d.cfg.HTTPClient != nil {
		transport = s.d.cfg.HTTPClient.Transport
	}
	srv, err := sshserver.New(sshserver.Config{
		Logger: s.d.log.With("part", "ssh"), HostKey: key, Control: s.client,
		HTTPClient: &http.Client{Transport: transport},
		DialMesh: func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
			eng := s.engine()
			if eng == nil {
				return nil, fmt.Errorf("dial %s: the data plane is down", addr)
			}
			return eng.DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	return srv, nil
}

// sshNetmap gives the SSH server the netmap, which may end sessions it no
// longer admits.
func (s *session) sshNetmap(nm *controlclient.Netmap) {
	s.mu.Lock()
	srv := s.ssh
	s.mu.Unlock()
	if srv != nil {
		srv.SetNetmap(nm)
	}
}
