package store

import (
	"context"
	"fmt"
	"strings"
)

// OpenURL opens the store a URL names:
//
//   - postgres://… or postgresql://… : PostgreSQL (see openPostgres); the
//     URL is libpq's, plus pool_max_conns (default 16);
//   - sqlite:///abs/path.db, sqlite:relative.db, or a bare path: SQLite
//     (OpenWith).
//
// Pending schema migrations are applied either way.
func OpenURL(ctx context.Context, url string, opts Options) (Store, error) {
	switch {
	case IsPostgresURL(url):
		return openPostgres(ctx, url, opts)
	default:
		path, err := SQLitePath(url)
		if err != nil {
			return nil, err
		}
		return OpenWith(ctx, path, opts)
	}
}

// IsPostgresURL reports whether url names a PostgreSQL database.
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// SQLitePath returns the file a SQLite store URL names: sqlite:///abs/path
// and sqlite:rel/path give the path, and anything without a scheme is a
// path itself. Other schemes are an error.
func SQLitePath(url string) (string, error) {
	switch {
	case strings.HasPrefix(url, "sqlite://"):
		url = strings.TrimPrefix(url, "sqlite://")
		if !strings.HasPrefix(url, "/") {
			return "", fmt.Errorf("store URL sqlite://%s: write sqlite:///absolute/path or sqlite:relative/path", url)
		}
	case strings.HasPrefix(url, "sqlite:"):
		url = strings.TrimPrefix(url, "sqlite:")
	case strings.Contains(url, "://"):
		scheme, _, _ := strings.Cut(url, "://")
		return "", fmt.Errorf("store URL: unknown scheme %q; use postgres://… or sqlite:///path", scheme)
	}
	if url == "" {
		return "", fmt.Errorf("store URL: no database file given")
	}
	return url, nil
}
