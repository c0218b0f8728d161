package expose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// Identity headers http-identity mode sets (and removes, with every other
// Warren-* header, from what the client sent).
const (
	HeaderUserLogin = "Warren-User-Login" // the owner's login; absent for tagged nodes
	HeaderUserName  = "Warren-User-Name"  // the display name, RFC 2047 Q-encoded when not ASCII
	HeaderNode      = "Warren-Node"       // the connecting node's name
	HeaderTags      = "Warren-Tags"       // comma-separated tags; absent for a user's node
)

// Limits of the HTTP server in http-identity mode.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	shutdownGrace     = 2 * time.Second
)

// identityProxy terminates HTTP from mesh clients and reverse-proxies it
// to the target with identity headers.
type identityProxy struct {
	cfg    Config
	target *url.URL
	log    *slog.Logger
	rp     *httputil.ReverseProxy
	// buffers are the reverse proxy's copy buffers, shared by requests.
	buffers bufferPool

	mu       sync.Mutex
	closed   bool
	meshes   map[net.Conn]*meshConn // by the server's conn
	upstream map[*upConn]struct{}   // every open connection to the target
	running  sync.WaitGroup         // handlers
}

// meshConn is one mesh client connection; its requests go over its own
// connections to the target, so each connection the service sees carries
// one mesh client (whois answers for it).
type meshConn struct {
	src    netip.AddrPort
	tr     *http.Transport
	mu     sync.Mutex
	closed bool
}

type meshConnKey struct{}
type nodeKey struct{}

func serveHTTP(ctx context.Context, ln net.Listener, cfg Config) error {
	p := &identityProxy{cfg: cfg, target: &url.URL{Scheme: "http", Host: cfg.Target}, log: cfg.Logger,
		meshes: make(map[net.Conn]*meshConn), upstream: make(map[*upConn]struct{})}
	errLog := slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     roundTripper(func(r *http.Request) (*http.Response, error) { return meshOf(r.Context()).tr.RoundTrip(r) }),
		FlushInterval: -1,
		ErrorLog:      errLog,
		BufferPool:    &p.buffers,
	}
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext:       p.connContext,
		ConnState:         p.connState,
		ErrorLog:          errLog,
	}
	ll := newLimitListener(ln, cfg.MaxConns)
	served, done := make(chan struct{}), make(chan struct{})
	go func() { // joined below
		defer close(done)
		select {
		case <-ctx.Done():
		case <-served:
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = srv.Close()
		p.closeUpstream() // ends upgraded (hijacked) streams too
	}()
	err := srv.Serve(ll)
	close(served)
	<-done
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.running.Wait()
	p.closeUpstream()
	if errors.Is(err, http.ErrServerClosed) || ctx.Err() != nil {
		return nil
	}
	return err
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func meshOf(ctx context.Context) *meshConn { return ctx.Value(meshConnKey{}).(*meshConn) }

// connContext gives each mesh connection its own transport to the target.
func (p *identityProxy) connContext(ctx context.Context, c net.Conn) context.Context {
	m := &meshConn{src: addrPort(c.RemoteAddr())}
	var dialer net.Dialer
	m.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return p.dial(ctx, &dialer, m)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     idleTimeout,
	}
	p.mu.Lock()
	p.meshes[c] = m
	p.mu.Unlock()
	return context.WithValue(ctx, meshConnKey{}, m)
}

// connState lets a mesh connection's idle target connections go with it.
func (p *identityProxy) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	p.mu.Lock()
	m := p.meshes[c]
	delete(p.meshes, c)
	p.mu.Unlock()
	if m != nil {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.tr.CloseIdleConnections()
	}
}

// dial connects to the target for mesh client m and records the
// connection for whois.
func (p *identityProxy) dial(ctx context.Context, d *net.Dialer, m *meshConn) (net.Conn, error) {
	n, ok := p.cfg.Peer(m.src.Addr())
	if !ok {
		return nil, fmt.Errorf("source %s is not in the netmap", m.src)
	}
	c, err := d.DialContext(ctx, "tcp", p.cfg.Target)
	if err != nil {
		return nil, err
	}
	u := &upConn{Conn: c, p: p}
	u.release = p.cfg.Conns.add(addrPort(c.LocalAddr()), Conn{Src: m.src, Node: n.ID, Port: p.cfg.Port, Mode: HTTPIdentity})
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.upstream[u] = struct{}{}
	}
	p.mu.Unlock()
	if closed {
		u.Close()
		return nil, errors.New("expose: shutting down")
	}
	return u, nil
}

func (p *identityProxy) closeUpstream() {
	p.mu.Lock()
	p.closed = true
	ups := make([]*upConn, 0, len(p.upstream))
	for u := range p.upstream {
		ups = append(ups, u)
	}
	p.mu.Unlock()
	for _, u := range ups {
		u.Close()
	}
}

// upConn is a connection to the target; closing it forgets it.
type upConn struct {
	net.Conn
	p       *identityProxy
	release func()
	once    sync.Once
}

func (u *upConn) Close() error {
	err := u.Conn.Close()
	u.once.Do(func() {
		u.release()
		u.p.mu.Lock()
		delete(u.p.upstream, u)
		u.p.mu.Unlock()
	})
	return err
}

// ServeHTTP proxies one request from a mesh client.
func (p *identityProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	p.running.Add(1)
	p.mu.Unlock()
	defer p.running.Done()
	m := meshOf(r.Context())
	n, ok := p.cfg.Peer(m.src.Addr())
	if !ok {
		p.log.Warn("http-identity: source not in the netmap; refused", "src", m.src.String())
		http.Error(w, "Forbidden: this node does not know the connecting node", http.StatusForbidden)
		return
	}
	// A recorder answers before a streamed upload ends: let the response
	// go out while the request body still flows.
	_ = http.NewResponseController(w).EnableFullDuplex()
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nodeKey{}, n)))
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed { // the client went while the response was still being copied
		m.tr.CloseIdleConnections()
	}
}

// rewrite points the request at the target and replaces every identity
// header with the netmap's.
func (p *identityProxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.target)
	pr.Out.Host = pr.In.Host
	// Rewrite mode already removed X-Forwarded-For, -Host and -Proto.
	for k := range pr.Out.Header {
		if l := strings.ToLower(k); strings.HasPrefix(l, "warren-") || l == "forwarded" {
			delete(pr.Out.Header, k)
		}
	}
	n := pr.In.Context().Value(nodeKey{}).(wire.Node)
	SetIdentity(pr.Out.Header, n)
	pr.Out.Header.Set("X-Forwarded-For", meshOf(pr.In.Context()).src.Addr().String())
}

// SetIdentity sets the identity headers for node n on h: Warren-Node, and
// Warren-Tags for a tagged node or Warren-User-Login and Warren-User-Name
// for a user's.
func SetIdentity(h http.Header, n wire.Node) {
	h.Set(HeaderNode, n.Name)
	if len(n.Tags) > 0 {
		h.Set(HeaderTags, strings.Join(n.Tags, ","))
		return
	}
	h.Set(HeaderUserLogin, n.User)
	if n.UserName != "" {
		h.Set(HeaderUserName, mime.QEncoding.Encode("utf-8", n.UserName))
	}
}

// limitListener admits at most n connections at once: Accept waits for
// one to close.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, sem: l.sem}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	sem  chan struct{}
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.sem })
	return err
}

// bufferPool shares copy buffers between requests.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
