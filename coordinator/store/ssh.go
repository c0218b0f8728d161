package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SSH sessions (migration 15): one row per session a node's SSH server
// reported starting (wire.SSHOpStart), completed when it reports the end.
// A row keeps the names and login as they were at the start, so the
// history reads the same after a rename or deletion. The coordinator's
// single-use recording token is stored as its SHA-256, never itself.

// SSHSession is one stored SSH session.
type SSHSession struct {
	ID        string // the node's session ID ("ssh-…")
	Node      NodeID // the destination (the node that runs the SSH server)
	NodeName  string
	Src       NodeID // the connecting peer
	SrcName   string
	SrcAddr   string
	User      UserID // the source node's owner (0: a tagged source)
	Login     string // the owner's login, or the source's tags for a tagged one
	LocalUser string
	Rule      string // the ssh rule that admitted it ("ssh[1]")
	Command   string // "" for a login shell
	PTY       bool
	// Recorder is where the session is recorded ("coordinator", a
	// recorder node's name, "" for none); Recording its address there.
	Recorder, Recording string
	Unrecorded          bool // the rule wanted a recording no recorder took (fail open)
	Started, Ended      time.Time
	Duration            time.Duration
	ExitCode            int // -1: none
	Reason              string
}

// SSHSessionFilter selects sessions; zero fields match everything.
type SSHSessionFilter struct {
	Login string // the source user's login
	Node  NodeID // the destination or the source
	Since time.Time
	Limit int // 0: 1000
}

const sshCols = `id, node_id, node_name, src_node_id, src_name, src_addr, user_id, login, local_user, rule, command, pty,
	recorder, recording, unrecorded, started_at, ended_at, duration_ns, exit_code, reason`

func scanSSH(row interface{ Scan(...any) error }) (SSHSession, error) {
	var s SSHSession
	var pty, unrec int
	var started, ended, dur int64
	err := row.Scan(&s.ID, &s.Node, &s.NodeName, &s.Src, &s.SrcName, &s.SrcAddr, &s.User, &s.Login, &s.LocalUser, &s.Rule, &s.Command, &pty,
		&s.Recorder, &s.Recording, &unrec, &started, &ended, &dur, &s.ExitCode, &s.Reason)
	s.PTY, s.Unrecorded = pty != 0, unrec != 0
	s.Started, s.Ended, s.Duration = fromNanos(started), fromNanos(ended), time.Duration(dur)
	return s, err
}

// HashRecordToken is what the store keeps of a recording token.
func HashRecordToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func (q queries) CreateSSHSession(ctx context.Context, s SSHSession, recordToken string) error {
	hash := ""
	if recordToken != "" {
		hash = HashRecordToken(recordToken)
	}
	_, err := q.q.ExecContext(ctx, `INSERT INTO ssh_sessions (`+sshCols+`, record_token)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.Node, s.NodeName, s.Src, s.SrcName, s.SrcAddr, s.User, s.Login, s.LocalUser, s.Rule, s.Command, boolInt(s.PTY),
		s.Recorder, s.Recording, boolInt(s.Unrecorded), nanos(s.Started), nanos(s.Ended), int64(s.Duration), s.ExitCode, s.Reason, hash)
	if err != nil {
		return fmt.Errorf("create ssh session: %w", wrapErr(err))
	}
	return nil
}

func (q queries) GetSSHSession(ctx context.Context, id string) (SSHSession, error) {
	s, err := scanSSH(q.q.QueryRowContext(ctx, `SELECT `+sshCols+` FROM ssh_sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("ssh session %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("get ssh session: %w", err)
	}
	return s, nil
}

func (q queries) ListSSHSessions(ctx context.Context, f SSHSessionFilter) ([]SSHSession, error) {
	var where []string
	var args []any
	if f.Login != "" {
		where, args = append(where, "login = ?"), append(args, f.Login)
	}
	if f.Node != 0 {
		where, args = append(where, "(node_id = ? OR src_node_id = ?)"), append(args, f.Node, f.Node)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "started_at >= ?"), append(args, nanos(f.Since))
	}
	query := `SELECT ` + sshCols + ` FROM ssh_sessions`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAccessLimit
	}
	args = append(args, min(limit, maxAccessLimit))
	return list(ctx, q, "ssh sessions", query+` ORDER BY started_at DESC, id LIMIT ?`, scanSSH, args...)
}

func (q queries) EndSSHSession(ctx context.Context, s SSHSession) error {
	res, err := q.q.ExecContext(ctx, `UPDATE ssh_sessions SET ended_at = ?, duration_ns = ?, exit_code = ?, reason = ?, record_token = ''
		WHERE id = ? AND node_id = ? AND ended_at = 0`, nanos(s.Ended), int64(s.Duration), s.ExitCode, s.Reason, s.ID, s.Node)
	if err != nil {
		return fmt.Errorf("end ssh session: %w", wrapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("open ssh session %s of node %d: %w", s.ID, s.Node, ErrNotFound)
	}
	return nil
}

func (q queries) TakeSSHRecordToken(ctx context.Context, id, token string) (SSHSession, error) {
	var stored string
	err := q.q.QueryRowContext(ctx, `SELECT record_token FROM ssh_sessions WHERE id = ?`, id).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return SSHSession{}, fmt.Errorf("ssh session %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return SSHSession{}, fmt.Errorf("ssh record token: %w", err)
	}
	want := HashRecordToken(token)
	if stored == "" || token == "" || subtle.ConstantTimeCompare([]byte(stored), []byte(want)) != 1 {
		return SSHSession{}, fmt.Errorf("ssh session %s: %w", id, ErrNotFound)
	}
	res, err := q.q.ExecContext(ctx, `UPDATE ssh_sessions SET record_token = '' WHERE id = ? AND record_token = ?`, id, stored)
	if err != nil {
		return SSHSession{}, fmt.Errorf("ssh record token: %w", wrapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return SSHSession{}, fmt.Errorf("ssh session %s: %w", id, ErrNotFound)
	}
	return q.GetSSHSession(ctx, id)
}

func (q queries) SetSSHRecording(ctx context.Context, id, recording string) error {
	_, err := q.q.ExecContext(ctx, `UPDATE ssh_sessions SET recording = ? WHERE id = ?`, recording, id)
	if err != nil {
		return fmt.Errorf("set ssh recording: %w", wrapErr(err))
	}
	return nil
}

// The Store's own reads run on the read pool; TakeSSHRecordToken reads
// and writes in one transaction.

func (s *sqlStore) GetSSHSession(ctx context.Context, id string) (SSHSession, error) {
	return s.r.GetSSHSession(ctx, id)
}

func (s *sqlStore) ListSSHSessions(ctx context.Context, f SSHSessionFilter) ([]SSHSession, error) {
	return s.r.ListSSHSessions(ctx, f)
}

func (s *sqlStore) TakeSSHRecordToken(ctx context.Context, id, token string) (SSHSession, error) {
	return writeGet(ctx, s, func(q Queries) (SSHSession, error) { return q.TakeSSHRecordToken(ctx, id, token) })
}
