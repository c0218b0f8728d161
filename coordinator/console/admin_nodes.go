package console

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// This file is the nodes pages: a paged, filtered list of every node (a
// page at a time from the store, through the registry) and
// a page per node with the changes `warren-coordinator nodes …` and the
// admin API make (approve, expire, rename, delete, key lifetime, tags,
// routes), each through the same registry method with the admin's
// identity.

// nodesPageSize is how many nodes one page of the list shows.
const nodesPageSize = 100

// nodeRow is one node as the console lists it.
type nodeRow struct {
	registry.NodeInfo
	// PostureDenied is how many rules the node fails only for its
	// posture (-1: not known: the node is offline or has not reported).
	PostureDenied int
	Relay         string // its home relay region's code, "" for none
}

type nodesData struct {
	Done        string
	Filter      string
	Nodes       []nodeRow
	Page, Pages int
	Total       int // nodes the filter matches
	Prev, Next  string
}

func (s *Server) nodeRoutes() {
	s.handle("GET "+Prefix+"nodes", roleAdmin, s.nodesPage)
	s.handle("GET "+Prefix+"nodes/{id}", roleAdmin, s.nodePage)
	s.nodeChange("approve", false, "approved", func(r *http.Request, p *page, id store.NodeID) error {
		_, err := s.cfg.Registry.ApproveNode(r.Context(), p.Actor, id)
		return err
	})
	s.nodeChange("expire", true, "expired", func(r *http.Request, p *page, id store.NodeID) error {
		_, err := s.cfg.Registry.ExpireNode(r.Context(), p.Actor, id)
		return err
	})
	s.nodeChange("rename", false, "renamed", func(r *http.Request, p *page, id store.NodeID) error {
		_, err := s.cfg.Registry.RenameNode(r.Context(), p.Actor, id, strings.TrimSpace(r.PostFormValue("name")))
		return err
	})
	s.nodeChange("delete", true, "deleted-node", func(r *http.Request, p *page, id store.NodeID) error {
		return s.cfg.Registry.DeleteNode(r.Context(), p.Actor, id)
	})
	s.nodeChange("key-lifetime", false, "lifetime", func(r *http.Request, p *page, id store.NodeID) error {
		d, err := api.ParseKeyLifetime(strings.TrimSpace(r.PostFormValue("lifetime")))
		if err != nil {
			return fmt.Errorf("%w: %w", errAdminForm, err)
		}
		_, err = s.cfg.Registry.SetKeyLifetime(r.Context(), p.Actor, id, d)
		return err
	})
	s.nodeChange("tags", false, "tags", func(r *http.Request, p *page, id store.NodeID) error {
		_, err := s.cfg.Registry.SetTags(r.Context(), p.Actor, id, splitList(r.PostFormValue("tags")))
		return err
	})
	s.nodeChange("routes/approve", false, "routes", func(r *http.Request, p *page, id store.NodeID) error {
		ps, err := formPrefixes(r)
		if err == nil {
			_, err = s.cfg.Registry.ApproveRoutes(r.Context(), p.Actor, id, ps)
		}
		return err
	})
	s.nodeChange("routes/disable", false, "routes", func(r *http.Request, p *page, id store.NodeID) error {
		ps, err := formPrefixes(r)
		if err == nil {
			_, err = s.cfg.Registry.DisableRoutes(r.Context(), p.Actor, id, ps)
		}
		return err
	})
}

// nodeChange registers POST /admin/nodes/{id}/op, which runs fn (after
// the confirmation box when confirm) and goes back to the node's page
// (the list after a deletion).
func (s *Server) nodeChange(op string, confirm bool, what string, fn func(*http.Request, *page, store.NodeID) error) {
	s.handle("POST "+Prefix+"nodes/{id}/"+op, roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		id, err := adminPathID(r)
		if err == nil {
			err = adminParseForm(w, r)
		}
		if err == nil && confirm && !adminConfirmed(r) {
			err = errAdminNotConfirmed
		}
		if err == nil {
			err = fn(r, p, store.NodeID(id))
		}
		if err != nil {
			s.adminFail(w, r, p, err)
			return
		}
		where := Prefix + "nodes/" + strconv.FormatInt(id, 10)
		if op == "delete" {
			where = Prefix + "nodes"
		}
		adminDone(w, r, where, what)
	})
}

