package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/engine"
	"github.com/warrenmesh/warren/node/expose"
	"github.com/warrenmesh/warren/node/sshserver"
	"github.com/warrenmesh/warren/node/state"
)

// session is one run of the control client and the data plane it feeds,
// from up (or start) to down, logout or a permanent refusal.
type session struct {
	d      *Daemon
	st     state.State
	client *controlclient.Client
	cancel context.CancelFunc
	ctx    context.Context

	// provisional is set while the session is Daemon.pending: not yet the
	// node's, so it must not touch what belongs to the running session.
	provisional atomic.Bool

	firstMap     chan struct{} // closed on the first netmap
	firstMapOnce sync.Once
	loginURLs    chan string   // sign-in URLs for a waiting Up (latest only)
	netChanged   chan struct{} // the network changed: collect posture again
	done         chan struct{} // closed when everything has stopped

	mu       sync.Mutex // guards eng, nm, dirty, err and loginURL
	loginURL string     // the coordinator's sign-in URL while no netmap came
	eng      *engine.Engine
	dns      *meshDNS              // MagicDNS in TUN mode, started and stopped with eng
	nm       *controlclient.Netmap // applied to eng; from the coordinator or the cache
	dirty    bool                  // nm not yet in the cache file
	err      error
	ssh      *sshserver.Server // warrend --ssh; nil before the first data plane
	helpers  sync.WaitGroup    // endpoint refresher, inbound forwards, posture reporter, SSH
}

// newSession starts a session. With resume set it first applies the
// cached netmap, if any, so the tunnels come back even while the
// coordinator is unreachable. A provisional session runs beside the
// node's session and must be promoted (Daemon.promote) on its first
// netmap before it starts a data plane.
func newSession(d *Daemon, st state.State, resume, provisional bool) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{d: d, st: st, ctx: ctx, cancel: cancel,
		firstMap: make(chan struct{}), done: make(chan struct{}), loginURLs: make(chan string, 1),
		netChanged: make(chan struct{}, 1)}
	s.provisional.Store(provisional)
	cc, err := controlclient.New(controlclient.Config{
		URL: st.Coordinator, ControlKey: st.ControlKey, Machine: st.MachineKey,
		NodeKey: st.NodeKey.Public(), DiscoKey: st.DiscoKey.Public(),
		Hostname: st.Hostname, OS: runtime.GOOS, AuthKey: st.AuthKey, Tags: st.Tags,
		AdvertiseRoutes: st.Advertised(),
		OnNetmap:        s.onNetmap, OnLoginURL: s.onLoginURL, Logger: d.log.With("part", "control"), HTTPClient: d.cfg.HTTPClient,
		MinBackoff: d.cfg.MinBackoff, MaxBackoff: d.cfg.MaxBackoff,
		Flows: d.flowSource(),
	})
	if err != nil { // only on programming errors: the state was validated
		s.err = err
		close(s.done)
		d.sessionEnded(s, err)
		return s
	}
	s.client = cc
	if resume {
		nm, err := loadNetmap(d.cfg.StateDir, st.Coordinator, st.NodeKey.Public())
		switch {
		case err != nil:
			d.log.Warn("netmap cache unusable", "err", err)
		case nm != nil:
			d.log.Info("starting from the cached netmap until the coordinator answers", "peers", len(nm.Peers))
			s.apply(nm, false)
		}
	}
	s.helpers.Add(2)
	go s.saveCache()     // ends with the session
	go s.reportPosture() // ends with the session
	go s.run()           // owns the client and the engine; ends with s.done
	return s
}

func (s *session) run() {
	defer close(s.done)
	err := s.client.Run(s.ctx)
	s.cancel()
	s.helpers.Wait()
	if perm := (*controlclient.PermanentError)(nil); errors.As(err, &perm) && !s.provisional.Load() {
		_ = os.Remove(filepath.Join(s.d.cfg.StateDir, netmapCacheFile)) // refused: the map is void
	}
	s.mu.Lock()
	if s.eng != nil {
		s.closeEngine(s.eng, s.dns)
		s.eng, s.dns = nil, nil
	}
	if s.err == nil && (s.ctx.Err() == nil || !errors.Is(err, context.Canceled)) {
		s.err = err
	}
	final := s.err
	s.mu.Unlock()
	if final != nil && !errors.Is(final, context.Canceled) {
		s.d.sessionEnded(s, final)
	}
}

