package coordinator

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/control"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/recording"
)

// The coordinator as the default SSH session recorder: a node whose rule
// wants a recording and names no recorder streams the session's cast to
// POST /ssh/record/SESSION with the single-use bearer token of its start
// call (control/ssh.go). The cast is stored under
// <StateDir>/recordings by package recording, bounded in size, named for
// the session, with metadata from the session's stored row (never from
// the node's claims); admins read it at
// /api/v1/ssh/sessions/SESSION/recording.

// recordingsDir opens <stateDir>/recordings.
func recordingsDir(stateDir string) (*recording.Dir, error) {
	d, err := recording.NewDir(filepath.Join(stateDir, "recordings"))
	if err != nil {
		return nil, err
	}
	d.LocationPrefix = "/api/v1/ssh/sessions/"
	return d, nil
}

// serveSSHRecord takes a session's cast: the token must be the one the
// start call handed out for this session, and is spent by this request
// (a second upload is refused). Failures are counted, never stored.
func (c *Coordinator) serveSSHRecord(w http.ResponseWriter, r *http.Request) {
	session := r.PathValue("session")
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" || len(tok) > 256 || !recording.ValidID(session) {
		c.refuseRecord(w, r, "a bearer token for this session is required")
		return
	}
	row, err := c.store.TakeSSHRecordToken(r.Context(), session, tok)
	if errors.Is(err, store.ErrNotFound) {
		c.refuseRecord(w, r, "unknown session or token (a token is good for one upload)")
		return
	}
	if err != nil {
		c.log.Error("ssh recording: token", "session", session, "err", err)
		refuseUpload(w, "the coordinator could not take the recording", http.StatusInternalServerError)
		return
	}
	// The row's ID is the session's (a constant-time check keeps the
	// comparison out of any timing).
	if subtle.ConstantTimeCompare([]byte(row.ID), []byte(session)) != 1 {
		c.refuseRecord(w, r, "unknown session or token")
		return
	}
	src := row.SrcName
	if row.SrcAddr != "" {
		src += " " + row.SrcAddr
	}
	c.recordings.Upload(w, r, recording.Meta{Session: row.ID, Node: row.NodeName, User: row.Login, LocalUser: row.LocalUser,
		Src: src, Started: row.Started, Uploader: "node:" + row.NodeName})
}

func (c *Coordinator) refuseRecord(w http.ResponseWriter, r *http.Request, msg string) {
	c.failures.Record("ssh.record", r.RemoteAddr, msg)
	refuseUpload(w, msg, http.StatusUnauthorized)
}

// refuseUpload answers an upload it will not read: the connection closes
// at once rather than waiting for a body that lasts as long as a session.
func refuseUpload(w http.ResponseWriter, msg string, code int) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}

// sshRecordRoute is the route of serveSSHRecord.
const sshRecordRoute = "POST " + control.RecordPath + "{session}"
