package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// This file is the admins' access requests page: the pending requests,
// the grants in force and the recent history, and approving (for the
// time asked or a shorter one), denying and revoking, each through the
// access service with the admin as the caller, as the admin API does.

// accessHistoryLen is how many decided requests the page lists.
const accessHistoryLen = 100

type accessData struct {
	Done                     string
	Enabled                  bool
	Pending, Active, History []wire.AccessRequest
}

func (s *Server) accessRoutes() {
	s.handle("GET "+Prefix+"access", roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		d := accessData{Done: adminDoneMessage(r), Enabled: s.cfg.Access != nil}
		if d.Enabled {
			c := access.Caller{Actor: p.Actor}
			var err error
			d.Pending, err = s.cfg.Access.List(r.Context(), c, true)
			if err == nil {
				d.Active, err = s.cfg.Access.History(r.Context(), c, store.AccessFilter{States: []string{wire.AccessActive}})
			}
			if err == nil {
				d.History, err = s.cfg.Access.History(r.Context(), c, store.AccessFilter{Limit: accessHistoryLen,
					States: []string{wire.AccessDenied, wire.AccessCancelled, wire.AccessExpired, wire.AccessRevoked}})
			}
			if err != nil {
				s.adminFail(w, r, p, err)
				return
			}
		}
		s.render(w, p, "admin_access", "Access requests", d)
	})
	for _, op := range []string{"approve", "deny", "revoke"} {
		s.handle("POST "+Prefix+"access/{id}/"+op, roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
			err := adminParseForm(w, r)
			if err == nil && s.cfg.Access == nil {
				err = fmt.Errorf("%w: just-in-time access is not enabled on this coordinator", errAdminForm)
			}
			if err == nil {
				c, id, reason := access.Caller{Actor: p.Actor}, r.PathValue("id"), strings.TrimSpace(r.PostFormValue("reason"))
				switch op {
				case "approve":
					var d time.Duration
					if v := strings.TrimSpace(r.PostFormValue("duration")); v != "" {
						if d, err = time.ParseDuration(v); err != nil || d <= 0 {
							err = fmt.Errorf("%w: duration %q: write a positive duration such as 30m, or nothing for the time asked", errAdminForm, v)
						}
					}
					if err == nil {
						_, err = s.cfg.Access.Approve(r.Context(), c, id, d)
					}
				case "deny":
					_, err = s.cfg.Access.Deny(r.Context(), c, id, reason)
				case "revoke":
					_, err = s.cfg.Access.Revoke(r.Context(), c, id, reason)
				}
			}
			if err != nil {
				s.adminFail(w, r, p, err)
				return
			}
			adminDone(w, r, Prefix+"access", "access")
		})
	}
}
