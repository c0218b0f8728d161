package testmesh

import (
	"context"
	"net/http"

	"github.com/warrenmesh/warren/coordinator"
)

// handlerBox holds the running coordinator's handler, so Restart can swap
// it under the mesh's listener.
type handlerBox struct{ http.Handler }

// coordinator returns the running coordinator.
func (m *Mesh) coordinator() *coordinator.Coordinator {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.Coord
}

// Restart stops the coordinator and starts a new one over the same state
// directory, policy file, login settings and listener (so nodes reach it
// at the same URL, with the same key, and reconnect by themselves). The
// test must not use Mesh.Coord concurrently.
func (m *Mesh) Restart() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Coord.Close()
	c, err := coordinator.New(context.Background(), m.cfg)
	if err != nil {
		m.t.Fatalf("testmesh: restart coordinator: %v", err)
	}
	m.Coord = c
	m.handler.Store(&handlerBox{c.Handler()})
}
