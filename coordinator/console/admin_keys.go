package console

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// This file is the pre-auth keys page: the keys (by prefix only: the
// store keeps no secret), a form that creates one through the registry
// and shows its secret once, on the answer to that form and never again,
// and revoking a key.

type keyRow struct {
	store.AuthKey
	User, Creator string
	Expired       bool
}

type keysData struct {
	Done  string
	Keys  []keyRow
	Users []store.User // owners to choose from
	// Created is the key just created and Secret its plaintext: set only
	// on the answer to the create form.
	Created *keyRow
	Secret  string
}

func (s *Server) keyRoutes() {
	s.handle("GET "+Prefix+"keys", roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		s.keysPage(w, r, p, keysData{Done: adminDoneMessage(r)})
	})
	s.handle("POST "+Prefix+"keys", roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		req, err := authKeyForm(w, r)
		var k store.AuthKey
		var secret string
		if err == nil {
			k, secret, err = s.cfg.Registry.CreateAuthKey(r.Context(), p.Actor, req)
		}
		if err != nil {
			s.adminFail(w, r, p, err)
			return
		}
		s.keysPage(w, r, p, keysData{Created: &keyRow{AuthKey: k}, Secret: secret})
	})
	s.handle("POST "+Prefix+"keys/{id}/revoke", roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		id, err := adminPathID(r)
		if err == nil {
			err = adminParseForm(w, r)
		}
		if err == nil && !adminConfirmed(r) {
			err = errAdminNotConfirmed
		}
		if err == nil {
			_, err = s.cfg.Registry.RevokeAuthKey(r.Context(), p.Actor, store.AuthKeyID(id), false)
		}
		if err != nil {
			s.adminFail(w, r, p, err)
			return
		}
		adminDone(w, r, Prefix+"keys", "revoked-key")
	})
}

// authKeyForm reads the create form: owner (a user ID; empty: the admin),
// tags, expiry (a duration; empty: the registry's default), reusable,
// ephemeral.
func authKeyForm(w http.ResponseWriter, r *http.Request) (registry.AuthKeyRequest, error) {
	var req registry.AuthKeyRequest
	if err := adminParseForm(w, r); err != nil {
		return req, err
	}
	if v := r.PostFormValue("user"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return req, fmt.Errorf("%w: owner %q", errAdminForm, v)
		}
		req.UserID = store.UserID(id)
	}
	req.Tags = splitList(r.PostFormValue("tags"))
	if v := strings.TrimSpace(r.PostFormValue("expiry")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return req, fmt.Errorf("%w: expiry %q: write a positive duration such as 1h or 720h", errAdminForm, v)
		}
		req.TTL = d
	}
	req.Reusable = r.PostFormValue("reusable") == "yes"
	req.Ephemeral = r.PostFormValue("ephemeral") == "yes"
	return req, nil
}

// keysPage renders the keys page with d (whose Done, Created and Secret
// the caller set).
func (s *Server) keysPage(w http.ResponseWriter, r *http.Request, p *page, d keysData) {
	keys, err := s.cfg.Registry.ListAuthKeys(r.Context(), p.Actor)
	if err == nil {
		d.Users, err = s.cfg.Registry.ListUsers(r.Context(), p.Actor)
	}
	if err != nil {
		s.adminFail(w, r, p, err)
		return
	}
	names := make(map[store.UserID]string, len(d.Users))
	for _, u := range d.Users {
		names[u.ID] = u.Name
	}
	now := s.cfg.Now()
	row := func(k store.AuthKey) keyRow {
		return keyRow{AuthKey: k, User: names[k.UserID], Creator: names[k.CreatorID],
			Expired: !k.Expiration.IsZero() && !now.Before(k.Expiration)}
	}
	for _, k := range keys {
		d.Keys = append(d.Keys, row(k))
	}
	slices.SortFunc(d.Keys, func(a, b keyRow) int { return b.Created.Compare(a.Created) })
	if d.Created != nil {
		c := row(d.Created.AuthKey)
		d.Created = &c
	}
	s.render(w, p, "admin_keys", "Pre-auth keys", d)
}
