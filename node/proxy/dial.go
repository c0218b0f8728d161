package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errServerClosed ends a connection whose dial finished after Close.
var errServerClosed = errors.New("proxy: server closed")

// dialTarget resolves host (unless it is an IP literal) through the node's
// Resolver and dials it through the node's Dialer, both within DialTimeout.
// The returned conn is tracked; the caller releases it with closeConn.
func (s *Server) dialTarget(host string, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addr, err = s.cfg.Resolve(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", displayHost(host), err)
		}
	}
	ap := netip.AddrPortFrom(addr, port)
	c, err := s.cfg.Dial(ctx, "tcp", ap)
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, errServerClosed
		}
		return nil, fmt.Errorf("dial %s: %w", ap, err)
	}
	if !s.track(c) {
		return nil, errServerClosed
	}
	return c, nil
}

// failure is why a target could not be reached, as the proxies report it.
type failure int

const (
	failGeneral failure = iota
	failUnknownHost
	failRefused
	failTimeout
	failHostUnreachable
	failNetUnreachable
)

// classify maps a dialTarget error to a failure.
func classify(err error) failure {
	var ne net.Error
	switch {
	case errors.Is(err, ErrUnknownHost):
		return failUnknownHost
	case errors.Is(err, syscall.ECONNREFUSED),
		// gVisor's netstack reports a refusal only as text.
		strings.Contains(err.Error(), "connection was refused"),
		strings.Contains(err.Error(), "connection refused"):
		return failRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return failTimeout
	case errors.Is(err, syscall.EHOSTUNREACH):
		return failHostUnreachable
	case errors.Is(err, syscall.ENETUNREACH):
		return failNetUnreachable
	}
	return failGeneral
}

// displayHost makes a client-supplied host safe to show in a log line or
// an error body: printable ASCII as is, anything else quoted, and at most
// 255 bytes.
func displayHost(h string) string {
	if len(h) > 255 {
		h = h[:255]
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] > '~' {
			return strconv.Quote(h)
		}
	}
	return h
}

// bufPool holds splice buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// splice copies client→upstream and upstream→client until both directions
// end, half-closing each side's write when its source reaches EOF, and
// counts the bytes. clientR and upR read from client and upstream (they
// differ from the conns when a handshake left bytes buffered). It returns
// when both copies are done; the caller closes the conns.
func (s *Server) splice(client net.Conn, clientR io.Reader, upstream net.Conn, upR io.Reader) {
	done := make(chan struct{})
	go func() { // joined below
		defer close(done)
		pipe(client, upR, upstream, &s.bytesIn)
	}()
	pipe(upstream, clientR, client, &s.bytesOut)
	<-done
}

// pipe copies src to dst. At EOF it half-closes dst (or closes it if it
// can't half-close); on an error it closes both, so the other direction
// ends too.
func pipe(dst net.Conn, src io.Reader, srcConn net.Conn, n *atomic.Uint64) {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	_, err := io.CopyBuffer(writerOnly{dst}, countingReader{src, n}, *bufp)
	if err != nil {
		_ = dst.Close()
		_ = srcConn.Close()
		return
	}
	closeWrite(dst)
}

// closeWrite half-closes c if it can, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	_ = c.Close()
}

// lingerClose gives the client a chance to read a final error reply: it
// half-closes c and discards what the client still sends, briefly, so
// closing with unread input doesn't reset the connection before the reply
// is read. The caller closes c afterwards.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 256<<10))
}

// countingReader adds what it reads to n.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(uint64(k))
	return k, err
}

// countingWriter adds what it writes to n.
type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n.Add(uint64(k))
	return k, err
}

// writerOnly hides a conn's ReadFrom so io.CopyBuffer uses our buffer and
// our counting reader.
type writerOnly struct{ io.Writer }
