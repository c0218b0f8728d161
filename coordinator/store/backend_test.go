package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/warrenmesh/warren/internal/tstest/pgtest"
)

// backend is a store backend the contract tests run against.
type backend struct {
	name string
	// newURL returns the store URL of a fresh, empty database that
	// lives as long as the test.
	newURL func(t testing.TB) string
}

var backends = []backend{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "warren.db") }},
	{"postgres", func(t testing.TB) string { return pgtest.NewDatabase(t) }},
}

// forEachBackend runs test once per backend, as subtests named for
// them: every test of the Store contract holds for both.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// openTest opens a fresh store on the backend, closed when the test
// ends, and returns it with its URL (for reopening it with reopen).
func (b backend) openTest(t testing.TB) (Store, string) {
	t.Helper()
	url := b.newURL(t)
	return b.reopen(t, url, Options{}), url
}

// reopen opens the store at url again with opts, closed when the test
// ends.
func (b backend) reopen(t testing.TB, url string, opts Options) Store {
	t.Helper()
	s, err := OpenURL(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// raw opens the database at url directly, beside the store, for tests
// that read or change what is stored behind its back (? placeholders
// work on both backends). It is closed when the test ends.
func (bk backend) raw(t testing.TB, url string) querier {
	t.Helper()
	var db *sql.DB
	var err error
	if IsPostgresURL(url) {
		var cfg *pgx.ConnConfig
		if cfg, err = pgx.ParseConfig(url); err == nil {
			db = stdlib.OpenDB(*cfg)
		}
	} else {
		var path string
		if path, err = SQLitePath(url); err == nil {
			db, err = sql.Open("sqlite", path)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if IsPostgresURL(url) {
		return pgQuerier{q: db, c: &rebindCache{m: map[string]string{}}}
	}
	return db
}