// fail ends the session with err (the first one recorded wins), as if the
// control client had returned it.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.cancel()
}

// stop ends the session and waits until its engine is closed.
func (s *session) stop() {
	s.cancel()
	<-s.done
}

func (s *session) runErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return errors.New("session stopped")
	}
	return s.err
}

// magicDNS returns the session's MagicDNS; nil in userspace mode and
// before the data plane is up.
func (s *session) magicDNS() *meshDNS {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dns
}

func (s *session) engine() *engine.Engine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eng
}

// netmap returns the netmap the data plane runs on.
func (s *session) netmap() *controlclient.Netmap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nm
}

// onNetmap runs on the control client's goroutine with each netmap from
// the coordinator.
func (s *session) onNetmap(nm *controlclient.Netmap) { s.apply(nm, true) }

// apply starts the engine on the first netmap (the node learns its
// addresses there) and applies every netmap to it. fresh is false for the
// cached netmap of a resumed session.
func (s *session) apply(nm *controlclient.Netmap, fresh bool) {
	if s.provisional.Load() && !s.d.promote(s) {
		return // abandoned: being stopped
	}
	s.mu.Lock()
	eng := s.eng
	s.mu.Unlock()
	if eng != nil && !slices.Equal(eng.Addresses(), nm.Self.Addresses) {
		s.d.log.Warn("mesh addresses changed; restarting the data plane", "addresses", nm.Self.Addresses)
		s.mu.Lock()
		dns := s.dns
		s.eng, s.dns = nil, nil
		s.mu.Unlock()
		s.closeEngine(eng, dns)
		eng = nil
	}
	if eng == nil {
		var err error
		eng, err = s.startEngine(nm)
		if err != nil {
			// Nothing would ever carry traffic: end the session with the
			// real error, so a waiting Up fails at once and status says why.
			s.d.log.Error("start data plane", "err", err)
			s.fail(fmt.Errorf("start the data plane: %w", err))
			return
		}
	}
	eng.SetDERPMap(nm.DERPMap)
	eng.SetSelf(nm.Self)
	eng.SetServedRoutes(nm.Self.Routes)
	exit, _ := s.exitNode(nm)
	if err := eng.SetExitNode(exit.NodeKey, s.st.ExitNode != "", s.st.ExitNodeAllowLAN); err != nil {
		s.d.log.Error("exit node: routing", "err", err)
	}
	if err := eng.SetNetmap(nm.Peers, nm.PacketFilter); err != nil {
		s.d.log.Error("apply netmap", "err", err)
	}
	s.sshNetmap(nm)
	s.mu.Lock()
	dns := s.dns
	s.mu.Unlock()
	if dns != nil {
		dns.update(nm, s.d.cfg.TUN)
	}
	s.mu.Lock()
	s.nm, s.dirty = nm, fresh
	s.mu.Unlock()
	if !fresh {
		return
	}
	s.firstMapOnce.Do(func() {
		s.d.registered(s, eng.Port())
		close(s.firstMap)
	})
}

// onLoginURL records the sign-in URL and hands it to a waiting Up.
func (s *session) onLoginURL(url string) {
	s.mu.Lock()
	s.loginURL = url
	s.mu.Unlock()
	select {
	case <-s.loginURLs: // drop a stale one
	default:
	}
	s.loginURLs <- url
}

