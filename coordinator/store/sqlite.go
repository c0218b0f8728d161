package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteStore is the embedded SQLite backend.
type sqliteStore struct {
	queries
	db  *sql.DB
	log *slog.Logger
}

// Open opens (creating if needed) the SQLite database at path, applies
// pending schema migrations and returns the store. The database runs in WAL
// mode with foreign keys on; write transactions take the write lock at
// BEGIN so concurrent writers queue instead of deadlocking.
func Open(ctx context.Context, path string, logger *slog.Logger) (Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Create the file owner-only before SQLite does: it holds key hashes
	// and the audit trail, and SQLite gives its WAL the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	f.Close()
	// Every pooled connection runs these pragmas in order; busy_timeout
	// comes first so that switching to WAL also waits for other openers.
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := pingUntilFree(ctx, db, 10*time.Second); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &sqliteStore{queries: queries{q: db}, db: db, log: logger}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return s, nil
}

// pingUntilFree opens the first connection, retrying while SQLite reports
// the database busy. Switching a new file to WAL takes an exclusive lock
// and SQLite returns SQLITE_BUSY at once, without the busy handler, to
// another connection that opens during the switch or during WAL recovery;
// so two processes starting on one fresh file would otherwise race.
func pingUntilFree(ctx context.Context, db *sql.DB, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	wait := 5 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY or one of its
// extended codes.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// Close closes the database.
func (s *sqliteStore) Close() error { return s.db.Close() }

// Tx runs fn in one immediate (write-locked) transaction. It rolls back if
// fn returns an error, which it returns as is, or panics, in which case the
// panic goes on after the rollback.
func (s *sqliteStore) Tx(ctx context.Context, fn func(q Queries) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(queries{q: tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", wrapErr(err))
	}
	committed = true
	return nil
}

// Multi-statement operations run in their own transaction when called on
// the store directly.

func (s *sqliteStore) CreateNode(ctx context.Context, n Node) (out Node, err error) {
	err = s.Tx(ctx, func(q Queries) error { out, err = q.CreateNode(ctx, n); return err })
	return out, err
}

func (s *sqliteStore) UpdateNode(ctx context.Context, n Node) (out Node, err error) {
	err = s.Tx(ctx, func(q Queries) error { out, err = q.UpdateNode(ctx, n); return err })
	return out, err
}

func (s *sqliteStore) DeleteUser(ctx context.Context, id UserID) error {
	return s.Tx(ctx, func(q Queries) error { return q.DeleteUser(ctx, id) })
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries implements Queries over a database or a transaction.
type queries struct{ q querier }

// wrapErr maps SQLite constraint errors to ErrConflict.
func wrapErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", ErrConflict, err)
		}
	} else if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		// A driver that lost the error code still says what happened.
		return fmt.Errorf("%w: %v", ErrConflict, err)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// exec runs a statement that must touch exactly one row when one is set.
func (q queries) execOne(ctx context.Context, what string, query string, args ...any) error {
	res, err := q.q.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, wrapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// migration is one schema step; versions count from 1.
type migration struct {
	version int
	sql     string
}

// migrations are applied in order, each in its own transaction, and
// recorded in schema_migrations (version, applied_at in unix nanoseconds).
// They are append-only: a released migration is never edited, a change is
// a new one.
//
// Schema conventions: keys are stored in their text form (key.X.String),
// lists (groups, tags, endpoints) as JSON arrays, times as unix
// nanoseconds with 0 for the zero time, addresses as text. nodes.ipv4_num
// is the IPv4 address as a number, so the allocator can find the highest
// address and the gaps with an index. nodes.key_lifetime_seconds is
// Node.KeyLifetime in whole seconds, 0 for the default and -1 for never.
var migrations = []migration{
	{1, `
CREATE TABLE users (
	id       INTEGER PRIMARY KEY,
	name     TEXT NOT NULL UNIQUE,
	email    TEXT NOT NULL DEFAULT '',
	groups   TEXT NOT NULL DEFAULT '[]',
	role     TEXT NOT NULL CHECK (role IN ('member', 'admin')),
	disabled INTEGER NOT NULL DEFAULT 0,
	created  INTEGER NOT NULL
);
-- nodes.user_id has no foreign key: tagged nodes outlive the user who
-- registered them (DeleteUser removes user-owned nodes explicitly).
CREATE TABLE nodes (
	id          INTEGER PRIMARY KEY,
	machine_key TEXT NOT NULL UNIQUE,
	node_key    TEXT NOT NULL UNIQUE,
	disco_key   TEXT NOT NULL,
	user_id     INTEGER NOT NULL,
	tags        TEXT NOT NULL DEFAULT '[]',
	ipv4        TEXT NOT NULL UNIQUE,
	ipv4_num    INTEGER NOT NULL UNIQUE,
	ipv6        TEXT NOT NULL UNIQUE,
	hostname    TEXT NOT NULL,
	name        TEXT NOT NULL UNIQUE,
	created     INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL DEFAULT 0,
	key_expiry  INTEGER NOT NULL DEFAULT 0,
	endpoints   TEXT NOT NULL DEFAULT '[]',
	home_relay  INTEGER NOT NULL DEFAULT 0,
	ephemeral   INTEGER NOT NULL DEFAULT 0,
	auth_key_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX nodes_user ON nodes(user_id);
CREATE TABLE auth_keys (
	id         INTEGER PRIMARY KEY,
	prefix     TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	reusable   INTEGER NOT NULL DEFAULT 0,
	ephemeral  INTEGER NOT NULL DEFAULT 0,
	tags       TEXT NOT NULL DEFAULT '[]',
	expiration INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL,
	used_count INTEGER NOT NULL DEFAULT 0,
	revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE api_keys (
	id         INTEGER PRIMARY KEY,
	prefix     TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	expiration INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0,
	revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit_events (
	id      INTEGER PRIMARY KEY,
	time    INTEGER NOT NULL,
	actor   TEXT NOT NULL,
	action  TEXT NOT NULL,
	target  TEXT NOT NULL DEFAULT '',
	remote  TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL,
	detail  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_time ON audit_events(time);
CREATE INDEX audit_action ON audit_events(action, time);
`},
	{2, `
CREATE TABLE policies (
	id      INTEGER PRIMARY KEY,
	hash    TEXT NOT NULL,
	source  TEXT NOT NULL,
	author  TEXT NOT NULL,
	diff    TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL
);
`},
	{3, `
ALTER TABLE users ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN mfa_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX users_identity ON users (issuer, subject) WHERE subject != '';
ALTER TABLE nodes ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
`},
	{4, `
ALTER TABLE nodes ADD COLUMN key_lifetime_seconds INTEGER NOT NULL DEFAULT 0;
`},
	{5, `
ALTER TABLE users ADD COLUMN refresh_token TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN idp_checked_at INTEGER NOT NULL DEFAULT 0;
`},
	{7, `
-- Who created each pre-auth key; -1 for keys created before this
-- migration (their creator is unknown).
ALTER TABLE auth_keys ADD COLUMN creator_id INTEGER NOT NULL DEFAULT -1;
`},
}

// migrate applies pending migrations, each in its own transaction, and
// refuses a database newer than this code.
func (s *sqliteStore) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := checkVersion(current); err != nil {
		return err
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		applied := false
		err := s.Tx(ctx, func(q Queries) error {
			tx := q.(queries).q
			// Another process may have migrated since the read above; the
			// immediate transaction holds the write lock, so look again.
			var now int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&now); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if err := checkVersion(now); err != nil || now >= m.version {
				return err
			}
			// The driver runs every statement of a multi-statement string.
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, time.Now().UnixNano())
			applied = err == nil
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d: %w", m.version, err)
		}
		if applied {
			s.log.Info("database migrated", "version", m.version)
		}
	}
	return nil
}

// checkVersion refuses a database migrated by a newer coordinator: this
// code cannot know what the newer schema means.
func checkVersion(current int) error {
	latest := migrations[len(migrations)-1].version
	if current > latest {
		return fmt.Errorf("database schema version %d is newer than this coordinator (%d); upgrade warren-coordinator", current, latest)
	}
	return nil
}
