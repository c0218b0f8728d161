package console

import (
	"net/http"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/store"
)

// This file is the users page: each user's groups (as the policy's rules
// see them), sign-in method, last MFA, role and state, and the changes
// the admin API offers (disable, enable, delete, role), each through the
// registry with the admin's identity. Disabling and deleting need the
// form's confirmation box.

type userRow struct {
	store.User
	Method string // "OIDC" or "local"
	Groups []api.GroupMembership
	TOTP   bool // a local user with a second factor
	Self   bool // the signed-in admin
}

func (s *Server) userRoutes() {
	s.handle("GET "+Prefix+"users", roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		users, err := s.cfg.Registry.ListUsers(r.Context(), p.Actor)
		if err != nil {
			s.adminFail(w, r, p, err)
			return
		}
		pol := s.cfg.Policy.Current()
		rows := make([]userRow, 0, len(users))
		for _, u := range users {
			row := userRow{User: u, Method: "local", TOTP: u.TOTPSecret != "", Self: u.ID == p.User.ID}
			source := api.GroupFromUser
			if u.Issuer != "" {
				row.Method, source = "OIDC", api.GroupFromIdP
			}
			row.Groups = api.GroupMemberships(pol, u.Name, u.Groups, source)
			rows = append(rows, row)
		}
		s.render(w, p, "admin_users", "Users", struct {
			Done  string
			Users []userRow
		}{adminDoneMessage(r), rows})
	})
	s.userChange("disable", true, "disabled", func(s *Server, r *http.Request, p *page, id store.UserID) error {
		_, err := s.cfg.Registry.SetUserDisabled(r.Context(), p.Actor, id, true)
		return err
	})
	s.userChange("enable", false, "enabled", func(s *Server, r *http.Request, p *page, id store.UserID) error {
		_, err := s.cfg.Registry.SetUserDisabled(r.Context(), p.Actor, id, false)
		return err
	})
	s.userChange("delete", true, "deleted-user", func(s *Server, r *http.Request, p *page, id store.UserID) error {
		return s.cfg.Registry.DeleteUser(r.Context(), p.Actor, id)
	})
	s.userChange("role", false, "role", func(s *Server, r *http.Request, p *page, id store.UserID) error {
		_, err := s.cfg.Registry.SetUserRole(r.Context(), p.Actor, id, store.Role(r.PostFormValue("role")))
		return err
	})
}

// userChange registers POST /admin/users/{id}/op, which runs fn (after
// the confirmation box when confirm) and goes back to the users page.
func (s *Server) userChange(op string, confirm bool, what string, fn func(*Server, *http.Request, *page, store.UserID) error) {
	s.handle("POST "+Prefix+"users/{id}/"+op, roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		id, err := adminPathID(r)
		if err == nil {
			err = adminParseForm(w, r)
		}
		if err == nil && confirm && !adminConfirmed(r) {
			err = errAdminNotConfirmed
		}
		if err == nil {
			err = fn(s, r, p, store.UserID(id))
		}
		if err != nil {
			s.adminFail(w, r, p, err)
			return
		}
		adminDone(w, r, Prefix+"users", what)
	})
}
