package sshserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// forward serves a direct-tcpip channel (ssh -L): it dials the target
// from this host and copies both ways until either side ends or the
// connection is cut. The caller checked that the rule allows it.
func (c *conn) forward(nch ssh.NewChannel, log *slog.Logger) {
	var p struct {
		DestAddr string
		DestPort uint32
		OrigAddr string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil || p.DestPort == 0 || p.DestPort > 65535 {
		_ = nch.Reject(ssh.ConnectionFailed, "malformed forwarding request")
		return
	}
	target := net.JoinHostPort(p.DestAddr, strconv.Itoa(int(p.DestPort)))
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	var d net.Dialer
	tc, err := d.DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, "warren: "+err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		_ = tc.Close()
		return
	}
	log.Info("ssh: forwarding", "to", target)
	// The client's EOF half-closes the target connection; the target's
	// end (it sent all it will) ends the forward.
	var wg sync.WaitGroup
	wg.Go(func() { ssh.DiscardRequests(reqs) })
	wg.Go(func() {
		_, _ = io.Copy(tc, ch)
		if t, ok := tc.(*net.TCPConn); ok {
			_ = t.CloseWrite()
		}
	})
	fromTarget := make(chan struct{})
	wg.Go(func() {
		defer close(fromTarget)
		_, _ = io.Copy(ch, tc)
		_ = ch.CloseWrite()
	})
	select {
	case <-fromTarget:
	case <-c.ctx.Done():
	}
	_ = ch.Close()
	_ = tc.Close()
	wg.Wait()
}
