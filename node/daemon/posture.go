package daemon

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/localapi"
)

// DefaultPostureInterval is how often a node collects its posture when
// Config.PostureInterval is zero.
const DefaultPostureInterval = 5 * time.Minute

// MinPostureInterval is the shortest interval warrend accepts.
const MinPostureInterval = 10 * time.Second

// postureSettle is the least time between two collections a network
// change brings.
const postureSettle = time.Second

// reportPosture collects the node's posture at the session's start, on
// every network change (netChanged) and every posture interval, and hands
// each collection to the control client, which sends it (or a heartbeat
// when nothing changed). It runs on its own goroutine so a slow
// collection never holds up the session; it ends with the session.
func (s *session) reportPosture() {
	defer s.helpers.Done()
	t := time.NewTicker(s.d.cfg.PostureInterval)
	defer t.Stop()
	for {
		attrs := s.d.collectPosture(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		s.client.SetPosture(attrs)
		last := time.Now()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.netChanged:
			// A flapping network collects at most once per
			// postureSettle; the changes meanwhile fold into one.
			if wait := postureSettle - time.Since(last); wait > 0 {
				settle := time.NewTimer(wait)
				select {
				case <-s.ctx.Done():
					settle.Stop()
					return
				case <-settle.C:
				}
			}
			select {
			case <-s.netChanged:
			default:
			}
			s.d.log.Debug("network changed; collecting posture again")
		}
	}
}

// onEndpoints passes the data plane's new endpoints to the control client
// and, since they change with the network, asks for a posture collection.
func (s *session) onEndpoints(eps []netip.AddrPort, homeRelay int) {
	s.client.SetEndpoints(eps, homeRelay)
	select {
	case s.netChanged <- struct{}{}:
	default: // one is pending already
	}
}

// collectPosture runs the configured collector.
func (d *Daemon) collectPosture(ctx context.Context) map[string]wire.PostureValue {
	return d.cfg.PostureCollect(ctx)
}

// Posture implements localapi.Backend: the attributes the running session
// collected last, or, with no session (or none collected yet), a fresh
// collection.
func (d *Daemon) Posture(ctx context.Context) localapi.PostureReport {
	d.mu.Lock()
	s := d.sess
	d.mu.Unlock()
	var attrs map[string]wire.PostureValue
	var coord *localapi.PostureStatus
	reporting := false
	if s != nil && s.client != nil {
		attrs = s.client.Posture()
		reporting = attrs != nil
		if nm := s.netmap(); nm != nil {
			coord = postureStatus(nm.Posture)
		}
	}
	if attrs == nil {
		attrs = d.collectPosture(ctx)
	}
	rep := localapi.PostureReport{Reporting: reporting, Interval: d.cfg.PostureInterval, Attrs: []localapi.PostureAttr{},
		Coordinator: coord}
	for name, v := range attrs {
		rep.Attrs = append(rep.Attrs, localapi.PostureAttr{Name: name, Value: v.Value, CollectedAt: v.CollectedAt})
	}
	slices.SortFunc(rep.Attrs, func(a, b localapi.PostureAttr) int { return strings.Compare(a.Name, b.Name) })
	return rep
}
