package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// The queries of the audit log and the flow logs (admins only). Times
// (since, until) are durations before now ("1h", "7d") or RFC 3339
// instants.

// Flow is one flow record as the API lists it.
type Flow struct {
	ID       string    `json:"id"`
	Reporter int64     `json:"reporter"` // the node that enforced and reported it
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Update   bool      `json:"update,omitempty"`
	Proto    uint8     `json:"proto"`
	Src      string    `json:"src"`
	Dst      string    `json:"dst"`
	SrcNode  int64     `json:"srcNode,omitempty"`
	SrcUser  string    `json:"srcUser,omitempty"`
	SrcTags  []string  `json:"srcTags,omitempty"`
	DstNode  int64     `json:"dstNode,omitempty"`
	DstUser  string    `json:"dstUser,omitempty"`
	DstTags  []string  `json:"dstTags,omitempty"`
	// Packets and bytes from the source (In) and back to it (Out).
	PacketsIn  uint64 `json:"packetsIn"`
	BytesIn    uint64 `json:"bytesIn"`
	PacketsOut uint64 `json:"packetsOut"`
	BytesOut   uint64 `json:"bytesOut"`
	Verdict    string `json:"verdict"`
	Reason     string `json:"reason,omitempty"`
	Rule       string `json:"rule,omitempty"`
	Count      uint64 `json:"count,omitempty"`
}

// AuditQuery selects audit events; empty fields match everything.
type AuditQuery struct {
	Since, Until string // "1h", "7d" or RFC 3339
	Actor        string // "user:ann@example.com", "node:12", …
	Action       string
	Target       string
	Outcome      string // ok, denied, error
	Limit        int
}

// FlowQuery selects flows; empty fields match everything.
type FlowQuery struct {
	Since, Until string // of the flow's last packet: "1h", "7d" or RFC 3339
	User         string // the source's owner (login)
	Src          string // the source node: name or ID
	Dst          string // the destination: tag:NAME, a node's name or ID, or an address
	Port         uint16 // destination port
	Denied       bool   // only denied flows
	Limit        int
}

// ErrBadQuery is wrapped by the errors of malformed query values.
var ErrBadQuery = errors.New("bad query")

var errBadQuery = ErrBadQuery

// ParseWhen reads a since/until value as the API, the CLI and the console
// take it: a duration before now ("1h", "7d") or an RFC 3339 instant; ""
// is the zero time. Its errors wrap ErrBadQuery.
func ParseWhen(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 0 {
			return now.Add(-time.Duration(d) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: %q is neither a duration (1h, 7d) nor an RFC 3339 time", errBadQuery, v)
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	if !actorFrom(r.Context()).Admin {
		writeErr(w, registry.ErrForbidden)
		return
	}
	q := r.URL.Query()
	f := store.AuditFilter{Action: q.Get("action"), Actor: q.Get("actor"), Target: q.Get("target"), Outcome: q.Get("outcome")}
	var err error
	if f.Limit, err = limitParam(q); err == nil {
		if f.Since, err = ParseWhen(q.Get("since"), s.cfg.Now()); err == nil {
			f.Until, err = ParseWhen(q.Get("until"), s.cfg.Now())
		}
	}
	if err != nil {
		writeQueryErr(w, err)
		return
	}
	events, err := s.cfg.Store.ListAudit(r.Context(), f)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]AuditEvent, 0, len(events))
	for _, e := range events {
		out = append(out, AuditEvent{Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target, Remote: e.Remote, Outcome: e.Outcome, Detail: e.Detail})
	}
	writeJSON(w, http.StatusOK, out)
}

func limitParam(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: limit %q", errBadQuery, v)
	}
	return n, nil
}

func writeQueryErr(w http.ResponseWriter, err error) {
	if errors.Is(err, errBadQuery) {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return
	}
	writeErr(w, err)
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) {
	if !actorFrom(r.Context()).Admin {
		writeErr(w, registry.ErrForbidden)
		return
	}
	f, err := s.flowFilter(r)
	if err != nil {
		writeQueryErr(w, err)
		return
	}
	var flows []store.Flow
	if f.SrcNodes == nil || len(f.SrcNodes) > 0 { // a source naming no node matches nothing
		if f.DstNodes == nil || len(f.DstNodes) > 0 {
			flows, err = s.cfg.Store.ListFlows(r.Context(), f)
			if err != nil {
				writeErr(w, err)
				return
			}
		}
	}
	out := make([]Flow, 0, len(flows))
	for _, fl := range flows {
		out = append(out, Flow{ID: fl.ID, Reporter: int64(fl.Reporter), Start: fl.Start, End: fl.End, Update: fl.Update, Proto: fl.Proto,
			Src: fl.Src.String(), Dst: fl.Dst.String(), SrcNode: int64(fl.SrcNode), SrcUser: fl.SrcUser, SrcTags: fl.SrcTags,
			DstNode: int64(fl.DstNode), DstUser: fl.DstUser, DstTags: fl.DstTags,
			PacketsIn: fl.PacketsIn, BytesIn: fl.BytesIn, PacketsOut: fl.PacketsOut, BytesOut: fl.BytesOut,
			Verdict: fl.Verdict, Reason: fl.Reason, Rule: fl.Rule, Count: fl.Count})
	}
	writeJSON(w, http.StatusOK, out)
}

// flowFilter reads a flow query. Nodes given by name, ID or tag are
// resolved to IDs here (an empty, non-nil list: none matched).
func (s *Server) flowFilter(r *http.Request) (store.FlowFilter, error) {
	q := r.URL.Query()
	now := s.cfg.Now()
	var f store.FlowFilter
	var err error
	if f.Since, err = ParseWhen(q.Get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = ParseWhen(q.Get("until"), now); err != nil {
		return f, err
	}
	if f.Limit, err = limitParam(q); err != nil {
		return f, err
	}
	f.SrcUser = q.Get("user")
	if v := q.Get("port"); v != "" {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return f, fmt.Errorf("%w: port %q", errBadQuery, v)
		}
		f.DstPort = uint16(p)
	}
	switch v := q.Get("verdict"); {
	case q.Get("denied") == "true" || v == "deny":
		f.Verdict = "deny"
	case v == "accept":
		f.Verdict = "accept"
	case v != "":
		return f, fmt.Errorf("%w: verdict %q (accept or deny)", errBadQuery, v)
	}
	src, dst := q.Get("src"), q.Get("dst")
	if src == "" && dst == "" {
		return f, nil
	}
	if a, err := netip.ParseAddr(dst); err == nil {
		f.DstAddr, dst = a, ""
	}
	if src == "" && dst == "" {
		return f, nil
	}
	nodes, err := s.cfg.Store.ListNodes(r.Context())
	if err != nil {
		return f, err
	}
	if src != "" {
		f.SrcNodes = matchNodes(nodes, src)
	}
	if dst != "" {
		f.DstNodes = matchNodes(nodes, dst)
	}
	return f, nil
}

// matchNodes returns the IDs of the nodes sel names: tag:NAME (every node
// with the tag), a node's name or its ID. None matched: an empty list.
func matchNodes(nodes []store.Node, sel string) []store.NodeID {
	out := []store.NodeID{}
	id, idErr := strconv.ParseInt(sel, 10, 64)
	for _, n := range nodes {
		switch {
		case strings.HasPrefix(sel, "tag:") && slices.Contains(n.Tags, sel),
			n.Name == sel,
			idErr == nil && int64(n.ID) == id:
			out = append(out, n.ID)
		}
	}
	return out
}
