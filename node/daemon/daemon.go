// Package daemon is warrend's core: it keeps the node's identity (package
// state), follows the coordinator (package controlclient), runs the data
// plane (package engine), resolves Warren names, and serves local apps
// through the proxy and inbound port forwards. The local API (package
// localapi) drives it.
//
// Control operations (up, down, logout) are serialised; the control
// client's goroutine owns each session's engine, created on the session's
// first netmap and closed when the session ends. A session under a new
// node key (a re-auth) runs beside the node's session until its first
// netmap and only then replaces it, so a sign-in that never comes leaves
// the node as it was. The node keeps working on
// its last netmap while the coordinator is unreachable.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/atomicfile"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/engine"
	"github.com/warrenmesh/warren/node/expose"
	"github.com/warrenmesh/warren/node/flowspool"
	"github.com/warrenmesh/warren/node/localapi"
	"github.com/warrenmesh/warren/node/osdns"
	"github.com/warrenmesh/warren/node/posture"

	"github.com/warrenmesh/warren/node/state"
)

// Expose forwards inbound mesh connections to a port of the node's mesh
// address to a TCP address on the host (servers in userspace mode).
type Expose struct {
	Port   uint16 // port on the mesh address
	Target string // host:port to connect to, e.g. 127.0.0.1:5432
	// Mode is how the service learns who is calling: plain TCP (the
	// zero value), a PROXY v2 header, or HTTP identity headers.
	Mode expose.Mode
}

// Config configures a Daemon.
type Config struct {
	// StateDir holds the 0600 state file; required.
	StateDir string
	// TUN names a kernel TUN device to use (root); empty is userspace.
	TUN string
	// WGName names the WireGuard UAPI socket the data plane serves for
	// wg(8) and wgctrl (/var/run/wireguard/NAME.sock); empty: none.
	WGName string
	// DNSMethod is how kernel TUN mode points the system's DNS at
	// MagicDNS for the mesh's domains: an osdns.Method, "" for the OS's
	// own (systemd-resolved or resolv.conf on Linux), or DNSOff.
	DNSMethod string
	// ResolvConf is the resolv.conf the resolv.conf method manages;
	// default /etc/resolv.conf.
	ResolvConf string
	// ListenPort is the WireGuard UDP port; 0 keeps the port of the last
	// run, or picks one.
	ListenPort uint16
	// Endpoints, if set, are advertised instead of this host's interface
	// addresses (with the listen port filled in where it is 0).
	Endpoints []netip.AddrPort
	// Expose lists inbound forwards.
	Expose []Expose
	// SSH runs the SSH server (package sshserver) on port 22 of the mesh
	// addresses: peers log in by mesh identity as the policy's ssh rules
	// allow. Logging in as other users needs warrend to run as root.
	SSH bool
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
	// HTTPClient fetches the coordinator's key and dials the control
	// channel; nil means a client with sane timeouts.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound control reconnects (defaults in
	// controlclient).
	MinBackoff, MaxBackoff time.Duration
	// EndpointInterval is how often interface addresses are re-read;
	// default 30 s.
	EndpointInterval time.Duration
	// RelayOnly sends all traffic through relays (no direct paths); for
	// networks where direct UDP must not be used.
	RelayOnly bool
	// NoSNATSubnetRoutes keeps the mesh source of what a kernel TUN-mode
	// subnet router forwards (warrend --snat-subnet-routes=false).
	NoSNATSubnetRoutes bool
	// PostureInterval is how often the node collects and reports its
	// posture besides at start and on network changes; default
	// DefaultPostureInterval.
	PostureInterval time.Duration
	// PostureCollect collects the node's posture attributes; nil is
	// package posture's collector for this OS.
	PostureCollect func(context.Context) map[string]wire.PostureValue
	// FlowSpoolSize bounds the spool of flow records waiting for the
	// coordinator, in <StateDir>/flows (0: flowspool.DefaultSize);
	// negative turns flow logs off on this node.
	FlowSpoolSize int64
}

