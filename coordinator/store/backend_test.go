package store

import (
	"context"
	"path/filepath"
	"testing"

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
