package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is the SQL a backend speaks. The queries are written once, in
// the subset both speak, with ? placeholders (rewritten for PostgreSQL by
// pgQuerier); the few constructs that differ ask the dialect.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// greatest is the function returning the larger of two values.
func (d dialect) greatest() string {
	if d == dialectPostgres {
		return "GREATEST"
	}
	return "MAX" // SQLite's MAX with two arguments is scalar
}

// strpos is the function giving the 1-based position of a substring (0:
// absent), as strpos(haystack, needle).
func (d dialect) strpos() string {
	if d == dialectPostgres {
		return "strpos"
	}
	return "instr"
}

// prefixMatch is the condition "col starts with the argument" and the
// argument for prefix, which must hold only letters, digits and hyphens
// (a DNS label): GLOB in SQLite, LIKE in PostgreSQL (an index on a
// COLLATE "C" column serves it), both able to use the column's index.
func (d dialect) prefixMatch(col, prefix string) (string, string) {
	if d == dialectPostgres {
		return col + " LIKE ?", prefix + "%"
	}
	return col + " GLOB ?", prefix + "*"
}

// sqlStore is the store over database/sql, for both backends.
//
// SQLite (OpenWith): every write goes through one writer connection, so
// concurrent writers queue in Go (waiting as long as their context lets
// them) instead of timing out in SQLite's busy handler; plain reads go to
// a pool of read-only connections, which WAL lets run beside the writer.
//
// PostgreSQL (openPostgres): the same, one writing connection and a
// bounded pool of readers; every write (each Tx, and each statement Exec'd
// outside one) holds the store's advisory write lock, so writes run one
// at a time across every process sharing the database, as they do on
// SQLite's one writer.
type sqlStore struct {
	queries         // the writer, see dispatch.go
	r       queries // the readers
	wdb     *sql.DB // one connection; Tx and every write
	rdb     *sql.DB // read pool (wdb itself with SQLite's Options.SharedPool)
	log     *slog.Logger
	observe func(op string, d time.Duration) // Options.Observe, nil: none
	pg      *rebindCache                     // PostgreSQL: the statements' text
}

// Close closes the database.
func (s *sqlStore) Close() error {
	err := s.wdb.Close()
	if s.rdb != s.wdb {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

// Tx runs fn in one write-locked transaction: SQLite's immediate
// transaction on the writer, or on PostgreSQL a transaction holding the
// advisory write lock (writeLockKey). It rolls back if fn returns an
// error, which it returns as is, or panics, in which case the panic goes
// on after the rollback. The Queries fn gets read through the
// transaction, so they see its own writes.
func (s *sqlStore) Tx(ctx context.Context, fn func(q Queries) error) (err error) {
	if s.observe != nil {
		defer func(start time.Time) { s.observe("tx", time.Since(start)) }(time.Now())
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	q := queries{q: tx, sec: s.sec, d: s.d, origin: s.origin}
	if s.d == dialectPostgres {
		q.q = pgQuerier{q: tx, c: s.pg}
		if err := lockWrites(ctx, tx); err != nil {
			return err
		}
	}
	if err := fn(q); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", wrapErr(err))
	}
	committed = true
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries implements Queries over a database or a transaction, sealing
// and opening secrets with sec (nil: none, see Options.Secrets), in
// dialect d; origin is the replica its changes are recorded as
// (Options.ReplicaID).
type queries struct {
	q      querier
	sec    Sealer
	d      dialect
	origin string
}

// wrapErr maps unique-constraint violations (SQLite's, PostgreSQL's
// SQLSTATE 23505) to ErrConflict and no rows to ErrNotFound.
func wrapErr(err error) error {
	var se *sqlite.Error
	var pe *pgconn.PgError
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", ErrConflict, err)
		}
	} else if errors.As(err, &pe) {
		if pe.Code == "23505" { // unique_violation
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
