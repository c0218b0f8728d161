package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// Just-in-time access for admins (warren-coordinator access …): list,
// approve, deny, revoke and the history. Requests are filed from nodes
// (the control channel), never here. Every decision goes through
// access.Service, which checks and audits it; an admin's approval is an
// explicit operator action, audited as such.

// AccessDecision is the body of approve, deny and revoke.
type AccessDecision struct {
	// For shortens an approval ("1h"); empty keeps the requested
	// duration.
	For string `json:"for,omitempty"`
	// Reason is a denial's or revocation's reason.
	Reason string `json:"reason,omitempty"`
}

// AccessQuery selects the history (all fields optional).
type AccessQuery struct {
	Since string // created at or after: "1h", "7d" or RFC 3339
	User  string // the requester's login
	State string // one of wire's Access* states
	Limit int
}

// maxDecisionBody bounds a decision's body: a reason and a duration.
const maxDecisionBody = 4 << 10

// decodeDecision reads and checks a decision's body: known fields only,
// a positive duration of at most a year, a reason of at most
// access.MaxReason bytes of valid text.
func decodeDecision(body []byte) (d time.Duration, reason string, err error) {
	if len(body) > maxDecisionBody {
		return 0, "", fmt.Errorf("%w: larger than %d bytes", errBadBody, maxDecisionBody)
	}
	var in AccessDecision
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return 0, "", fmt.Errorf("%w: %w", errBadBody, err)
		}
		if dec.More() {
			return 0, "", fmt.Errorf("%w: more than one JSON value", errBadBody)
		}
	}
	if in.For != "" {
		if d, err = time.ParseDuration(in.For); err != nil || d <= 0 || d > 366*24*time.Hour {
			return 0, "", fmt.Errorf("%w: for %q: want a duration such as 1h30m", errBadBody, in.For)
		}
	}
	if len(in.Reason) > access.MaxReason {
		return 0, "", fmt.Errorf("%w: reason longer than %d bytes", errBadBody, access.MaxReason)
	}
	return d, strings.TrimSpace(in.Reason), nil
}

func (s *Server) accessRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v1/access", s.listAccess)
	m.HandleFunc("GET /api/v1/access/history", s.accessHistory)
	m.HandleFunc("POST /api/v1/access/{id}/approve", s.decideAccess("approve"))
	m.HandleFunc("POST /api/v1/access/{id}/deny", s.decideAccess("deny"))
	m.HandleFunc("POST /api/v1/access/{id}/revoke", s.decideAccess("revoke"))
}

// errNoAccess: the coordinator runs without the access service.
var errNoAccess = errors.New("just-in-time access is not enabled on this coordinator")

func (s *Server) accessCaller(r *http.Request) access.Caller {
	return access.Caller{Actor: actorFrom(r.Context())}
}

func (s *Server) listAccess(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Access == nil {
		writeJSON(w, http.StatusNotImplemented, ErrorResponse{Error: errNoAccess.Error()})
		return
	}
	rs, err := s.cfg.Access.List(r.Context(), s.accessCaller(r), r.URL.Query().Get("pending") != "")
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rs)
}

func (s *Server) accessHistory(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Access == nil {
		writeJSON(w, http.StatusNotImplemented, ErrorResponse{Error: errNoAccess.Error()})
		return
	}
	q := r.URL.Query()
	f := store.AccessFilter{Login: q.Get("user")}
	var err error
	if st := q.Get("state"); st != "" {
		switch st {
		case wire.AccessPending, wire.AccessActive, wire.AccessDenied, wire.AccessCancelled, wire.AccessExpired, wire.AccessRevoked:
			f.States = []string{st}
		default:
			err = fmt.Errorf("%w: state %q: want pending, active, denied, cancelled, expired or revoked", errBadQuery, st)
		}
	}
	if err == nil {
		if f.Limit, err = limitParam(q); err == nil {
			f.Since, err = ParseWhen(q.Get("since"), s.cfg.Now())
		}
	}
	if err != nil {
		writeQueryErr(w, err)
		return
	}
	rs, err := s.cfg.Access.History(r.Context(), s.accessCaller(r), f)
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rs)
}

func (s *Server) decideAccess(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Access == nil {
			writeJSON(w, http.StatusNotImplemented, ErrorResponse{Error: errNoAccess.Error()})
			return
		}
		body, err := readBody(r, maxDecisionBody)
		if err != nil {
			writeErr(w, err)
			return
		}
		d, reason, err := decodeDecision(body)
		if err != nil {
			writeErr(w, err)
			return
		}
		switch {
		case op == "approve" && reason != "":
			err = fmt.Errorf("%w: an approval takes no reason", errBadBody)
		case op != "approve" && d != 0:
			err = fmt.Errorf("%w: only an approval takes a duration", errBadBody)
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		c, id := s.accessCaller(r), r.PathValue("id")
		var out wire.AccessRequest
		switch op {
		case "approve":
			out, err = s.cfg.Access.Approve(r.Context(), c, id, d)
		case "deny":
			out, err = s.cfg.Access.Deny(r.Context(), c, id, reason)
		case "revoke":
			out, err = s.cfg.Access.Revoke(r.Context(), c, id, reason)
		}
		if err != nil {
			writeAccessErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// readBody reads up to n bytes of r's body (errBadBody past them).
func readBody(r *http.Request, n int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, n))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadBody, err)
	}
	return b, nil
}

// accessStatus is the HTTP status of each access code.
var accessStatus = map[string]int{
	wire.AccessForbidden:   http.StatusForbidden,
	wire.AccessNotFound:    http.StatusNotFound,
	wire.AccessInvalid:     http.StatusBadRequest,
	wire.AccessNoRule:      http.StatusUnprocessableEntity,
	wire.AccessConflict:    http.StatusConflict,
	wire.AccessMFARequired: http.StatusForbidden,
}

// AccessErrorResponse is an access refusal: the message and its code.
type AccessErrorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeAccessErr(w http.ResponseWriter, err error) {
	var ae *access.Error
	if !errors.As(err, &ae) {
		writeErr(w, err)
		return
	}
	status, ok := accessStatus[ae.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, AccessErrorResponse{Error: ae.Message, Code: ae.Code})
}

// ListAccess lists the access requests: all of them for an admin, or
// with pending only the pending ones.
func (c *Client) ListAccess(ctx context.Context, pending bool) ([]wire.AccessRequest, error) {
	path := "/api/v1/access"
	if pending {
		path += "?pending=1"
	}
	return call[[]wire.AccessRequest](ctx, c, "GET", path, nil)
}

// AccessHistory lists the requests q selects, newest first.
func (c *Client) AccessHistory(ctx context.Context, q AccessQuery) ([]wire.AccessRequest, error) {
	v := url.Values{}
	for k, s := range map[string]string{"since": q.Since, "user": q.User, "state": q.State} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	return call[[]wire.AccessRequest](ctx, c, "GET", "/api/v1/access/history?"+v.Encode(), nil)
}

// DecideAccess approves, denies or revokes request id (op "approve",
// "deny" or "revoke").
func (c *Client) DecideAccess(ctx context.Context, op, id string, d AccessDecision) (wire.AccessRequest, error) {
	return call[wire.AccessRequest](ctx, c, "POST", "/api/v1/access/"+url.PathEscape(id)+"/"+op, d)
}
