package engine

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

// Failover between subnet routers that serve the same prefix.
//
// The netmap's Online flag moves a prefix off a router whose control
// channel closed (the coordinator publishes that at once). A router whose
// network is cut keeps its channel, and its Online flag, until the
// coordinator's keep-alives give up, far too late; so the engine also
// watches the data plane: a router to which packets have gone unanswered
// for demoteAfter is demoted on this node, and its prefixes go to the next
// candidate. A demotion holds (no flapping back) until the router shows
// it came back through the coordinator: a new disco key (it restarted)
// or its Online flag going from false to true.

const (
	// routerTick is how often carrying routers are checked.
	routerTick = 250 * time.Millisecond
	// probeRouterAfter: a router that owes an answer this long gets a
	// handshake initiation, which it answers whatever the path (the
	// relay carries no disco heartbeats).
	probeRouterAfter = time.Second
	// demoteAfter: a router that owes an answer this long is demoted.
	demoteAfter = 2500 * time.Millisecond
)

// routerLiveness is what the failover watch needs of path selection.
type routerLiveness interface {
	Unanswered(k key.NodePublic) time.Duration
}

// rankRouter orders the candidates for a prefix: online and not demoted
// first, then online but demoted (the longest ago first, so that a second
// failure moves back to the first router), then offline.
func rankRouter(p *wire.Node, demoted map[key.NodePublic]time.Time) (int, time.Time) {
	at, d := demoted[p.NodeKey]
	switch {
	case !p.Online:
		return 2, time.Time{}
	case d:
		return 1, at
	}
	return 0, time.Time{}
}

// assignRoutes is SubnetRoutes with this node's demotions.
func assignRoutes(peers []wire.Node, demoted map[key.NodePublic]time.Time) map[netip.Prefix]key.NodePublic {
	better := func(a, b *wire.Node) bool {
		ra, ta := rankRouter(a, demoted)
		rb, tb := rankRouter(b, demoted)
		if ra != rb {
			return ra < rb
		}
		if c := ta.Compare(tb); c != 0 {
			return c < 0
		}
		return a.ID < b.ID
	}
	best := make(map[netip.Prefix]*wire.Node)
	for i := range peers {
		p := &peers[i]
		if p.NodeKey.IsZero() {
			continue
		}
		for _, r := range p.Routes {
			if routes.IsExit(r) || !r.IsValid() {
				continue
			}
			if cur := best[r]; cur == nil || better(p, cur) {
				best[r] = p
			}
		}
	}
	out := make(map[netip.Prefix]key.NodePublic, len(best))
	for r, p := range best {
		out[r] = p.NodeKey
	}
	return out
}

// liftDemotions forgets the demotions of routers that came back, by the
// netmap next against the previous one (prev). Called with e.mu held.
func (e *Engine) liftDemotions(prev, next map[key.NodePublic]wire.Node) {
	for k := range e.demoted {
		n, ok := next[k]
		old := prev[k]
		if !ok || n.DiscoKey != old.DiscoKey || (n.Online && !old.Online) {
			delete(e.demoted, k)
		}
	}
}

// carriersLocked returns the peers that carry a route now. Called with e.mu held.
func (e *Engine) carriersLocked() []key.NodePublic {
	var out []key.NodePublic
	for _, k := range e.routes {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// watchRouters demotes silent routers until ctx ends.
func (e *Engine) watchRouters(ctx context.Context, live routerLiveness, probe func(key.NodePublic)) {
	defer e.wg.Done()
	t := time.NewTicker(routerTick)
	defer t.Stop()
	probed := make(map[key.NodePublic]time.Time)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		carriers := e.carriersLocked()
		e.mu.Unlock()
		now := time.Now()
		for _, k := range carriers {
			w := live.Unanswered(k)
			switch {
			case w >= demoteAfter:
				e.demote(k, w)
			case w >= probeRouterAfter && now.Sub(probed[k]) >= probeRouterAfter:
				probed[k] = now
				probe(k)
			}
		}
		maps.DeleteFunc(probed, func(k key.NodePublic, _ time.Time) bool { return !slices.Contains(carriers, k) })
	}
}

// demote stops using router k for its routes on this node, if another
// candidate serves them.
func (e *Engine) demote(k key.NodePublic, silent time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.peers[k]; !ok {
		return
	}
	e.demoted[k] = time.Now()
	before := e.routes
	if err := e.applyLocked(); err != nil {
		e.log.Error("move routes off a silent router", "err", err)
		return
	}
	var moved []netip.Prefix
	for r, was := range before {
		if was == k && e.routes[r] != k {
			moved = append(moved, r)
		}
	}
	if len(moved) == 0 {
		return
	}
	routes.Sort(moved)
	e.log.Warn("subnet router does not answer: its routes move to another router", "router", k.ShortString(), "silent", silent.Round(time.Millisecond), "routes", moved)
}

// resetNewCarriers restarts the liveness wait of peers that just became
// carriers (packets sent to them before say nothing about their new
// role). Called with e.mu held.
func (e *Engine) resetNewCarriers(before, after map[netip.Prefix]key.NodePublic) {
	for r, k := range after {
		if before[r] != k {
			e.magic.ResetUnanswered(k)
		}
	}
}

// PrimaryRoutes returns, for each peer that carries subnet routes on this
// node, the routes it carries (it is their primary router here).
func (e *Engine) PrimaryRoutes() map[key.NodePublic][]netip.Prefix {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[key.NodePublic][]netip.Prefix)
	for r, k := range e.routes {
		out[k] = append(out[k], r)
	}
	for _, rs := range out {
		routes.Sort(rs)
	}
	return out
}
