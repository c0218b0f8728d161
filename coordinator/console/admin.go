package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// This file registers the admin pages (overview, users, nodes, pre-auth
// keys, audit log, access requests, live updates) and what they share:
// reading IDs and confirmations from forms, answering a change with a
// redirect that names what was done, and turning the registry's and the
// access service's errors into status pages. Every page and form here is
// for admins (roleAdmin), and every change calls the registry or the
// access service with the page's Actor, exactly as the admin API does:
// they decide and audit, the console only asks.

func (s *Server) adminRoutes() {
	s.overviewRoutes()
	s.userRoutes()
	s.nodeRoutes()
	s.keyRoutes()
	s.auditRoutes()
	s.accessRoutes()
	s.eventRoutes()
}

// maxAdminForm bounds a console form's body.
const maxAdminForm = 64 << 10

// errAdminForm is a form that is malformed or misses a field.
var errAdminForm = errors.New("bad form")

// parseForm reads r's form within maxAdminForm.
func adminParseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminForm)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("%w: %w", errAdminForm, err)
	}
	return nil
}

// pathID is the positive number in the path's {id}.
func adminPathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: the ID in the address must be a positive number", errAdminForm)
	}
	return id, nil
}

// confirmed reports whether a destructive form was confirmed: its
// "confirm" checkbox is ticked.
func adminConfirmed(r *http.Request) bool { return r.PostFormValue("confirm") == "yes" }

// errAdminNotConfirmed is a destructive form sent without its confirmation.
var errAdminNotConfirmed = fmt.Errorf("%w: tick the confirmation box to do this", errAdminForm)

// done answers a change that succeeded with a redirect to where (a
// console path), saying what was done with one of the fixed messages
// (adminDoneMessages), so that reloading the page does not post again and no
// text from a request is ever shown as the console's own.
func adminDone(w http.ResponseWriter, r *http.Request, where, what string) {
	u := where
	if what != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "done=" + url.QueryEscape(what)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// adminDoneMessages are the messages done may show.
var adminDoneMessages = map[string]string{
	"approved":     "The node was approved.",
	"expired":      "The node's key was expired.",
	"renamed":      "The node was renamed.",
	"deleted-node": "The node was deleted.",
	"lifetime":     "The node's key lifetime was changed.",
	"routes":       "The node's routes were changed.",
	"tags":         "The node's tags were changed.",
	"disabled":     "The user was disabled.",
	"enabled":      "The user was enabled.",
	"deleted-user": "The user was deleted.",
	"role":         "The user's role was changed.",
	"revoked-key":  "The pre-auth key was revoked.",
	"access":       "The access request was decided.",
}

// doneMessage is the message for the request's "done" parameter, if any.
func adminDoneMessage(r *http.Request) string { return adminDoneMessages[r.URL.Query().Get("done")] }

// fail answers a change or a read that failed with a status page: 403
// for what the registry or access service refused, 404 for what does not
// exist, 409 for a conflict, 400 for a bad form or a refused value, and
// 500 (logged, not shown) for anything else.
func (s *Server) adminFail(w http.ResponseWriter, r *http.Request, p *page, err error) {
	code, msg := http.StatusInternalServerError, "the coordinator could not do this; see its log"
	var ae *access.Error
	switch {
	case errors.As(err, &ae):
		code, msg = adminAccessStatus(ae.Code), ae.Message
	case errors.Is(err, registry.ErrForbidden), errors.Is(err, registry.ErrTagNotOwned):
		code, msg = http.StatusForbidden, err.Error()
	case errors.Is(err, store.ErrNotFound):
		code, msg = http.StatusNotFound, "not found: it may have been deleted"
	case errors.Is(err, store.ErrConflict):
		code, msg = http.StatusConflict, err.Error()
	case errors.Is(err, errAdminForm), errors.Is(err, registry.ErrBadRequest):
		code, msg = http.StatusBadRequest, err.Error()
	default:
		s.log.Error("console: admin page", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	s.renderStatus(w, p, code, http.StatusText(code), msg)
}

// adminAccessStatus is the HTTP status of an access refusal's code.
func adminAccessStatus(code string) int {
	switch code {
	case wire.AccessForbidden, wire.AccessMFARequired:
		return http.StatusForbidden
	case wire.AccessNotFound:
		return http.StatusNotFound
	case wire.AccessInvalid:
		return http.StatusBadRequest
	case wire.AccessNoRule:
		return http.StatusUnprocessableEntity
	case wire.AccessConflict:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
