package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// forwardTarget is where Forward sends every connection.
type forwardTarget struct {
	host string // name for the Resolver, or an IP literal
	port uint16
}

// Forward accepts on ln and connects every client to target (host:port,
// resolved per connection through cfg.Resolve unless an IP), until ctx
// ends; it closes ln and everything it started before returning. It
// returns nil when ctx ends and an error if ln fails or target is
// malformed. Clients over cfg.MaxConns are closed at once; a client whose
// target cannot be reached is closed and the reason logged.
//
// Forward does not check where ln listens: for `warren forward` the caller
// must pass a loopback listener (see RequireLoopback).
func Forward(ctx context.Context, ln net.Listener, target string, cfg Config) error {
	host, port, err := splitHostPort(target, "")
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("proxy: forward target %q must be host:port (e.g. db:5432): %w", target, err)
	}
	s, err := New(cfg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.target = &forwardTarget{host: host, port: port}
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() { // joined below
		defer close(watched)
		select {
		case <-ctx.Done():
			s.shutdown()
		case <-stop:
		}
	}()
	err = s.serve(ln)
	close(stop)
	<-watched
	_ = ln.Close()
	_ = s.Close()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("forward to %s: %w", target, err)
	}
	return nil
}

// serveForward connects one client to the Forward target.
func (s *Server) serveForward(c net.Conn) {
	t := s.target
	up, err := s.dialTarget(t.host, t.port)
	if err != nil {
		if !errors.Is(err, errServerClosed) {
			s.log.Warn("forward: cannot reach target; closing client", "client", c.RemoteAddr().String(),
				"target", displayHost(t.host)+":"+strconv.Itoa(int(t.port)), "reason", forwardReason(classify(err)), "err", err)
		}
		return
	}
	defer s.closeConn(up)
	if s.cfg.Upstream != nil {
		release, err := s.cfg.Upstream(c, up)
		if err != nil {
			s.log.Warn("forward: closing client", "client", c.RemoteAddr().String(), "err", err)
			return
		}
		defer release()
	}
	s.splice(c, c, up, up)
}

// forwardReason says in words why a forward could not connect.
func forwardReason(f failure) string {
	switch f {
	case failUnknownHost:
		return "no such node, or not reachable under the current policy"
	case failRefused:
		return "connection refused"
	case failTimeout:
		return "timed out"
	case failHostUnreachable, failNetUnreachable:
		return "unreachable"
	}
	return "dial failed"
}