// Daemon is a running node.
type Daemon struct {
	cfg Config
	log *slog.Logger

	ops sync.Mutex // serialises Up, Down, Logout and Close; held across waits

	mu   sync.Mutex // guards the fields below; never held across waits
	st   state.State
	dns  *osdns.Manager // the system's DNS settings (TUN mode's MagicDNS)
	sess *session
	// pending is a session under a new node key that Up started while
	// sess keeps running (a re-auth, a new coordinator); it replaces sess
	// on its first netmap (promote), or Up stops it and sess stays.
	pending    *session
	lastErr    string
	proxyAddrs []string
	closed     bool
	// flows is the spool of flow records (nil: flow logs off); the
	// engine appends, the control client sends and acknowledges.
	flows *flowspool.Spool
	// exposed records the connections --expose made to services, for
	// whois.
	exposed expose.Conns
}

// flowSpoolDir is the flow spool's directory in the state dir.
const flowSpoolDir = "flows"

// New loads (or creates) the node's state. Run starts it.
func New(cfg Config) (*Daemon, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("daemon: state directory required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.HTTPClient == nil && cfg.TUN != "":
		// The control connection keeps out of the exit-node routing.
		cfg.HTTPClient = engine.MarkedHTTPClient(30 * time.Second)
	case cfg.HTTPClient == nil:
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.EndpointInterval <= 0 {
		cfg.EndpointInterval = 30 * time.Second
	}
	if cfg.PostureInterval <= 0 {
		cfg.PostureInterval = DefaultPostureInterval
	}
	if cfg.PostureCollect == nil {
		cfg.PostureCollect = posture.New(posture.Config{}).Collect
	}
	for _, e := range cfg.Expose {
		if e.Port == 0 {
			return nil, fmt.Errorf("daemon: expose: port 0 for %s", e.Target)
		}
		if _, _, err := net.SplitHostPort(e.Target); err != nil {
			return nil, fmt.Errorf("daemon: expose %d: target %q must be host:port: %w", e.Port, e.Target, err)
		}
		if _, err := expose.ParseMode(string(e.Mode)); err != nil {
			return nil, fmt.Errorf("daemon: expose %d: %w", e.Port, err)
		}
	}
	st, err := state.Load(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	// A warrend killed mid-write (kill -9, power loss) leaves temporary
	// files of its atomic writes; nothing is writing them now.
	removed, err := atomicfile.RemoveStale(cfg.StateDir, state.FileName, netmapCacheFile)
	if len(removed) > 0 {
		cfg.Logger.Info("removed temporary files of an interrupted write", "dir", cfg.StateDir, "files", removed)
	}
	if err != nil {
		cfg.Logger.Warn("remove temporary files of an interrupted write", "dir", cfg.StateDir, "err", err)
	}
	switch osdns.Method(cfg.DNSMethod) {
	case "", DNSOff, osdns.MethodResolved, osdns.MethodResolvConf, osdns.MethodResolverDir, osdns.MethodNRPT:
	default:
		return nil, fmt.Errorf("daemon: DNS method %q: want resolved, resolv.conf, resolver-dir, nrpt or off", cfg.DNSMethod)
	}
	// A warrend killed while up in TUN mode left the system's DNS pointing
	// at a resolver that is gone: put it back first.
	method := osdns.Method(cfg.DNSMethod)
	if cfg.DNSMethod == DNSOff {
		method = ""
	}
	dns, err := osdns.New(osdns.Options{StateDir: cfg.StateDir, Method: method, ResolvConf: cfg.ResolvConf, Logger: cfg.Logger.With("part", "osdns")})
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, st: st, dns: dns}
	if cfg.FlowSpoolSize >= 0 {
		// A spool that cannot open costs the flow logs, not the node.
		d.flows, err = flowspool.Open(filepath.Join(cfg.StateDir, flowSpoolDir), cfg.FlowSpoolSize, cfg.Logger.With("part", "flowspool"))
		if err != nil {
			cfg.Logger.Error("flow logs off: spool unusable", "err", err)
		}
	}
	return d, nil
}

// Start resumes the session of the last run if the node was up, unless a
// session runs already (an Up that came through the local API first).
func (d *Daemon) Start() {
	d.ops.Lock()
	defer d.ops.Unlock()
	d.mu.Lock()
	resume := d.st.WantRunning && d.st.Coordinator != "" && !d.closed && d.sess == nil
	d.mu.Unlock()
	if resume {
		d.log.Info("resuming", "coordinator", d.st.Coordinator)
		d.startSession(true)
	}
}

// Close stops the session (keeping WantRunning, so the next start
// resumes) and the proxies.
func (d *Daemon) Close() error {
	d.ops.Lock()
	defer d.ops.Unlock()
	d.mu.Lock()
	d.closed = true
	s := d.sess
	d.sess = nil
	d.mu.Unlock()
	if s != nil {
		s.stop()
	}
	if d.flows != nil {
		return d.flows.Close()
	}
	return nil
}

// NodeKey returns the node's current public key.
func (d *Daemon) NodeKey() key.NodePublic {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.NodeKey.Public()
}

// Up implements localapi.Backend.
func (d *Daemon) Up(ctx context.Context, req localapi.UpRequest, progress func(string)) (localapi.Status, error) {
	d.ops.Lock()
	defer d.ops.Unlock()
	if progress == nil {
		progress = func(string) {}
	}
	d.mu.Lock()
	st := d.st
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return localapi.Status{}, errors.New("warrend is shutting down")
	}
	url := strings.TrimRight(req.Coordinator, "/")
	if url == "" {
		url = st.Coordinator
	}
	if url == "" {
		return localapi.Status{}, errors.New("no coordinator: pass --coordinator URL (the first time, and after warren logout)")
	}
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		return localapi.Status{}, fmt.Errorf("coordinator %q must be an http(s):// URL", url)
	}
	var ckey key.ControlPublic
	switch {
	case req.ControlKey != "":
		k, err := key.ParsePublic[key.ControlKind](req.ControlKey)
		if err != nil {
			return localapi.Status{}, fmt.Errorf("coordinator key: %w", err)
		}
		ckey = k
	case url == st.Coordinator && !st.ControlKey.IsZero():
		ckey = st.ControlKey
	default:
		progress("fetching the coordinator's key from " + url + "/key")
		k, err := controlclient.FetchKey(ctx, d.cfg.HTTPClient, url)
		if err != nil {
			return localapi.Status{}, fmt.Errorf("fetch coordinator key: %w", err)
		}
		ckey = k
		progress("pinned coordinator key " + k.String())
	}
	if st.Coordinator != "" && (url != st.Coordinator || ckey != st.ControlKey) {
		progress("switching coordinators: using a new node key")
		st.NodeKey, st.DiscoKey = key.NewNode(), key.NewDisco()
	}
	if st.Coordinator != "" && (req.Reauth || d.selfExpired()) {
		progress("re-authenticating with a new node key (same machine key and address)")
		st.NodeKey, st.DiscoKey, st.AuthKey = key.NewNode(), key.NewDisco(), ""
	}
	st.Coordinator, st.ControlKey, st.WantRunning = url, ckey, true
	if req.AuthKey != "" {
		st.AuthKey = req.AuthKey
	}
	if req.Hostname != "" {
		st.Hostname = req.Hostname
	}
	if st.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "node"
		}
		st.Hostname = h
	}
	if req.Tags != nil {
		st.Tags = slices.Clone(req.Tags)
	}
	if req.AdvertiseRoutes != nil {
		rs, err := routes.Check(*req.AdvertiseRoutes)
		if err == nil && slices.ContainsFunc(rs, routes.IsExit) {
			err = fmt.Errorf("%w: advertise an exit node with --advertise-exit-node, not with its routes", routes.ErrInvalid)
		}
		if err != nil {
			return localapi.Status{}, err
		}
		st.AdvertiseRoutes = rs
	}
	if req.AdvertiseExitNode != nil {
		st.AdvertiseExitNode = *req.AdvertiseExitNode
	}
	if req.ExitNode != nil {
		if strings.TrimSpace(*req.ExitNode) != "" {
			if err := engine.CheckExitNode(d.cfg.TUN != ""); err != nil {
				return localapi.Status{}, err
			}
		}
		if err := d.validExitChoice(*req.ExitNode); err != nil {
			return localapi.Status{}, err
		}
		st.ExitNode = strings.TrimSpace(*req.ExitNode)
	}
	if req.ExitNodeAllowLANAccess != nil {
		st.ExitNodeAllowLAN = *req.ExitNodeAllowLANAccess
	}
	if old := d.current(); old != nil && st.NodeKey.Public() != d.NodeKey() && old.netmap() != nil {
		return d.upBeside(ctx, old, st, progress)
	}
	if err := state.Save(d.cfg.StateDir, st); err != nil {
		return localapi.Status{}, err
	}
	d.mu.Lock()
	d.st = st
	old := d.sess
	d.sess = nil
	d.lastErr = ""
	d.mu.Unlock()
	if old != nil {
		progress("restarting the session with the new settings")
		old.stop()
	}
	progress("connecting to " + url + " as " + st.Hostname)
	s := d.startSession(false)
	for {
		select {
		case <-s.firstMap:
			return d.joined(ctx, s, progress), nil
		case url := <-s.loginURLs:
			progress("to finish joining, sign in at: " + url)
		case <-s.done:
			return localapi.Status{}, s.runErr()
		case <-ctx.Done():
			return localapi.Status{}, fmt.Errorf("still connecting (the node keeps trying; see warren status): %w", ctx.Err())
		}
	}
}

