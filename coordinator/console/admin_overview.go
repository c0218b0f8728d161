package console

import (
	"cmp"
	"context"
	"net/http"
	"slices"

	"github.com/warrenmesh/warren/coordinator/alert"
	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// This file is the admins' overview: nodes online and offline, the relay
// regions and who uses them, the policy in force (and a rejected file),
// and the recent alerts of the monitoring (audit events alert.*).

// overviewRecent is how many recently seen nodes and recent alerts the
// overview lists.
const overviewRecent = 10

type overviewData struct {
	Total, Online, Offline, Pending, Expired int
	Recent                                   []registry.NodeInfo // most recently seen first
	Regions                                  []regionRow
	Policy                                   policyfile.Status
	Alerts                                   []store.AuditEvent
}

// regionRow is one relay region on the overview: the nodes whose home
// relay it is (and of those, online), and for the embedded relay the
// clients connected to it now (-1: not known).
type regionRow struct {
	ID           int
	Code, Name   string
	URL          string
	Homed, Live  int
	RelayClients int
}

func (s *Server) overviewRoutes() {
	s.handle("GET "+Prefix+"overview", roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		d, err := s.overview(r.Context(), p.Actor)
		if err != nil {
			s.adminFail(w, r, p, err)
			return
		}
		s.render(w, p, "admin_overview", "Overview", d)
	})
}

func (s *Server) overview(ctx context.Context, a registry.Actor) (overviewData, error) {
	nodes, err := s.cfg.Registry.ListNodes(ctx, a)
	if err != nil {
		return overviewData{}, err
	}
	d := overviewData{Total: len(nodes), Policy: s.cfg.Policy.Status()}
	homed, live := map[int]int{}, map[int]int{}
	for _, n := range nodes {
		switch {
		case n.Online:
			d.Online++
			live[n.HomeRelay]++
		default:
			d.Offline++
		}
		if n.Pending {
			d.Pending++
		}
		if n.Expired {
			d.Expired++
		}
		homed[n.HomeRelay]++
	}
	slices.SortFunc(nodes, func(a, b registry.NodeInfo) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	d.Recent = nodes[:min(len(nodes), overviewRecent)]
	clients, embedded := -1, false
	if s.cfg.RelayClients != nil {
		var n int
		if n, embedded = s.cfg.RelayClients(); embedded {
			clients = n
		}
	}
	if s.cfg.DERPMap != nil {
		for i, reg := range s.cfg.DERPMap.Regions {
			row := regionRow{ID: reg.ID, Code: reg.Code, Name: reg.Name, URL: reg.URL, Homed: homed[reg.ID], Live: live[reg.ID], RelayClients: -1}
			if embedded && i == 0 {
				row.RelayClients = clients // the embedded relay is the map's first region
			}
			d.Regions = append(d.Regions, row)
		}
	}
	d.Alerts, _, err = s.auditPage(ctx, store.AuditFilter{}, alert.ActionPrefix, auditCursor{}, overviewRecent)
	return d, err
}
