package coordinator

import (
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/warrenmesh/warren/internal/connlimit"
)

// Defaults of ServeLimits.
const (
	DefaultIdleTimeout       = 60 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
)

// ServeLimits bound how long and how many connections clients may hold
// open on the coordinator's listeners. The timeouts apply to plain HTTP
// requests; the websockets (control channel, relay) are exempt once
// upgraded and bounded by their own protocols (handshake bound,
// keep-alives).
type ServeLimits struct {
	// IdleTimeout closes a keep-alive connection that sends no new
	// request for this long (0: 60 s).
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers (0: 10 s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (0: 30 s).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (0: 60 s).
	WriteTimeout time.Duration
	// MaxConnsPerSource caps the connections one IP address holds open on
	// ServeHTTP's listener (0: connlimit.DefaultPerSource; < 0: no cap).
	// Behind a proxy every client has the proxy's address: raise it, or
	// turn it off.
	MaxConnsPerSource int
	// MaxConns caps all connections open on the listener (0:
	// connlimit.DefaultTotal(), below the descriptor limit; < 0: no cap).
	MaxConns int
}

func (l ServeLimits) withDefaults() ServeLimits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&l.IdleTimeout, DefaultIdleTimeout)
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	if l.MaxConnsPerSource == 0 {
		l.MaxConnsPerSource = connlimit.DefaultPerSource
	}
	if l.MaxConns == 0 {
		l.MaxConns = connlimit.DefaultTotal()
	}
	return l
}

// httpServer returns an http.Server for handler with the limits' timeouts.
func (l ServeLimits) httpServer(handler http.Handler) *http.Server {
	return &http.Server{Handler: handler, IdleTimeout: l.IdleTimeout, ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout: l.ReadTimeout, WriteTimeout: l.WriteTimeout}
}

// limitListener wraps ln with the limits' connection caps; connections
// refused are counted as failures of kind "conn.refused".
func (c *Coordinator) limitListener(ln net.Listener) net.Listener {
	l := c.cfg.Limits
	return connlimit.New(ln, connlimit.Config{PerSource: max(l.MaxConnsPerSource, 0), Total: max(l.MaxConns, 0),
		OnRefuse: func(a netip.Addr, reason string) { c.failures.Record("conn.refused", a.String(), reason) }})
}
