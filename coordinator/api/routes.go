package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /api/v1/whoami", s.whoami)
	m.HandleFunc("GET /api/v1/users", s.listUsers)
	m.HandleFunc("POST /api/v1/users", s.createUser)
	m.HandleFunc("POST /api/v1/users/{id}/disable", s.setUserDisabled(true))
	m.HandleFunc("POST /api/v1/users/{id}/enable", s.setUserDisabled(false))
	m.HandleFunc("POST /api/v1/users/{id}/role", s.setUserRole)
	m.HandleFunc("DELETE /api/v1/users/{id}", s.deleteUser)
	m.HandleFunc("GET /api/v1/nodes", s.listNodes)
	m.HandleFunc("POST /api/v1/nodes/{id}/expire", s.expireNode)
	m.HandleFunc("POST /api/v1/nodes/{id}/approve", s.approveNode)
	m.HandleFunc("POST /api/v1/nodes/{id}/tags", s.tagNode)
	m.HandleFunc("POST /api/v1/nodes/{id}/key-lifetime", s.setKeyLifetime)
	m.HandleFunc("POST /api/v1/nodes/{id}/rename", s.renameNode)
	m.HandleFunc("DELETE /api/v1/nodes/{id}", s.deleteNode)
	m.HandleFunc("GET /api/v1/authkeys", s.listAuthKeys)
	m.HandleFunc("POST /api/v1/authkeys", s.createAuthKey)
	m.HandleFunc("POST /api/v1/authkeys/{id}/revoke", s.revokeAuthKey(false))
	m.HandleFunc("POST /api/v1/authkeys/{id}/expire", s.revokeAuthKey(true))
	m.HandleFunc("GET /api/v1/apikeys", s.listAPIKeys)
	m.HandleFunc("POST /api/v1/apikeys", s.createAPIKey)
	m.HandleFunc("GET /api/v1/audit", s.listAudit)
	m.HandleFunc("GET /api/v1/flows", s.listFlows)
	s.policyRoutes()
	s.credentialRoutes()
	s.nodeRouteRoutes(m)
	s.attrRoutes(m)
	s.accessRoutes(m)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	a := actorFrom(r.Context())
	writeJSON(w, http.StatusOK, WhoAmI{Actor: a.Name, Admin: a.Admin})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.cfg.Registry.ListUsers(r.Context(), actorFrom(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]User, 0, len(users))
	for _, u := range users {
		out = append(out, s.userJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req CreateUserRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	u := store.User{Name: req.Name, Email: req.Email, Groups: req.Groups, Role: store.RoleMember}
	if req.Admin {
		u.Role = store.RoleAdmin
	}
	u, err := s.cfg.Registry.CreateUser(r.Context(), actorFrom(r.Context()), u)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.userJSON(u))
}

func (s *Server) setUserDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err == nil {
			var u store.User
			u, err = s.cfg.Registry.SetUserDisabled(r.Context(), actorFrom(r.Context()), store.UserID(id), disabled)
			if err == nil {
				writeJSON(w, http.StatusOK, s.userJSON(u))
				return
			}
		}
		writeErr(w, err)
	}
}

func (s *Server) setUserRole(w http.ResponseWriter, r *http.Request) {
	var req SetRoleRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	id, err := pathID(r)
	if err == nil {
		var u store.User
		u, err = s.cfg.Registry.SetUserRole(r.Context(), actorFrom(r.Context()), store.UserID(id), store.Role(req.Role))
		if err == nil {
			writeJSON(w, http.StatusOK, s.userJSON(u))
			return
		}
	}
	writeErr(w, err)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.Registry.DeleteUser(r.Context(), actorFrom(r.Context()), store.UserID(id))
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.cfg.Registry.ListNodes(r.Context(), actorFrom(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, nodeJSON(n))
	}
	writeJSON(w, http.StatusOK, out)
}

