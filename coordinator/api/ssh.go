package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/wire"
)

// SSH sessions (admins only): who opened which session to which node as
// which local user, when, for how long, and where it is recorded; and the
// recordings the coordinator holds itself.

// SSHSession is one SSH session as the API lists it.
type SSHSession struct {
	ID        string    `json:"id"`
	Node      int64     `json:"node"`     // the destination
	NodeName  string    `json:"nodeName"` // as at the start
	Src       int64     `json:"src"`      // the connecting peer
	SrcName   string    `json:"srcName"`
	SrcAddr   string    `json:"srcAddr,omitempty"`
	User      string    `json:"user"` // the source user's login (tags for a tagged source)
	LocalUser string    `json:"localUser"`
	Rule      string    `json:"rule,omitempty"`
	Command   string    `json:"command,omitempty"`
	PTY       bool      `json:"pty,omitempty"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended,omitzero"`
	// Duration is in seconds (0 while open).
	Duration float64 `json:"duration,omitempty"`
	ExitCode int     `json:"exitCode"` // -1: none (open, or cut)
	Reason   string  `json:"reason,omitempty"`
	// Recorder is "coordinator", a recorder node's name, or empty when
	// not recorded; Recording is the recording's address there: for the
	// coordinator the admin API path that serves it.
	Recorder   string `json:"recorder,omitempty"`
	Recording  string `json:"recording,omitempty"`
	Unrecorded bool   `json:"unrecorded,omitempty"`
}

// SSHQuery selects SSH sessions; empty fields match everything.
type SSHQuery struct {
	User  string // the source user's login
	Node  string // a node's name or ID, as destination or source
	Since string // "1h", "7d" or RFC 3339
	Limit int
}

func toSSHSession(r store.SSHSession) SSHSession {
	return SSHSession{ID: r.ID, Node: int64(r.Node), NodeName: r.NodeName, Src: int64(r.Src), SrcName: r.SrcName, SrcAddr: r.SrcAddr,
		User: r.Login, LocalUser: r.LocalUser, Rule: r.Rule, Command: r.Command, PTY: r.PTY, Started: r.Started, Ended: r.Ended,
		Duration: r.Duration.Seconds(), ExitCode: r.ExitCode, Reason: r.Reason, Recorder: r.Recorder, Recording: r.Recording, Unrecorded: r.Unrecorded}
}

func (s *Server) sshRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v1/ssh/sessions", s.sshAdmin(s.listSSH))
	m.HandleFunc("GET /api/v1/ssh/sessions/{session}", s.sshAdmin(s.getSSH))
	m.HandleFunc("GET /api/v1/ssh/sessions/{session}/recording", s.sshAdmin(s.sshRecording))
}

func (s *Server) sshAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a := actorFrom(r.Context()); !a.Admin {
			writeErr(w, fmt.Errorf("%w: only admins may read SSH sessions", registry.ErrForbidden))
			return
		}
		h(w, r)
	}
}

func (s *Server) listSSH(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.SSHSessionFilter{Login: q.Get("user")}
	var err error
	if n := q.Get("node"); n != "" {
		if id, perr := strconv.ParseInt(n, 10, 64); perr == nil && id > 0 {
			f.Node = store.NodeID(id)
		} else if pn, ok := s.cfg.Engine.PolicyNode(n); ok {
			f.Node = store.NodeID(pn.ID)
		} else {
			err = fmt.Errorf("%w: no node %q", errBadQuery, n)
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
	rows, err := s.cfg.Store.ListSSHSessions(r.Context(), f)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := make([]SSHSession, 0, len(rows))
	for _, row := range rows {
		out = append(out, toSSHSession(row))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getSSH(w http.ResponseWriter, r *http.Request) {
	row, err := s.cfg.Store.GetSSHSession(r.Context(), r.PathValue("session"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toSSHSession(row))
}

// sshRecording serves the cast of a session the coordinator recorded. A
// session recorded elsewhere is answered 409 naming where.
func (s *Server) sshRecording(w http.ResponseWriter, r *http.Request) {
	row, err := s.cfg.Store.GetSSHSession(r.Context(), r.PathValue("session"))
	if err != nil {
		writeErr(w, err)
		return
	}
	switch {
	case row.Recorder == "":
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "session " + row.ID + " was not recorded"})
		return
	case row.Recorder != wire.RecordToCoordinator:
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: fmt.Sprintf("session %s is recorded by the recorder node %s at %s", row.ID, row.Recorder, row.Recording)})
		return
	case s.cfg.Recordings == nil:
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "this coordinator keeps no recordings"})
		return
	}
	f, err := s.cfg.Recordings.Open(row.ID)
	if err != nil {
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "no recording of session " + row.ID + " was received"})
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", recording.ContentType)
	_, _ = io.Copy(w, f)
}

// ListSSHSessions lists the SSH sessions q selects, newest first.
func (c *Client) ListSSHSessions(ctx context.Context, q SSHQuery) ([]SSHSession, error) {
	v := url.Values{}
	for k, s := range map[string]string{"user": q.User, "node": q.Node, "since": q.Since} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	return call[[]SSHSession](ctx, c, "GET", "/api/v1/ssh/sessions?"+v.Encode(), nil)
}

// GetSSHSession returns one SSH session.
func (c *Client) GetSSHSession(ctx context.Context, id string) (SSHSession, error) {
	return call[SSHSession](ctx, c, "GET", "/api/v1/ssh/sessions/"+url.PathEscape(id), nil)
}

// ErrRecordedElsewhere is returned by SSHRecording for a session a
// recorder node holds (the *Error says where).
var ErrRecordedElsewhere = errors.New("recorded by a recorder node")

// SSHRecording writes the cast of session id, recorded by the
// coordinator, to w.
func (c *Client) SSHRecording(ctx context.Context, id string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/ssh/sessions/"+url.PathEscape(id)+"/recording", nil)
	if err != nil {
		return err
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach coordinator admin API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var er ErrorResponse
		if json.Unmarshal(data, &er) != nil || er.Error == "" {
			er.Error = strings.TrimSpace(string(data))
		}
		e := &Error{Status: resp.StatusCode, Message: er.Error}
		if resp.StatusCode == http.StatusConflict {
			return fmt.Errorf("%w: %w", ErrRecordedElsewhere, e)
		}
		return e
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read the recording: %w", err)
	}
	return nil
}
