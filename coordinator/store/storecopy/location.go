// Package storecopy moves a Warren database between stores: migrate copies
// every table of one store (SQLite or PostgreSQL) into a fresh one in a
// single transaction and verifies it before committing; Backup and Restore
// copy a SQLite database file with SQLite's online backup API.
//
// It must never write to the source of a copy or a backup, never copy into
// a database that already holds data (the target must be as a fresh
// coordinator leaves it), and never print a connection URL's password. It
// copies sealed secrets as sealed bytes: it never opens them, so the
// coordinator's secrets key file must go with the database.
package storecopy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Driver is a kind of store.
type Driver string

// Drivers.
const (
	SQLite   Driver = "sqlite"
	Postgres Driver = "postgres"
)

// Location is a database named by a store URL.
type Location struct {
	Driver Driver
	// Path is the SQLite file's path (as given: it may be relative).
	Path string
	// URL is the PostgreSQL connection URL as given.
	URL string
}

// ParseLocation reads a store URL: "sqlite:///abs/path.db",
// "sqlite:relative.db" or a bare path name a SQLite file;
// "postgres://..." or "postgresql://..." a PostgreSQL database.
func ParseLocation(s string) (Location, error) {
	if s == "" {
		return Location{}, errors.New("empty store URL: give sqlite:///path/to/warren.db, a path, or postgres://user@host/database")
	}
	if strings.ContainsRune(s, 0) {
		return Location{}, errors.New("store URL contains a NUL byte")
	}
	scheme, rest, hasScheme := strings.Cut(s, ":")
	switch lower := strings.ToLower(scheme); {
	case hasScheme && (lower == "postgres" || lower == "postgresql"):
		if _, err := url.Parse(s); err != nil {
			// The error quotes the URL, password and all: say less.
			return Location{}, errors.New("store URL: not a valid PostgreSQL URL (postgres://user@host/database?sslmode=...)")
		}
		if !strings.HasPrefix(rest, "//") {
			return Location{}, fmt.Errorf("store URL: a PostgreSQL URL starts %s://", lower)
		}
		return Location{Driver: Postgres, URL: s}, nil
	case hasScheme && lower == "sqlite":
		if strings.HasPrefix(rest, "//") {
			u, err := url.Parse(s)
			if err != nil {
				return Location{}, fmt.Errorf("store URL %q: %w", s, errors.Unwrap(err))
			}
			if u.Host != "" {
				return Location{}, fmt.Errorf("store URL %s: a SQLite URL names a file, sqlite:///absolute/path or sqlite:relative/path, not a host (%q)", s, u.Host)
			}
			if u.RawQuery != "" || u.Fragment != "" {
				return Location{}, fmt.Errorf("store URL %s: a SQLite URL takes no query or fragment", s)
			}
			if u.Path == "" || strings.HasSuffix(u.Path, "/") {
				return Location{}, fmt.Errorf("store URL %s: no file name", s)
			}
			return Location{Driver: SQLite, Path: u.Path}, nil
		}
		if rest == "" || strings.HasSuffix(rest, "/") {
			return Location{}, fmt.Errorf("store URL %s: no file name", s)
		}
		if strings.ContainsAny(rest, "?#") {
			return Location{}, fmt.Errorf("store URL %s: a SQLite URL takes no query or fragment", s)
		}
		return Location{Driver: SQLite, Path: rest}, nil
	case hasScheme && strings.HasPrefix(rest, "//"):
		return Location{}, fmt.Errorf("store URL %s: unknown scheme %q (sqlite or postgres)", Redact(s), scheme)
	}
	// A bare path (which may itself contain a colon, as C:\warren.db).
	if strings.HasSuffix(s, "/") {
		return Location{}, fmt.Errorf("store path %s: no file name", s)
	}
	return Location{Driver: SQLite, Path: s}, nil
}

// String is the location for people: the SQLite path, or the PostgreSQL
// URL without its password.
func (l Location) String() string {
	if l.Driver == SQLite {
		return "sqlite:" + l.Path
	}
	return Redact(l.URL)
}

// Redact returns a URL with any password replaced by "xxxxx" (both the
// user:password@ form and a password= query parameter); text that does
// not parse as a URL is returned as "(unparsable URL)".
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
