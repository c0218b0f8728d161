package netmap

import (
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// postureStatus is n's posture as n itself is told it: the attributes
// the coordinator holds and, while n is active, the rules it fails only
// because of posture and those it fails only because its user's MFA is
// stale (MFA, for step-up sign-in). nil when there is nothing to say.
// Callers hold e.mu.
func (e *Engine) postureStatus(n *Node, now time.Time) *wire.PostureStatus {
	ps := &wire.PostureStatus{Attrs: cloneSlice(n.PostureAttrs)}
	if n.Active(now) {
		ps.Denials = e.graph.Denials(n.ID())
		ps.MFA = e.graph.MFADenials(n.ID())
	}
	if len(ps.Attrs) == 0 && len(ps.Denials) == 0 && len(ps.MFA) == 0 {
		return nil
	}
	return ps
}

// postureTo queues a posture delta to each connected node in ids, and to
// also (unless 0), whose posture status differs from the one it was last
// sent. Callers hold e.mu.
func (e *Engine) postureTo(ids []wire.NodeID, also wire.NodeID) {
	if also != 0 && !slices.Contains(ids, also) {
		ids = append(ids, also)
	}
	now := e.now()
	for _, id := range ids {
		s, n := e.streams[id], e.nodes[id]
		if s == nil || n == nil {
			continue
		}
		ps := e.postureStatus(n, now)
		if samePosture(ps, e.posture[id]) {
			continue
		}
		e.posture[id] = ps
		if ps == nil {
			ps = &wire.PostureStatus{} // a delta says "nothing" explicitly
		}
		s.push(&delta{posture: ps})
	}
}

// samePosture compares two posture statuses; nil equals empty.
func samePosture(a, b *wire.PostureStatus) bool {
	if a == nil {
		a = &wire.PostureStatus{}
	}
	if b == nil {
		b = &wire.PostureStatus{}
	}
	return slices.Equal(a.Denials, b.Denials) && slices.Equal(a.MFA, b.MFA) && slices.EqualFunc(a.Attrs, b.Attrs, func(x, y wire.PostureAttr) bool {
		return x.Name == y.Name && x.Value == y.Value && x.Source == y.Source && x.Stale == y.Stale &&
			x.CollectedAt.Equal(y.CollectedAt) && x.Expires.Equal(y.Expires)
	})
}

// PostureDenials returns, for each connected node, how many rules it
// fails only because of its posture, as last sent to it (nodes whose
// posture status has not been sent yet are left out).
func (e *Engine) PostureDenials() map[wire.NodeID]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[wire.NodeID]int, len(e.posture))
	for id := range e.streams {
		if ps, ok := e.posture[id]; ok {
			n := 0
			if ps != nil {
				n = len(ps.Denials)
			}
			out[id] = n
		}
	}
	return out
}
