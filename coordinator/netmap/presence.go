package netmap

import "github.com/warrenmesh/warren/internal/wire"

// Presence calls fn with each node the engine holds and whether it is
// online now (as SetOnline last set it), under the engine's lock: fn must
// be quick and must not call back into the engine. The web console's
// live updates poll it.
func (e *Engine) Presence(fn func(id wire.NodeID, online bool)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, n := range e.nodes {
		fn(id, n.Wire.Online)
	}
}
