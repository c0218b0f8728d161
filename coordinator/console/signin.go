package console

import "net/http"

// This file signs people in to the console with the coordinator's own
// methods (OIDC, local password + TOTP, or the choice of both) and out
// again. Not built yet: the sign-in page says so.

func (s *Server) signInRoutes() {
	s.mux.HandleFunc("GET "+Prefix+"login", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, nil, "login", "Sign in", nil)
	})
}
