package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
)

// Policy endpoints: what is in force, its history, a reload, and explain.
// All are for admins: the policy describes the whole organisation.

func (s *Server) policyRoutes() {
	m := s.mux
	m.HandleFunc("GET /api/v1/policy", s.adminOnly(s.policyStatus))
	m.HandleFunc("GET /api/v1/policy/history", s.adminOnly(s.policyHistory))
	m.HandleFunc("POST /api/v1/policy", s.adminOnly(s.policyApply))
	m.HandleFunc("POST /api/v1/policy/reload", s.adminOnly(s.policyReload))
	m.HandleFunc("POST /api/v1/policy/explain", s.adminOnly(s.policyExplain))
}

// adminOnly refuses members before h runs.
func (s *Server) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a := actorFrom(r.Context()); !a.Admin {
			writeErr(w, fmt.Errorf("%w: only admins may read or change the policy", registry.ErrForbidden))
			return
		}
		h(w, r)
	}
}

func (s *Server) policyStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Policy.Status())
}

func (s *Server) policyHistory(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	versions, err := s.cfg.Store.ListPolicies(r.Context(), limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]PolicyVersion, 0, len(versions))
	for _, v := range versions {
		out = append(out, PolicyVersion{ID: v.ID, Hash: v.Hash, Author: v.Author, Created: v.Created, Diff: v.Diff})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) policyReload(w http.ResponseWriter, r *http.Request) {
	a := actorFrom(r.Context())
	if err := s.cfg.Policy.Reload(r.Context(), a.Name); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, ErrorResponse{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Policy.Status())
}

func (s *Server) policyApply(w http.ResponseWriter, r *http.Request) {
	var req ApplyPolicyRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	changed, err := s.cfg.Policy.Apply(r.Context(), actorFrom(r.Context()).Name, []byte(req.Source))
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, ErrorResponse{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, ApplyPolicyResponse{Status: s.cfg.Policy.Status(), Changed: changed})
}

func (s *Server) policyExplain(w http.ResponseWriter, r *http.Request) {
	var req ExplainRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	resp, err := Explain(r.Context(), s.cfg.Policy.Current(), s.cfg.Engine, s.cfg.Store, req, s.cfg.Now())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// Explain answers "can req.Src reach req.Dst:req.Port, and by which rule"
// against p for the nodes, users and just-in-time grants held now: the
// admin API's explain, shared with the web console so both give the same
// answer. now is the default time of the question. Its errors wrap
// registry.ErrBadRequest.
func Explain(ctx context.Context, p *policy.Policy, eng *netmap.Engine, st store.Store, req ExplainRequest, now time.Time) (ExplainResponse, error) {
	q := policy.Query{Src: req.Src, Dst: req.Dst, Port: req.Port, Proto: req.Proto, At: req.At, SrcPostureAttrs: req.Posture}
	if q.At.IsZero() {
		q.At = now
	}
	if req.MFAAge != "" {
		d, err := time.ParseDuration(req.MFAAge)
		if err != nil {
			return ExplainResponse{}, fmt.Errorf("%w: mfaAge: %w", registry.ErrBadRequest, err)
		}
		q.MFAAge = &d
	}
	resp := ExplainResponse{Src: req.Src, Dst: req.Dst}
	// Node names resolve to the node with everything the policy knows of
	// it (owner, groups, tags, posture, MFA time); a user's login to the
	// user's own groups and role.
	srcUser := ""
	if n, ok := eng.PolicyNode(req.Src); ok {
		q.SrcNode, resp.Src = &n, describeNode("node "+req.Src, n)
		if len(n.Tags) == 0 {
			srcUser = n.User
		}
	} else {
		srcUser = req.Src
	}
	if srcUser != "" {
		source, groups := GroupFromPolicy, []string(nil)
		if u, err := st.GetUserByName(ctx, srcUser); err == nil {
			source, groups = userGroupSource(u), u.Groups
			if q.SrcNode == nil {
				q.SrcGroups, q.SrcAdmin = u.Groups, u.Role == store.RoleAdmin
			}
		}
		resp.SrcGroups = GroupMemberships(p, srcUser, groups, source)
	}
	if n, ok := eng.PolicyNode(req.Dst); ok {
		q.DstNode, resp.Dst = &n, describeNode("node "+req.Dst, n)
	}
	q.Grants = eng.Grants() // a source node's just-in-time grants count too
	d, err := p.Explain(q)
	if err != nil {
		return ExplainResponse{}, fmt.Errorf("%w: %w", registry.ErrBadRequest, err)
	}
	resp.fill(d)
	return resp, nil
}

// describeNode names n with what the policy matches: owner or tags, and
// the posture attributes that count now (stale and expired ones are not
// in n.Attrs).
func describeNode(label string, n policy.Node) string {
	var d string
	if len(n.Tags) > 0 {
		d = fmt.Sprintf("%s (tags %v", label, n.Tags)
	} else {
		d = fmt.Sprintf("%s (user %s, groups %v, admin %v", label, n.User, n.Groups, n.Admin)
	}
	attrs := make([]string, 0, len(n.Attrs))
	for _, k := range slices.Sorted(maps.Keys(n.Attrs)) {
		attrs = append(attrs, k+"="+n.Attrs[k])
	}
	return d + fmt.Sprintf(", posture %v)", attrs)
}

// fill copies a decision into the response.
func (e *ExplainResponse) fill(d policy.Decision) {
	e.Allowed, e.Text = d.Allowed, d.String()
	switch {
	case d.Allowed && d.Grant != nil:
		e.Grant = &ExplainGrant{ID: d.Grant.ID, Rule: d.Grant.Rule, Dst: d.Grant.Dst, Until: d.Grant.Until}
	case d.Allowed:
		e.Rule = &ExplainRule{Index: d.Rule.Index + 1, Line: d.Rule.Line, Text: d.Rule.Text}
	}
	for _, c := range d.Candidates {
		e.Candidates = append(e.Candidates, ExplainCandidate{
			Rule:    ExplainRule{Index: c.Rule.Index + 1, Line: c.Rule.Line, Text: c.Rule.Text},
			Reasons: c.Reasons,
		})
	}
}

// ExplainDecision turns a decision into the API's form (for offline use by
// the CLI, which explains against a file without a coordinator).
func ExplainDecision(src, dst string, d policy.Decision) ExplainResponse {
	e := ExplainResponse{Src: src, Dst: dst}
	e.fill(d)
	return e
}

// ExplainOffline explains q against p without a coordinator (the CLI's
// policy explain --file): a source user is in the groups the file lists
// it in.
func ExplainOffline(p *policy.Policy, q policy.Query) (ExplainResponse, error) {
	d, err := p.Explain(q)
	if err != nil {
		return ExplainResponse{}, err
	}
	e := ExplainDecision(q.Src, q.Dst, d)
	if q.SrcNode == nil {
		e.SrcGroups = GroupMemberships(p, q.Src, nil, GroupFromPolicy)
	}
	return e, nil
}
