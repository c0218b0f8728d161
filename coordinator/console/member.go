package console

import "net/http"

// This file holds the pages every signed-in user gets: the home page,
// their own devices, what they can reach, their access requests.

func (s *Server) memberRoutes() {
	s.handle("GET "+Prefix+"{$}", roleMember, func(w http.ResponseWriter, r *http.Request, p *page) {
		s.render(w, p, "home", "Warren", nil)
	})
}
