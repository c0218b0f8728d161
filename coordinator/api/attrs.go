package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// Device posture attributes: node: ones the nodes report, custom: ones
// admins and integration keys (an MDM or EDR sync job) set. These
// endpoints (and whoami) are all an integration key may call: they are
// all its mux (Server.intMux) holds.

// NodeAttrs is one node's posture attributes.
type NodeAttrs struct {
	ID       int64      `json:"id"`
	Name     string     `json:"name"`
	Hostname string     `json:"hostname"`
	Attrs    []NodeAttr `json:"attrs"`
}

// NodeAttr is one attribute held for a node.
type NodeAttr struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Source is "node" for what the node reported, else who set it
	// ("admin alice@example.com", "integration mdm-sync").
	Source string `json:"source"`
	// CollectedAt is the node's own time of collection (informational);
	// ReportedAt the coordinator's time of the last report or heartbeat
	// (or of setting).
	CollectedAt time.Time `json:"collectedAt,omitzero"`
	ReportedAt  time.Time `json:"reportedAt"`
	Expires     time.Time `json:"expires,omitzero"`
	// Stale: a node: attribute not reported within the coordinator's
	// --posture-max-age; Expired: a custom: one past its expiry. Neither
	// counts for the policy.
	Stale   bool `json:"stale,omitempty"`
	Expired bool `json:"expired,omitempty"`
}

// SetAttrsRequest is the body of POST /api/v1/nodes/{id}/attrs: custom:
// attributes to set and, optionally, when they stop counting: a duration
// from now ("24h") or a time (RFC 3339).
type SetAttrsRequest struct {
	Attrs   map[string]string `json:"attrs"`
	Expires string            `json:"expires,omitempty"`
}

// UnsetAttrsRequest is the body of POST /api/v1/nodes/{id}/attrs/unset.
type UnsetAttrsRequest struct {
	Attrs []string `json:"attrs"`
}

// maxAttrsBody bounds the body of the attribute endpoints: MaxPostureAttrs
// names and values with room for JSON.
const maxAttrsBody = 64 << 10

func (s *Server) attrRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v1/attrs", s.listAllAttrs)
	m.HandleFunc("GET /api/v1/nodes/{id}/attrs", s.nodeAttrs)
	m.HandleFunc("POST /api/v1/nodes/{id}/attrs", s.setAttrs)
	m.HandleFunc("POST /api/v1/nodes/{id}/attrs/unset", s.unsetAttrs)
	m.HandleFunc("DELETE /api/v1/nodes/{id}/attrs/{name}", s.unsetAttrs)
}

// integrationOnly serves an integration key's request if intMux holds
// its endpoint, and refuses (and audits) anything else.
func (s *Server) integrationOnly(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.intMux.Handler(r); pattern != "" {
		s.intMux.ServeHTTP(w, r)
		return
	}
	a := actorFrom(r.Context())
	why := "integration API keys may only read nodes' attributes and set custom: ones"
	_ = s.cfg.Audit.Record(r.Context(), audit.Event{Actor: a.Name, Action: "api.forbidden",
		Target: audit.Truncate(r.Method+" "+r.URL.Path, audit.MaxDetail), Remote: r.RemoteAddr, Outcome: audit.Denied,
		Detail: map[string]any{"error": why}})
	writeJSON(w, http.StatusForbidden, ErrorResponse{Error: why})
}

func (s *Server) nodeAttrsJSON(n store.Node, attrs []store.NodeAttr) NodeAttrs {
	now := s.cfg.Now()
	maxAge := s.cfg.Registry.PostureMaxAge()
	out := NodeAttrs{ID: int64(n.ID), Name: n.Name, Hostname: n.Hostname, Attrs: []NodeAttr{}}
	for _, a := range attrs {
		j := NodeAttr{Name: a.Name, Value: a.Value, Source: a.Source, CollectedAt: a.CollectedAt, ReportedAt: a.ReportedAt, Expires: a.ExpiresAt}
		if strings.HasPrefix(a.Name, registry.NodeAttrPrefix) {
			j.Stale = !now.Before(a.ReportedAt.Add(maxAge))
		} else {
			j.Expired = !a.ExpiresAt.IsZero() && !now.Before(a.ExpiresAt)
		}
		out.Attrs = append(out.Attrs, j)
	}
	return out
}

