package sshserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrenmesh/warren/internal/wire"
)

// authInfo is who a connection was admitted as, and by which rule.
type authInfo struct {
	peer  wire.Node
	src   netip.AddrPort
	login string
	rule  wire.SSHRule
	acct  *account
}

// conn is one SSH connection; its serve goroutine owns it.
type conn struct {
	srv    *Server
	nc     net.Conn
	ctx    context.Context // ends when the connection is cut or ends
	cancel context.CancelFunc
	pre    ssh.ServerPreAuthConn // for banners during authentication
	// authed is set (under srv.mu) once the connection is authorised.
	authed *authInfo

	mu     sync.Mutex
	reason string      // why it was cut
	hangUp *time.Timer // closes nc a little after the cut
}

// cutGrace is how long a cut connection's sessions have to tell the
// client why they ended before the connection is closed under them.
const cutGrace = time.Second

var errDenied = errors.New("sshserver: login refused")

// cut ends the connection's sessions, for reason (the first one given is
// kept): their programs are killed at once, and the connection is closed
// once they told the client why, or after cutGrace.
func (c *conn) cut(reason string) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reason
		c.hangUp = time.AfterFunc(cutGrace, func() { _ = c.nc.Close() })
	}
	c.mu.Unlock()
	c.cancel()
}

// cutReason returns why the connection was cut, "" if it was not.
func (c *conn) cutReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// serve runs the connection: handshake and authorisation, then its
// channels, until it ends.
func (c *conn) serve() {
	s := c.srv
	defer func() {
		c.mu.Lock()
		if c.hangUp != nil {
			c.hangUp.Stop()
		}
		c.mu.Unlock()
	}()
	defer c.cancel()
	defer c.nc.Close()
	_ = c.nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	cfg := &ssh.ServerConfig{
		NoClientAuth:         true,
		NoClientAuthCallback: c.authorise,
		PreAuthConnCallback:  func(p ssh.ServerPreAuthConn) { c.pre = p },
		MaxAuthTries:         3,
		ServerVersion:        "SSH-2.0-Warren",
	}
	cfg.AddHostKey(s.cfg.HostKey)
	sc, chans, reqs, err := ssh.NewServerConn(c.nc, cfg)
	if err != nil {
		s.log.Debug("ssh: handshake", "from", c.nc.RemoteAddr(), "err", err)
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	a := c.authed
	log := s.log.With("peer", a.peer.Name, "user", a.login, "rule", a.rule.Rule)
	log.Info("ssh: connection authorised", "src", a.src)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs) // remote forwarding (tcpip-forward) and the rest: refused
	}()
	slots := make(chan struct{}, s.cfg.MaxSessions)
	for nch := range chans {
		if c.ctx.Err() != nil {
			_ = nch.Reject(ssh.Prohibited, "warren: the connection was cut: "+c.cutReason())
			continue
		}
		switch nch.ChannelType() {
		case "session", "direct-tcpip":
		default:
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions and local port forwarding are served")
			continue
		}
		if nch.ChannelType() == "direct-tcpip" && !a.rule.PortForwarding {
			_ = nch.Reject(ssh.Prohibited, "warren: port forwarding is not allowed by ssh rule "+a.rule.Rule)
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			_ = nch.Reject(ssh.ResourceShortage, "warren: too many sessions on this connection")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if nch.ChannelType() == "direct-tcpip" {
				c.forward(nch, log)
				return
			}
			c.session(nch, log)
		}()
	}
	c.cancel() // the client went away: end what still runs
	_ = sc.Close()
	wg.Wait()
	log.Info("ssh: connection ended", "reason", c.cutReason())
}

// authorise is the "none" authentication: the mesh vouches for the
// source address, the netmap says which peer that is, and the policy
// whether it may log in as the user asked for. Nothing else is accepted.
func (c *conn) authorise(meta ssh.ConnMetadata) (*ssh.Permissions, error) {
	s := c.srv
	login := meta.User()
	call := wire.SSHCall{LocalUser: login}
	if ta, ok := meta.RemoteAddr().(*net.TCPAddr); ok {
		call.SrcAddr = ta.AddrPort()
	} else if ap, err := netip.ParseAddrPort(meta.RemoteAddr().String()); err == nil {
		call.SrcAddr = ap
	}
	refuse := func(report bool, format string, args ...any) error {
		call.Reason = fmt.Sprintf(format, args...)
		if report {
			s.denied(call)
		} else {
			s.log.Info("ssh: login refused", "src", call.SrcAddr, "user", login, "reason", call.Reason)
		}
		return &ssh.BannerError{Err: errDenied, Message: "warren: " + call.Reason + "\r\n"}
	}
	peer, nm, ok := s.peerByAddr(call.SrcAddr.Addr())
	if !ok {
		return nil, refuse(false, "%s is not a peer of this node in the mesh", call.SrcAddr.Addr())
	}
	call.Src = peer.ID
	rule := Match(nm.SSH, peer, login)
	if rule == nil {
		return nil, refuse(true, "no ssh rule lets %s log in as %q on this node", describe(peer), login)
	}
	call.Rule = rule.Rule
	acct, err := lookupAccount(login, false)
	if err != nil {
		return nil, refuse(true, "no local user %q on this node", login)
	}
	if !s.root && acct.uid != s.self.uid {
		return nil, refuse(true, "warrend does not run as root on this node: it can only log in as %q", s.self.name)
	}
	if rule.Action == wire.SSHCheck {
		if err := c.check(call); err != nil {
			return nil, err
		}
	}
	a := &authInfo{peer: peer, src: call.SrcAddr, login: login, rule: *rule, acct: acct}
	s.mu.Lock()
	why := s.stillAdmitted(a)
	if why == "" {
		c.authed = a
	}
	s.mu.Unlock()
	if why != "" {
		return nil, refuse(true, "%s", why)
	}
	return &ssh.Permissions{}, nil
}

// check asks the coordinator whether the user signed in recently enough
// for the check rule, showing the sign-in URL as a banner when they must
// sign in again, and waits (up to CheckTimeout) for the answer.
func (c *conn) check(call wire.SSHCall) error {
	s := c.srv
	call.Op = wire.SSHOpCheck
	_ = c.nc.SetDeadline(time.Now().Add(s.cfg.CheckTimeout))
	ctx, cancel := context.WithTimeout(c.ctx, s.cfg.CheckTimeout)
	defer cancel()
	r, err := s.cfg.Control.SSHCall(ctx, call, func(url string) {
		if c.pre != nil {
			_ = c.pre.SendAuthBanner("warren: ssh rule " + call.Rule + " needs a fresh sign-in. To log in, sign in at:\r\n\r\n    " + url + "\r\n\r\n")
		}
	})
	_ = c.nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	var msg string
	switch {
	case err != nil:
		msg = "could not check your sign-in with the coordinator: " + err.Error()
	case r.Code != "":
		msg = "sign-in check failed: " + r.Code
		if r.Message != "" {
			msg = "sign-in check failed: " + r.Message
		}
	default:
		return nil
	}
	// The coordinator audits the check's outcome itself.
	s.log.Info("ssh: login refused", "src", call.SrcAddr, "user", call.LocalUser, "reason", msg)
	return &ssh.BannerError{Err: errDenied, Message: "warren: " + msg + "\r\n"}
}

// describe names a peer for messages: its name and owner or tags.
func describe(p wire.Node) string {
	switch {
	case p.User != "":
		return fmt.Sprintf("%s (%s)", p.Name, p.User)
	case len(p.Tags) > 0:
		return fmt.Sprintf("%s (%v)", p.Name, p.Tags)
	}
	return p.Name
}