// nodeChange runs a registry change on the node named in the path and
// answers with the node as it now is.
func (s *Server) nodeChange(w http.ResponseWriter, r *http.Request, fn func(id store.NodeID) error) {
	id, err := pathID(r)
	if err == nil {
		err = fn(store.NodeID(id))
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	nodes, err := s.cfg.Registry.ListNodes(r.Context(), actorFrom(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	for _, n := range nodes {
		if int64(n.ID) == id {
			writeJSON(w, http.StatusOK, nodeJSON(n))
			return
		}
	}
	writeErr(w, store.ErrNotFound)
}

func (s *Server) expireNode(w http.ResponseWriter, r *http.Request) {
	s.nodeChange(w, r, func(id store.NodeID) error {
		_, err := s.cfg.Registry.ExpireNode(r.Context(), actorFrom(r.Context()), id)
		return err
	})
}

func (s *Server) approveNode(w http.ResponseWriter, r *http.Request) {
	s.nodeChange(w, r, func(id store.NodeID) error {
		_, err := s.cfg.Registry.ApproveNode(r.Context(), actorFrom(r.Context()), id)
		return err
	})
}

func (s *Server) tagNode(w http.ResponseWriter, r *http.Request) {
	var req SetTagsRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	s.nodeChange(w, r, func(id store.NodeID) error {
		_, err := s.cfg.Registry.SetTags(r.Context(), actorFrom(r.Context()), id, req.Tags)
		return err
	})
}

func (s *Server) setKeyLifetime(w http.ResponseWriter, r *http.Request) {
	var req SetKeyLifetimeRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	lifetime, err := ParseKeyLifetime(req.Lifetime)
	if err != nil {
		writeErr(w, fmt.Errorf("%w: %w", errBadBody, err))
		return
	}
	s.nodeChange(w, r, func(id store.NodeID) error {
		_, err := s.cfg.Registry.SetKeyLifetime(r.Context(), actorFrom(r.Context()), id, lifetime)
		return err
	})
}

func (s *Server) renameNode(w http.ResponseWriter, r *http.Request) {
	var req RenameNodeRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	s.nodeChange(w, r, func(id store.NodeID) error {
		_, err := s.cfg.Registry.RenameNode(r.Context(), actorFrom(r.Context()), id, req.Name)
		return err
	})
}

func (s *Server) deleteNode(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.Registry.DeleteNode(r.Context(), actorFrom(r.Context()), store.NodeID(id))
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listAuthKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Registry.ListAuthKeys(r.Context(), actorFrom(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	names, err := s.userNames(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]AuthKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, authKeyJSON(k, "", names))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createAuthKey(w http.ResponseWriter, r *http.Request) {
	var req CreateAuthKeyRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	k, plain, err := s.cfg.Registry.CreateAuthKey(r.Context(), actorFrom(r.Context()), registry.AuthKeyRequest{
		UserID: store.UserID(req.UserID), Reusable: req.Reusable, Ephemeral: req.Ephemeral, Tags: req.Tags, TTL: time.Duration(req.TTL),
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	names, err := s.userNames(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, authKeyJSON(k, plain, names))
}

func (s *Server) revokeAuthKey(expire bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err == nil {
			var k store.AuthKey
			k, err = s.cfg.Registry.RevokeAuthKey(r.Context(), actorFrom(r.Context()), store.AuthKeyID(id), expire)
			if err == nil {
				writeJSON(w, http.StatusOK, authKeyJSON(k, "", nil))
				return
			}
		}
		writeErr(w, err)
	}
}

func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Registry.ListAPIKeys(r.Context(), actorFrom(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	names, err := s.userNames(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]APIKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, apiKeyJSON(k, "", names))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) {
	var req CreateAPIKeyRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	var k store.APIKey
	var plain string
	var err error
	switch store.APIKeyRole(req.Role) {
	case store.APIKeyOwner:
		if req.Name != "" {
			writeErr(w, fmt.Errorf("%w: only integration keys have a name (role \"integration\")", errBadBody))
			return
		}
		k, plain, err = s.cfg.Registry.CreateAPIKey(r.Context(), actorFrom(r.Context()), store.UserID(req.UserID), time.Duration(req.TTL))
	case store.APIKeyIntegration:
		k, plain, err = s.cfg.Registry.CreateIntegrationKey(r.Context(), actorFrom(r.Context()), store.UserID(req.UserID), req.Name, time.Duration(req.TTL))
	default:
		err = fmt.Errorf("%w: unknown role %q (none, or \"integration\")", errBadBody, req.Role)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, apiKeyJSON(k, plain, nil))
}

// userNames returns the names of the users the caller may see (all for
// admins, itself for members: the owners of what it may list).
func (s *Server) userNames(r *http.Request) (userNames, error) {
	users, err := s.cfg.Registry.ListUsers(r.Context(), actorFrom(r.Context()))
	if err != nil {
		return nil, err
	}
	names := make(userNames, len(users))
	for _, u := range users {
		names[u.ID] = u.Name
	}
	return names, nil
}