// upBeside joins under st, whose node key is new, while the running
// session old keeps the node in the mesh: the new session replaces old
// only once it is in (a re-auth someone completed, a new coordinator that
// took the key). If it is refused, or nobody signs in before ctx ends,
// the node stays as it was: same session, key and state file. Callers
// hold d.ops.
func (d *Daemon) upBeside(ctx context.Context, old *session, st state.State, progress func(string)) (localapi.Status, error) {
	progress("connecting to " + st.Coordinator + " as " + st.Hostname + "; the current session stays up until this one is in")
	d.mu.Lock()
	s := newSession(d, st, false, true)
	d.pending = s
	d.mu.Unlock()
	defer d.dropPending(s)
	for {
		select {
		case <-s.firstMap:
			return d.joined(ctx, s, progress), nil
		case url := <-s.loginURLs:
			progress("to finish joining, sign in at: " + url)
		case <-s.done:
			if !d.dropPending(s) { // promoted, then failed
				return localapi.Status{}, s.runErr()
			}
			return localapi.Status{}, fmt.Errorf("%w (this node keeps its current session and key)", s.runErr())
		case <-ctx.Done():
			if !d.dropPending(s) {
				// Promoted meanwhile: it is the node's session now.
				return localapi.Status{}, fmt.Errorf("still connecting (the node keeps trying; see warren status): %w", ctx.Err())
			}
			return localapi.Status{}, fmt.Errorf("not signed in in time, so this node keeps its current session and key (run the command again to retry): %w", ctx.Err())
		}
	}
}