// splitList reads a list typed as "a, b c".
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// formPrefixes reads the form's "route" values (checkboxes) and its
// "routes" text field as IP prefixes.
func formPrefixes(r *http.Request) ([]netip.Prefix, error) {
	vals := append(slices.Clone(r.PostForm["route"]), splitList(r.PostFormValue("routes"))...)
	if len(vals) == 0 {
		return nil, fmt.Errorf("%w: choose at least one route", errAdminForm)
	}
	out := make([]netip.Prefix, 0, len(vals))
	for _, v := range vals {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("%w: route %q is not a prefix such as 10.0.0.0/24", errAdminForm, v)
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *Server) relayCodes() map[int]string {
	codes := map[int]string{}
	if s.cfg.DERPMap != nil {
		for _, r := range s.cfg.DERPMap.Regions {
			codes[r.ID] = r.Code
		}
	}
	return codes
}

func (s *Server) nodesPage(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	d := nodesData{Done: adminDoneMessage(r), Filter: strings.TrimSpace(q.Get("q")), Page: 1}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.adminFail(w, r, p, fmt.Errorf("%w: page %q", errAdminForm, v))
			return
		}
		d.Page = n
	}
	// One page from the store, not every node: the list may be long.
	f := store.NodePageFilter{Match: d.Filter, Offset: (d.Page - 1) * nodesPageSize, Limit: nodesPageSize}
	shown, total, err := s.cfg.Registry.ListNodePage(r.Context(), p.Actor, f)
	d.Total = total
	d.Pages = max(1, (d.Total+nodesPageSize-1)/nodesPageSize)
	if err == nil && d.Page > d.Pages { // past the end: the last page
		d.Page = d.Pages
		f.Offset = (d.Page - 1) * nodesPageSize
		shown, _, err = s.cfg.Registry.ListNodePage(r.Context(), p.Actor, f)
	}
	if err != nil {
		s.adminFail(w, r, p, err)
		return
	}
	denials, codes := s.cfg.Engine.PostureDenials(), s.relayCodes()
	d.Nodes = make([]nodeRow, 0, len(shown))
	for _, n := range shown {
		row := nodeRow{NodeInfo: n, PostureDenied: -1, Relay: codes[n.HomeRelay]}
		if c, ok := denials[wire.NodeID(n.ID)]; ok {
			row.PostureDenied = c
		}
		d.Nodes = append(d.Nodes, row)
	}
	link := func(page int) string {
		v := url.Values{}
		if d.Filter != "" {
			v.Set("q", d.Filter)
		}
		v.Set("page", strconv.Itoa(page))
		return "?" + v.Encode()
	}
	if d.Page > 1 {
		d.Prev = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.Next = link(d.Page + 1)
	}
	s.render(w, p, "admin_nodes", "Nodes", d)
}

type nodeData struct {
	Done  string
	Node  nodeRow
	Attrs []store.NodeAttr
	// Routes lists each advertised or approved route and whether it is
	// approved and in force.
	Routes   []routeRow
	Lifetime string // the node's own key lifetime, "" for the default
}

type routeRow struct {
	Prefix               netip.Prefix
	Advertised, Approved bool
}

func (s *Server) nodePage(w http.ResponseWriter, r *http.Request, p *page) {
	id, err := adminPathID(r)
	if err != nil {
		s.adminFail(w, r, p, err)
		return
	}
	nodes, err := s.cfg.Registry.ListNodes(r.Context(), p.Actor)
	if err != nil {
		s.adminFail(w, r, p, err)
		return
	}
	i := slices.IndexFunc(nodes, func(n registry.NodeInfo) bool { return int64(n.ID) == id })
	if i < 0 {
		s.adminFail(w, r, p, store.ErrNotFound)
		return
	}
	n := nodes[i]
	_, attrs, err := s.cfg.Registry.NodeAttrs(r.Context(), p.Actor, n.ID)
	if err != nil {
		s.adminFail(w, r, p, err)
		return
	}
	d := nodeData{Done: adminDoneMessage(r), Node: nodeRow{NodeInfo: n, PostureDenied: -1, Relay: s.relayCodes()[n.HomeRelay]}, Attrs: attrs}
	if c, ok := s.cfg.Engine.PostureDenials()[wire.NodeID(n.ID)]; ok {
		d.Node.PostureDenied = c
	}
	if n.KeyLifetime != 0 {
		d.Lifetime = registry.FormatKeyLifetime(n.KeyLifetime)
	}
	for _, pr := range n.AdvertisedRoutes {
		d.Routes = append(d.Routes, routeRow{Prefix: pr, Advertised: true, Approved: slices.Contains(n.ApprovedRoutes, pr)})
	}
	for _, pr := range n.ApprovedRoutes {
		if !slices.Contains(n.AdvertisedRoutes, pr) {
			d.Routes = append(d.Routes, routeRow{Prefix: pr, Approved: true})
		}
	}
	s.render(w, p, "admin_node", n.Name, d)
}
