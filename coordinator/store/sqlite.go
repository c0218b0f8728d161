package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// maxReaders bounds the read-only pool: more readers than this wait in Go
// for a connection rather than each opening its own file descriptors.
const maxReaders = 8

// busyTimeout is how long a connection waits for a lock held by another
// process (an offline warren-coordinator command, a second coordinator
// starting on the same file) before SQLite returns SQLITE_BUSY. Within one
// store writers never contend in SQLite: they queue for the one writer.
const busyTimeout = 10 * time.Second

// Open opens (creating if needed) the SQLite database at path, applies
// pending schema migrations and returns the store, with the default
// Options and logger.
func Open(ctx context.Context, path string, logger *slog.Logger) (Store, error) {
	return OpenWith(ctx, path, Options{Logger: logger})
}

// OpenWith is Open with options. The database runs in WAL mode with foreign
// keys on; write transactions take the write lock at BEGIN (BEGIN
// IMMEDIATE), so a writer in another process waits instead of deadlocking.
func OpenWith(ctx context.Context, path string, opts Options) (Store, error) {
	logger := opts.Logger
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
	// Every connection runs these pragmas in order; busy_timeout comes
	// first so that switching to WAL also waits for other openers.
	wdb, err := sql.Open("sqlite", dsn(path, "immediate", "journal_mode(WAL)", "synchronous(NORMAL)"))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if !opts.SharedPool {
		wdb.SetMaxOpenConns(1)
	}
	if err := pingUntilFree(ctx, wdb, busyTimeout); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &sqlStore{queries: queries{q: timed(wdb, "write", opts.Observe), sec: opts.Secrets, origin: opts.ReplicaID}, wdb: wdb, log: logger,
		observe: opts.Observe}
	if err := s.migrate(ctx); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	s.rdb = wdb
	if !opts.SharedPool {
		// The file is in WAL mode now (the writer switched it), which
		// readers keep; query_only makes any write through them an error.
		rdb, err := sql.Open("sqlite", dsn(path, "", "query_only(1)"))
		if err == nil {
			rdb.SetMaxOpenConns(maxReaders)
			err = pingUntilFree(ctx, rdb, busyTimeout)
			if err != nil {
				rdb.Close()
			}
		}
		if err != nil {
			wdb.Close()
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
		s.rdb = rdb
	}
	s.r = queries{q: timed(s.rdb, "read", opts.Observe), sec: opts.Secrets, origin: s.origin}
	if err := s.resealOnOpen(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return s, nil
}

// resealOnOpen seals again, with the newest key, every stored secret
// sealed with an older one (when the store has a Sealer), as both
// backends do once opened and migrated.
func (s *sqlStore) resealOnOpen(ctx context.Context) error {
	if s.sec == nil {
		return nil
	}
	n, err := s.resealSecrets(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("stored secrets sealed with the newest key", "values", n)
	}
	return nil
}

// dsn is the driver's connection string for path: busy_timeout and foreign
// keys, then the given pragmas, and the transaction locking mode (empty:
// SQLite's deferred default).
func dsn(path, txlock string, pragmas ...string) string {
	q := url.Values{}
	pragmas = append([]string{fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()), "foreign_keys(1)"}, pragmas...)
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
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
