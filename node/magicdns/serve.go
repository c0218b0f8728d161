package magicdns

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// tcpIdle is how long a TCP connection may wait for its next query.
const tcpIdle = 10 * time.Second

// ServeUDP answers the queries arriving on pc until ctx ends; then it
// closes pc, waits for the queries in progress and returns nil. Queries
// from sources Config.Allow refuses are dropped unanswered.
func (r *Resolver) ServeUDP(ctx context.Context, pc *net.UDPConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, MaxQuery+1)
	for {
		n, src, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue // a transient error (ICMP unreachable): keep serving
		}
		if !r.allowed(src.Addr()) {
			continue
		}
		if n > MaxQuery {
			r.dropped.Add(1)
			continue
		}
		if !r.acquire() {
			continue
		}
		query := append([]byte(nil), buf[:n]...)
		wg.Add(1)
		go func() { // joined by wg before ServeUDP returns
			defer wg.Done()
			defer r.release()
			if resp := r.Respond(ctx, query, false); resp != nil {
				pc.WriteToUDPAddrPort(resp, src)
			}
		}()
	}
}

// ServeTCP answers queries on the connections ln accepts until ctx ends;
// then it closes ln and every connection and returns nil once their
// goroutines have ended.
func (r *Resolver) ServeTCP(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		src, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		if !r.allowed(src.Addr()) {
			c.Close()
			continue
		}
		select {
		case r.tcpSem <- struct{}{}:
		default:
			r.dropped.Add(1)
			c.Close()
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() { // joined by wg before ServeTCP returns
			defer wg.Done()
			defer func() { <-r.tcpSem }()
			r.serveConn(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

// serveConn answers length-prefixed queries on c, one at a time, until c
// is idle for tcpIdle, sends something malformed, or ctx ends.
func (r *Resolver) serveConn(ctx context.Context, c net.Conn) {
	var lenBuf [2]byte
	buf := make([]byte, MaxQuery)
	for ctx.Err() == nil {
		c.SetDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if n > MaxQuery {
			r.dropped.Add(1)
			return
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		if !r.acquire() {
			return
		}
		resp := r.Respond(ctx, buf[:n], true)
		r.release()
		if resp == nil {
			return
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// allowed applies Config.Allow, counting and logging what it refuses (the
// first refusal, then every 1000th, so a flood does not flood the log).
func (r *Resolver) allowed(src netip.Addr) bool {
	if r.cfg.Allow(src.Unmap()) {
		return true
	}
	if n := r.refused.Add(1); n%1000 == 1 {
		r.log.Warn("refused a DNS query from outside this host (the resolver serves only local apps)", "src", src, "refused_so_far", n)
	}
	return false
}

func (r *Resolver) acquire() bool {
	select {
	case r.sem <- struct{}{}:
		return true
	default:
		r.dropped.Add(1)
		return false
	}
}

func (r *Resolver) release() { <-r.sem }
