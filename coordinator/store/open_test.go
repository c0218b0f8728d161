package store

import (
	"strings"
	"testing"
)

func TestSQLitePath(t *testing.T) {
	for _, tc := range []struct {
		url, want, err string
	}{
		{"/var/lib/warren/warren.db", "/var/lib/warren/warren.db", ""},
		{"warren.db", "warren.db", ""},
		{"sqlite:///var/lib/warren/warren.db", "/var/lib/warren/warren.db", ""},
		{"sqlite:state/warren.db", "state/warren.db", ""},
		{"sqlite://warren.db", "", "sqlite:///absolute/path"},
		{"sqlite:", "", "no database file"},
		{"mysql://db/warren", "", `unknown scheme "mysql"`},
	} {
		got, err := SQLitePath(tc.url)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("SQLitePath(%q) = %q, %v; want %q, error with %q", tc.url, got, err, tc.want, tc.err)
		}
	}
	for url, want := range map[string]bool{"postgres://u@h/db": true, "postgresql:///db?host=/tmp": true,
		"/var/lib/postgres.db": false, "sqlite:postgres://x": false} {
		if IsPostgresURL(url) != want {
			t.Errorf("IsPostgresURL(%q) = %v", url, !want)
		}
	}
}

func TestPoolParams(t *testing.T) {
	for _, tc := range []struct {
		url, conn string
		n         int
		err       string
	}{
		{"postgres://u@h/db", "postgres://u@h/db", defaultMaxConns, ""},
		{"postgres://u@h/db?pool_max_conns=4&sslmode=disable", "postgres://u@h/db?sslmode=disable", 4, ""},
		{"postgres://u@h1:5432,h2:5433/db?pool_max_conns=3", "postgres://u@h1:5432,h2:5433/db", 3, ""},
		{"postgres://u@h/db?pool_max_conns=0", "", 0, "positive"},
		{"postgres://u:secret@h/db?pool_max_conns=x", "", 0, "positive"},
	} {
		conn, n, err := splitPoolParams(tc.url)
		if conn != tc.conn || n != tc.n || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("splitPoolParams(%q) = %q, %d, %v", tc.url, conn, n, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestNumberPlaceholders(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT a FROM t WHERE b = ? AND c = ?`:           `SELECT a FROM t WHERE b = $1 AND c = $2`,
		`SELECT '?', "q?" FROM t WHERE x = ?`:             `SELECT '?', "q?" FROM t WHERE x = $1`,
		`SELECT 'it''s ?' WHERE y = ?`:                    `SELECT 'it''s ?' WHERE y = $1`,
		"-- why? because\nUPDATE t SET v = ? WHERE k = ?": "-- why? because\nUPDATE t SET v = $1 WHERE k = $2",
		`SELECT 'unterminated ?`:                          `SELECT 'unterminated ?`,
		`VALUES (?,?),(?,?)`:                              `VALUES ($1,$2),($3,$4)`,
	} {
		if got := numberPlaceholders(in); got != want {
			t.Errorf("numberPlaceholders(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNumberPlaceholders: whatever the text, the rewrite never adds a
// question mark, and outside quotes and comments it numbers every one of
// them: in text without quotes or dashes, each ? becomes one $N.
func FuzzNumberPlaceholders(f *testing.F) {
	for _, s := range []string{`SELECT ? FROM t`, `'?' ? "?" --?` + "\n?", `'it''s'`, `?0?`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := numberPlaceholders(in)
		if strings.Count(out, "?") > strings.Count(in, "?") {
			t.Fatalf("more ? after: %q -> %q", in, out)
		}
		if !strings.ContainsAny(in, `'"-`) {
			if strings.Contains(out, "?") || strings.Count(out, "$") != strings.Count(in, "$")+strings.Count(in, "?") {
				t.Fatalf("not every placeholder numbered once: %q -> %q", in, out)
			}
		}
	})
}
