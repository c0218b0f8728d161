package daemon

import "github.com/warrenmesh/warren/node/nodemetrics"

// MetricsSnapshot returns the node's state for its metrics (see
// nodemetrics): the current session's data plane and peers, or a stopped
// node. The flow-log spool adds its size to Snapshot.Spool here once it
// exists.
func (d *Daemon) MetricsSnapshot() nodemetrics.Snapshot {
	s := d.current()
	if s == nil {
		return nodemetrics.Snapshot{}
	}
	nm, eng := s.netmap(), s.engine()
	if nm == nil || eng == nil {
		return nodemetrics.Snapshot{}
	}
	return nodemetrics.EngineSnapshot(eng, nm.Peers)
}