func (s *session) startEngine(nm *controlclient.Netmap) (*engine.Engine, error) {
	cfg := engine.Config{NodeKey: s.st.NodeKey, DiscoKey: s.st.DiscoKey, Addresses: nm.Self.Addresses, TUN: s.d.cfg.TUN, UAPIName: s.d.cfg.WGName,
		Router: len(s.st.Advertised()) > 0, NoSNAT: s.d.cfg.NoSNATSubnetRoutes, KeepOut: coordinatorAddrs(s.st.Coordinator),
		Logger: s.d.log.With("part", "engine"), ListenPort: s.d.cfg.ListenPort,
		LocalEndpoints: s.d.endpoints, OnEndpoints: s.onEndpoints, EndpointInterval: s.d.cfg.EndpointInterval,
		RelayOnly: s.d.cfg.RelayOnly}
	if s.d.flows != nil {
		cfg.FlowSink = s.d.flows.Append
	}
	if cfg.TUN != "" {
		cfg.ServiceAddrs = serviceAddrs
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = s.st.ListenPort
	}
	eng, err := engine.New(cfg)
	if err != nil && cfg.ListenPort != 0 && s.d.cfg.ListenPort == 0 {
		s.d.log.Warn("last run's UDP port is taken; picking another", "port", cfg.ListenPort, "err", err)
		cfg.ListenPort = 0
		eng, err = engine.New(cfg)
	}
	if err != nil {
		return nil, err
	}
	var dns *meshDNS
	if s.d.cfg.TUN != "" {
		if dns, err = s.startDNS(eng, nm); err != nil {
			eng.Close()
			return nil, err
		}
	}
	s.mu.Lock()
	s.eng, s.dns = eng, dns
	s.mu.Unlock()
	s.d.log.Info("data plane up", "addresses", nm.Self.Addresses, "port", eng.Port(), "mode", s.d.mode(), "device", eng.TUNName())
	for _, e := range s.d.cfg.Expose {
		ln, err := eng.ListenTCP(e.Port)
		if err != nil {
			s.d.log.Error("expose: listen on the mesh address", "port", e.Port, "err", err)
			continue
		}
		s.helpers.Add(1)
		go s.expose(ln, e) // ends with the session
	}
	s.startSSH(eng)
	return eng, nil
}

// closeEngine stops MagicDNS (restoring the system's DNS settings) and
// then the engine, whose TUN device carries the service addresses.
func (s *session) closeEngine(eng *engine.Engine, dns *meshDNS) {
	if dns != nil {
		dns.stop()
	}
	eng.Close()
}

// saveCache writes the netmap to the cache file when it changed, at most
// every few seconds, and once more when the session ends.
func (s *session) saveCache() {
	defer s.helpers.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.flushCache()
			return
		case <-t.C:
			s.flushCache()
		}
	}
}

func (s *session) flushCache() {
	s.mu.Lock()
	nm, dirty := s.nm, s.dirty
	s.dirty = false
	s.mu.Unlock()
	if !dirty || nm == nil {
		return
	}
	c := cachedNetmap{Coordinator: s.st.Coordinator, NodeKey: s.st.NodeKey.Public(), Netmap: nm}
	if err := saveNetmap(s.d.cfg.StateDir, c); err != nil {
		s.d.log.Warn("save netmap cache", "err", err)
	}
}

// expose forwards inbound mesh connections on ln to e.Target on the host.
func (s *session) expose(ln net.Listener, e Expose) {
	defer s.helpers.Done()
	log := s.d.log.With("part", "expose", "port", e.Port, "target", e.Target, "mode", e.Mode.String())
	log.Info("forwarding inbound mesh connections")
	err := expose.Serve(s.ctx, ln, expose.Config{Port: e.Port, Target: e.Target, Mode: e.Mode,
		Peer: s.peerAt, Conns: &s.d.exposed, Logger: log})
	if err != nil {
		log.Error("inbound forward stopped", "err", err)
	}
}

// peerAt returns the netmap's peer holding mesh address a.
func (s *session) peerAt(a netip.Addr) (wire.Node, bool) {
	nm := s.netmap()
	if nm == nil {
		return wire.Node{}, false
	}
	return nm.PeerByAddr(a)
}

// coordinatorAddrs returns the coordinator's address when its URL names
// it by IP, for the engine to keep out of subnet routes (a name is not
// resolved: the engine asks on every netmap, and that must not block).
func coordinatorAddrs(coordURL string) func() []netip.Addr {
	u, err := url.Parse(coordURL)
	if err != nil {
		return nil
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return nil
	}
	return func() []netip.Addr { return []netip.Addr{a.Unmap()} }
}