// dropPending stops s if it is still the pending session and reports
// whether it was.
func (d *Daemon) dropPending(s *session) bool {
	d.mu.Lock()
	drop := d.pending == s
	if drop {
		d.pending = nil
	}
	d.mu.Unlock()
	if drop {
		s.stop()
	}
	return drop
}

// promote makes the pending session s, which just got its first netmap,
// the node's session, and stops the one it replaces (freeing the data
// plane's port for s). It runs on s's control goroutine and reports false
// when s is no longer pending (Up gave up on it).
func (d *Daemon) promote(s *session) bool {
	d.mu.Lock()
	if d.pending != s {
		d.mu.Unlock()
		return false
	}
	old := d.sess
	d.pending, d.sess, d.st, d.lastErr = nil, s, s.st, ""
	s.provisional.Store(false)
	d.mu.Unlock()
	if old != nil {
		old.stop()
	}
	d.log.Info("the new session is in; the previous one stopped", "nodeKey", s.st.NodeKey.Public())
	return true
}

// joined reports the first netmap of session s.
func (d *Daemon) joined(ctx context.Context, s *session, progress func(string)) localapi.Status {
	nm := s.netmap()
	progress(fmt.Sprintf("registered as %s (%s)", nm.Self.Name, joinPrefixes(nm.Self.Addresses)))
	if s.st.ExitNode != "" {
		if p, err := findExit(nm, s.st.ExitNode); err != nil {
			progress("warning: " + err.Error() + "; non-mesh traffic goes nowhere until it is one (warren up --exit-node= stops using one)")
		} else {
			progress("sending non-mesh traffic through exit node " + p.Name)
		}
	}
	return d.Status(ctx)
}

