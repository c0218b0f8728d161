package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/routes"
)

// NodeRoutes is a node's subnet and exit-node routes: what it advertises,
// what is approved, and what is in force (both).
type NodeRoutes struct {
	ID         int64          `json:"id"`
	Name       string         `json:"name"`
	Online     bool           `json:"online"`
	Advertised []netip.Prefix `json:"advertised"`
	Approved   []netip.Prefix `json:"approved"`
	Enabled    []netip.Prefix `json:"enabled"`
	// ExitNode reports that the node serves as an exit node (both default
	// routes in force).
	ExitNode bool `json:"exitNode"`
}

// RoutesRequest is the body of POST /api/v1/nodes/{id}/routes/approve and
// /disable. Either default route (0.0.0.0/0, ::/0) stands for the
// exit-node pair.
type RoutesRequest struct {
	Routes []netip.Prefix `json:"routes"`
}

func nodeRoutesJSON(n registry.NodeInfo) NodeRoutes {
	en := routes.Enabled(n.AdvertisedRoutes, n.ApprovedRoutes)
	return NodeRoutes{ID: int64(n.ID), Name: n.Name, Online: n.Online,
		Advertised: nonNil(n.AdvertisedRoutes), Approved: nonNil(n.ApprovedRoutes), Enabled: nonNil(en), ExitNode: routes.Exit(en)}
}

func nonNil(ps []netip.Prefix) []netip.Prefix {
	if ps == nil {
		return []netip.Prefix{}
	}
	return ps
}

func (s *Server) nodeRouteRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v1/routes", s.listRoutes)
	m.HandleFunc("GET /api/v1/nodes/{id}/routes", s.nodeRoutes)
	m.HandleFunc("POST /api/v1/nodes/{id}/routes/approve", s.changeRoutes(s.cfg.Registry.ApproveRoutes))
	m.HandleFunc("POST /api/v1/nodes/{id}/routes/disable", s.changeRoutes(s.cfg.Registry.DisableRoutes))
}

// listRoutes answers the routes of every node the caller may see that
// advertises or has approved any.
func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.cfg.Registry.ListNodes(r.Context(), actorFrom(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	out := []NodeRoutes{}
	for _, n := range nodes {
		if len(n.AdvertisedRoutes) > 0 || len(n.ApprovedRoutes) > 0 {
			out = append(out, nodeRoutesJSON(n))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) nodeRoutes(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.writeNodeRoutes(w, r, store.NodeID(id))
}

// writeNodeRoutes answers node id's routes, if the caller may see it.
func (s *Server) writeNodeRoutes(w http.ResponseWriter, r *http.Request, id store.NodeID) {
	nodes, err := s.cfg.Registry.ListNodes(r.Context(), actorFrom(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	for _, n := range nodes {
		if n.ID == id {
			writeJSON(w, http.StatusOK, nodeRoutesJSON(n))
			return
		}
	}
	writeErr(w, fmt.Errorf("node %d: %w", id, store.ErrNotFound))
}

func (s *Server) changeRoutes(fn func(ctx context.Context, a registry.Actor, id store.NodeID, ps []netip.Prefix) (store.Node, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req RoutesRequest
		id, err := pathID(r)
		if err == nil {
			err = readJSON(r, &req)
		}
		if err == nil {
			_, err = fn(r.Context(), actorFrom(r.Context()), store.NodeID(id), req.Routes)
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		s.writeNodeRoutes(w, r, store.NodeID(id))
	}
}

// ListRoutes returns the routes of every node that advertises or has
// approved any.
func (c *Client) ListRoutes(ctx context.Context) ([]NodeRoutes, error) {
	return call[[]NodeRoutes](ctx, c, "GET", "/api/v1/routes", nil)
}

// NodeRoutes returns one node's routes.
func (c *Client) NodeRoutes(ctx context.Context, id int64) (NodeRoutes, error) {
	return call[NodeRoutes](ctx, c, "GET", fmt.Sprintf("/api/v1/nodes/%d/routes", id), nil)
}

// ApproveRoutes approves routes a node advertises (admins only).
func (c *Client) ApproveRoutes(ctx context.Context, id int64, ps []netip.Prefix) (NodeRoutes, error) {
	return call[NodeRoutes](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/routes/approve", id), RoutesRequest{Routes: ps})
}

// DisableRoutes withdraws approval of a node's routes (admins only).
func (c *Client) DisableRoutes(ctx context.Context, id int64, ps []netip.Prefix) (NodeRoutes, error) {
	return call[NodeRoutes](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/routes/disable", id), RoutesRequest{Routes: ps})
}
