package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/warrenmesh/warren/coordinator/store"
)

// Local-login credential endpoints: an admin (or the user themselves) sets
// a user's password and enrolls TOTP. Passwords and secrets cross only
// this authenticated API and are never logged.

// SetPasswordRequest is the body of POST /api/v1/users/{id}/password.
type SetPasswordRequest struct {
	Password string `json:"password"`
}

// TOTPEnrollment is the answer of POST /api/v1/users/{id}/totp: the new
// secret and its otpauth:// URL, shown once.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URL    string `json:"url"`
}

func (s *Server) credentialRoutes() {
	s.mux.HandleFunc("POST /api/v1/users/{id}/password", s.setPassword)
	s.mux.HandleFunc("POST /api/v1/users/{id}/totp", s.enrollTOTP)
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) {
	var req SetPasswordRequest
	id, err := pathID(r)
	if err == nil {
		err = readJSON(r, &req)
	}
	if err == nil {
		err = s.cfg.Registry.SetUserPassword(r.Context(), actorFrom(r.Context()), store.UserID(id), req.Password)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) enrollTOTP(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	secret, url, err := s.cfg.Registry.EnrollUserTOTP(r.Context(), actorFrom(r.Context()), store.UserID(id), "")
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TOTPEnrollment{Secret: secret, URL: url})
}

// SetPassword sets user id's local-login password.
func (c *Client) SetPassword(ctx context.Context, id int64, password string) error {
	return c.do(ctx, "POST", fmt.Sprintf("/api/v1/users/%d/password", id), SetPasswordRequest{Password: password}, nil)
}

// EnrollTOTP gives user id a fresh TOTP secret and returns it.
func (c *Client) EnrollTOTP(ctx context.Context, id int64) (TOTPEnrollment, error) {
	return call[TOTPEnrollment](ctx, c, "POST", fmt.Sprintf("/api/v1/users/%d/totp", id), nil)
}