// Down implements localapi.Backend.
func (d *Daemon) Down(ctx context.Context) error {
	d.ops.Lock()
	defer d.ops.Unlock()
	return d.stopWith(func(st *state.State) { st.WantRunning = false })
}

// stopWith stops the session, then saves the state as change leaves it.
// Disconnecting comes first and never depends on the disk: on a full or
// read-only state directory the node is still down (in memory), and the
// error says that only saving failed. Callers hold d.ops.
func (d *Daemon) stopWith(change func(*state.State)) error {
	d.mu.Lock()
	st := d.st
	change(&st)
	d.st = st
	s := d.sess
	d.sess = nil
	d.lastErr = ""
	d.mu.Unlock()
	if s != nil {
		s.stop()
	}
	if err := state.Save(d.cfg.StateDir, st); err != nil {
		return fmt.Errorf("disconnected, but could not save that in %s, so warrend would reconnect if it restarted (free some space there, then run the command again): %w", d.cfg.StateDir, err)
	}
	return nil
}

// Logout implements localapi.Backend: it asks the coordinator to expire
// this node, then forgets the coordinator and the node key, so the next
// up needs a key (or login) again. The machine key stays: re-joining the
// same coordinator brings back the same node and address.
func (d *Daemon) Logout(ctx context.Context) error {
	d.ops.Lock()
	defer d.ops.Unlock()
	if s := d.current(); s != nil && s.client != nil {
		if err := s.client.Logout(); err != nil {
			d.log.Warn("could not tell the coordinator; logging out locally only", "err", err)
		} else {
			select {
			case <-s.done:
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
				d.log.Warn("the coordinator did not confirm the logout; logging out locally only")
			}
		}
	}
	err := d.stopWith(func(st *state.State) {
		st.Coordinator, st.ControlKey, st.AuthKey, st.Tags, st.WantRunning = "", key.ControlPublic{}, "", nil, false
		st.NodeKey, st.DiscoKey = key.NewNode(), key.NewDisco()
	})
	if err := os.Remove(filepath.Join(d.cfg.StateDir, netmapCacheFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("remove netmap cache", "err", err)
	}
	if err != nil {
		return err
	}
	d.log.Info("logged out: registration and node key forgotten")
	return nil
}

// startSession starts a control session from the current state. Callers
// hold d.ops and no session is running.
func (d *Daemon) startSession(resume bool) *session {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := newSession(d, d.st, resume, false)
	d.sess = s
	return s
}

// sessionEnded records why a session stopped by itself.
func (d *Daemon) sessionEnded(s *session, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sess == s && err != nil {
		d.lastErr = err.Error()
	}
}

// registered clears the pre-auth key (it did its job) and records the
// listen port once the session has its first netmap.
func (d *Daemon) registered(s *session, port uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sess != s {
		return
	}
	st := d.st
	st.AuthKey = ""
	st.ListenPort = port
	if err := state.Save(d.cfg.StateDir, st); err != nil {
		d.log.Error("save state", "err", err)
		return
	}
	d.st = st
}

// selfExpired reports whether the running session's netmap says this
// node's key has expired.
func (d *Daemon) selfExpired() bool {
	s := d.current()
	if s == nil {
		return false
	}
	nm := s.netmap()
	if nm == nil {
		return false
	}
	return nm.Self.Expired || (!nm.Self.KeyExpiry.IsZero() && !time.Now().Before(nm.Self.KeyExpiry))
}

func (d *Daemon) current() *session {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sess
}

func joinPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Addr().String()
	}
	return strings.Join(out, ", ")
}

// flowSource is the spool for the control client (nil when flow logs are
// off: a typed nil would not be).
func (d *Daemon) flowSource() controlclient.FlowSpool {
	if d.flows == nil {
		return nil
	}
	return d.flows
}
