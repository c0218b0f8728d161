package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL backend: the same queries as SQLite's over pgx's
// database/sql driver, with placeholders rewritten (pgQuerier) and the
// schema written in PostgreSQL's dialect (migrations_postgres.go). Several
// coordinator processes may share one database: write transactions
// serialize on an advisory lock, so everything that reads and then writes
// in a Tx (IDs, addresses, names, key use counts) behaves as on SQLite's
// one writer.

// defaultMaxConns bounds the pool of reading connections unless the URL
// says otherwise (pool_max_conns); writes have one connection more.
const defaultMaxConns = 16

// idleInTransaction is how long the server lets one of the store's
// transactions sit between statements before ending it (unless the URL
// sets idle_in_transaction_session_timeout); the store's transactions never
// wait on anything but the database.
const idleInTransaction = "60s"

// writeLockKey is the PostgreSQL advisory lock every write transaction
// holds (pg_advisory_xact_lock), in the single-key space: "warren" and a
// 1. Other advisory locks of Warren must use other keys.
const writeLockKey int64 = 0x77617272656e0001

// lockWrites takes the store's write lock for the rest of tx.
func lockWrites(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLockKey); err != nil {
		return fmt.Errorf("take the write lock: %w", err)
	}
	return nil
}

// lockedWrites runs each statement Exec'd on the store itself (outside
// Tx) in a transaction of its own holding the write lock, so that it
// waits for a write transaction in progress, in this process or another,
// as it would on SQLite's one writer; a transaction's read-then-write
// (a key's use count, a node's fields) is never overwritten half-way by
// a write that started after its read. Queries (reads, and inserts that
// return an identity) run on the pool as they are.
type lockedWrites struct{ *sql.DB }

func (l lockedWrites) ExecContext(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	tx, err := l.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := lockWrites(ctx, tx); err != nil {
		return nil, err
	}
	if res, err = tx.ExecContext(ctx, query, args...); err != nil {
		return nil, err
	}
	return res, tx.Commit()
}

// openPostgres connects to the PostgreSQL database at rawURL (postgres://
// or postgresql://, any parameter libpq knows, and pool_max_conns),
// applies pending migrations and returns the store. The database must
// exist; the role needs to create tables and indexes in it (the first
// time, and at upgrades) and to read and write them.
func openPostgres(ctx context.Context, rawURL string, opts Options) (Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, maxConns, err := parsePostgresURL(rawURL)
	if err != nil {
		return nil, err
	}
	where := cfg.Database + " on " + cfg.Host // never the URL: it may hold a password
	if _, ok := cfg.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		// A coordinator that stops mid-transaction without its connection
		// closing (paused, cut off by a partition) would hold the write
		// lock, and so every replica's writes, until the server noticed;
		// the server ends such a transaction after this instead.
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = idleInTransaction
	}
	// Writes go through one connection, as on SQLite: they take turns on
	// the write lock anyway, so more would only wait at the server,
	// holding connections the reads need. Reads have a pool of their own.
	wdb, rdb := stdlib.OpenDB(*cfg), stdlib.OpenDB(*cfg)
	wdb.SetMaxOpenConns(1)
	rdb.SetMaxOpenConns(maxConns)
	rdb.SetMaxIdleConns(maxConns)
	closeBoth := func() { wdb.Close(); rdb.Close() }
	if err := wdb.PingContext(ctx); err != nil {
		closeBoth()
		return nil, fmt.Errorf("connect to database %s: %w", where, err)
	}
	c := &rebindCache{m: map[string]string{}}
	s := &sqlStore{
		queries: queries{q: timed(pgQuerier{q: lockedWrites{wdb}, c: c}, "write", opts.Observe), sec: opts.Secrets, d: dialectPostgres, origin: opts.ReplicaID},
		r:       queries{q: timed(pgQuerier{q: rdb, c: c}, "read", opts.Observe), sec: opts.Secrets, d: dialectPostgres, origin: opts.ReplicaID},
		wdb:     wdb, rdb: rdb, log: logger, observe: opts.Observe, pg: c,
	}
	if err := s.migrate(ctx); err != nil {
		closeBoth()
		return nil, fmt.Errorf("database %s: %w", where, err)
	}
	if err := s.resealOnOpen(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("database %s: %w", where, err)
	}
	return s, nil
}

// parsePostgresURL is the connection configuration of a PostgreSQL URL
// and its pool_max_conns (see splitPoolParams).
func parsePostgresURL(rawURL string) (*pgx.ConnConfig, int, error) {
	conn, maxConns, err := splitPoolParams(rawURL)
	if err != nil {
		return nil, 0, err
	}
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres URL: %w", err)
	}
	return cfg, maxConns, nil
}

// splitPoolParams takes pool_max_conns (the pool's size, which the server
// does not know) out of a PostgreSQL URL.
func splitPoolParams(rawURL string) (string, int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", 0, fmt.Errorf("postgres URL: %w", redact(err))
	}
	q := u.Query()
	n := defaultMaxConns
	if v := q.Get("pool_max_conns"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return "", 0, fmt.Errorf("postgres URL: pool_max_conns=%q is not a positive number", v)
		}
		q.Del("pool_max_conns")
		u.RawQuery = q.Encode()
	}
	return u.String(), n, nil
}

// redact removes the URL (which may hold a password) from a url.Parse
// error.
func redact(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// pgQuerier runs the store's queries on PostgreSQL: ? placeholders become
// $1, $2, … and booleans become the 0/1 integers the columns hold.
type pgQuerier struct {
	q querier
	c *rebindCache
}

func (p pgQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.q.ExecContext(ctx, p.c.rebind(query, len(args)), pgArgs(args)...)
}

func (p pgQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.q.QueryContext(ctx, p.c.rebind(query, len(args)), pgArgs(args)...)
}

func (p pgQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.q.QueryRowContext(ctx, p.c.rebind(query, len(args)), pgArgs(args)...)
}

// pgArgs converts bools to 0/1 (the columns are BIGINT, as in SQLite).
func pgArgs(args []any) []any {
	copied := false
	for i, a := range args {
		if b, ok := a.(bool); ok {
			if !copied { // the caller's slice stays as it was
				args, copied = append([]any(nil), args...), true
			}
			args[i] = int64(boolInt(b))
		}
	}
	return args
}

// rebindCache remembers the PostgreSQL text of each statement, up to
// maxRebound of them (statements built with a variable number of
// placeholders are rewritten each time beyond that).
type rebindCache struct {
	mu sync.Mutex
	m  map[string]string
}

const maxRebound = 1024

// rebind returns query with its ? placeholders numbered. A statement
// without arguments (a migration) is returned as it is.
func (c *rebindCache) rebind(query string, nargs int) string {
	if nargs == 0 {
		return query
	}
	c.mu.Lock()
	out, ok := c.m[query]
	c.mu.Unlock()
	if ok {
		return out
	}
	out = numberPlaceholders(query)
	c.mu.Lock()
	if len(c.m) < maxRebound {
		c.m[query] = out
	}
	c.mu.Unlock()
	return out
}

// numberPlaceholders replaces each ? outside string literals, quoted
// identifiers and comments with $1, $2, ….
func numberPlaceholders(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch {
		case ch == '\'' || ch == '"':
			end := strings.IndexByte(query[i+1:], ch)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case ch == '-' && i+1 < len(query) && query[i+1] == '-':
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+1])
			i += end
		case ch == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}