func (s *Server) listAllAttrs(w http.ResponseWriter, r *http.Request) {
	nodes, by, err := s.cfg.Registry.AllNodeAttrs(r.Context(), actorFrom(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]NodeAttrs, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, s.nodeAttrsJSON(n, by[n.ID]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) nodeAttrs(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.writeNodeAttrs(w, r, store.NodeID(id))
}

func (s *Server) writeNodeAttrs(w http.ResponseWriter, r *http.Request, id store.NodeID) {
	n, attrs, err := s.cfg.Registry.NodeAttrs(r.Context(), actorFrom(r.Context()), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.nodeAttrsJSON(n, attrs))
}

func (s *Server) setAttrs(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var req SetAttrsRequest
	var expires time.Time
	if err == nil {
		req, expires, err = DecodeSetAttrs(http.MaxBytesReader(w, r.Body, maxAttrsBody), s.cfg.Now())
	}
	if err == nil {
		_, err = s.cfg.Registry.SetAttrs(r.Context(), actorFrom(r.Context()), store.NodeID(id), req.Attrs, expires)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	s.writeNodeAttrs(w, r, store.NodeID(id))
}

func (s *Server) unsetAttrs(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var req UnsetAttrsRequest
	if name := r.PathValue("name"); name != "" {
		req.Attrs = []string{name}
	} else if err == nil {
		err = decodeStrict(http.MaxBytesReader(w, r.Body, maxAttrsBody), &req)
	}
	if err == nil {
		_, err = s.cfg.Registry.UnsetAttrs(r.Context(), actorFrom(r.Context()), store.NodeID(id), req.Attrs)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	s.writeNodeAttrs(w, r, store.NodeID(id))
}

// DecodeSetAttrs decodes a SetAttrsRequest (unknown fields refused) and
// its expiry as of now: zero for none, now plus a positive duration, or
// an RFC 3339 time. The attributes themselves are checked by the
// registry.
func DecodeSetAttrs(body io.Reader, now time.Time) (SetAttrsRequest, time.Time, error) {
	var req SetAttrsRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, time.Time{}, err
	}
	exp, err := ParseExpires(req.Expires, now)
	return req, exp, err
}

// ParseExpires reads an expiry: "" (none), a positive duration from now
// ("24h", "90m") or an RFC 3339 time.
func ParseExpires(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%w: expiry %q must be positive", errBadBody, s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: expiry %q: write a duration (24h) or a time (2026-12-31T00:00:00Z)", errBadBody, s)
	}
	return t, nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// trailing data.
func decodeStrict(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadBody, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the request", errBadBody)
	}
	return nil
}

// AllAttrs returns every node's attributes (admins and integration keys).
func (c *Client) AllAttrs(ctx context.Context) ([]NodeAttrs, error) {
	return call[[]NodeAttrs](ctx, c, "GET", "/api/v1/attrs", nil)
}

// NodeAttrs returns one node's attributes.
func (c *Client) NodeAttrs(ctx context.Context, id int64) (NodeAttrs, error) {
	return call[NodeAttrs](ctx, c, "GET", fmt.Sprintf("/api/v1/nodes/%d/attrs", id), nil)
}

// SetAttrs sets custom: attributes of a node.
func (c *Client) SetAttrs(ctx context.Context, id int64, req SetAttrsRequest) (NodeAttrs, error) {
	return call[NodeAttrs](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/attrs", id), req)
}

// UnsetAttrs removes custom: attributes of a node.
func (c *Client) UnsetAttrs(ctx context.Context, id int64, names []string) (NodeAttrs, error) {
	return call[NodeAttrs](ctx, c, "POST", fmt.Sprintf("/api/v1/nodes/%d/attrs/unset", id), UnsetAttrsRequest{Attrs: names})
}
