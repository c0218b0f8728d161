package storecopy

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver
)

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrationsTable records the schema versions; it is compared, never
// copied (the target's own migrations filled it).
const migrationsTable = "schema_migrations"

// highWaterTable is the one table the migrations seed: counters of the
// highest ID ever handed out, all 0 in a fresh database. It counts as
// empty while every counter is 0.
const highWaterTable = "high_water"

// openSQL opens a database/sql handle on loc with one connection. A
// read-only SQLite handle opens the file read-only (it must exist) and
// refuses writes on the connection too.
func openSQL(loc Location, readOnly bool) (*sql.DB, error) {
	var db *sql.DB
	var err error
	switch loc.Driver {
	case SQLite:
		if readOnly {
			// mode=ro does not create a missing file; say so plainly.
			if _, err := os.Stat(loc.Path); err != nil {
				return nil, fmt.Errorf("open %s: %w", loc, err)
			}
		}
		db, err = sql.Open("sqlite", sqliteDSN(loc.Path, readOnly))
	case Postgres:
		db, err = sql.Open("pgx", withoutPoolParams(loc.URL))
	default:
		return nil, fmt.Errorf("unknown store driver %q", loc.Driver)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", loc, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// withoutPoolParams drops the store's own URL parameters (pool_max_conns,
// see store.OpenURL), which the driver would pass to the server.
func withoutPoolParams(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
			changed = true
		}
	}
	if !changed {
		return raw
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// sqliteDSN is the modernc driver's connection string for path.
func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return fileURI(path) + "?" + q.Encode()
}

// fileURI is the driver's URI for a file, without parameters.
func fileURI(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath()
}

// dialect knows the SQL that differs between the drivers.
type dialect Driver

// placeholder is the i'th (from 1) statement parameter.
func (d dialect) placeholder(i int) string {
	if Driver(d) == Postgres {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// quote quotes an identifier (the same in both).
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// schemaVersion is the highest migration recorded, with an error that
// says so when the database is not a Warren database at all.
func schemaVersion(ctx context.Context, q querier, loc Location) (int, error) {
	tables, err := dialect(loc.Driver).tables(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", loc, err)
	}
	if _, ok := tables[migrationsTable]; !ok {
		return 0, fmt.Errorf("%s is not a Warren database (it has no %s table)", loc, migrationsTable)
	}
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+migrationsTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version of %s: %w", loc, err)
	}
	return v, nil
}

// tables lists the database's tables (SQLite's own excluded).
func (d dialect) tables(ctx context.Context, q querier) (map[string]struct{}, error) {
	query := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
	if Driver(d) == Postgres {
		query = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	names, err := strings1(ctx, q, query)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return set, nil
}

// column is a table's column and its declared type, lower case.
type column struct {
	name, typ string
}

// columns lists a table's columns in their order.
func (d dialect) columns(ctx context.Context, q querier, table string) ([]column, error) {
	query := `SELECT name, lower(type) FROM pragma_table_info(?) ORDER BY cid`
	if Driver(d) == Postgres {
		query = `SELECT column_name, lower(data_type) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
	}
	rows, err := q.QueryContext(ctx, query, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	return cols, nil
}

// references lists the tables table's foreign keys point to.
func (d dialect) references(ctx context.Context, q querier, table string) ([]string, error) {
	query := `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)`
	if Driver(d) == Postgres {
		query = `SELECT DISTINCT c.confrelid::regclass::text FROM pg_constraint c
			WHERE c.contype = 'f' AND c.conrelid = (quote_ident(current_schema()) || '.' || quote_ident($1))::regclass`
	}
	refs, err := strings1(ctx, q, query, table)
	if err != nil {
		return nil, fmt.Errorf("foreign keys of %s: %w", table, err)
	}
	for i, r := range refs {
		refs[i] = strings.Trim(r, `"`)
	}
	return refs, nil
}

// strings1 runs a query of one text column.
func strings1(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// copyOrder sorts tables so that each comes after the tables its foreign
// keys reference (then by name), so that inserting in this order never
// breaks a constraint.
func copyOrder(tables []string, refs map[string][]string) ([]string, error) {
	sort.Strings(tables)
	in := make(map[string]bool, len(tables))
	for _, t := range tables {
		in[t] = true
	}
	done := make(map[string]bool, len(tables))
	var order []string
	for len(order) < len(tables) {
		progress := false
		for _, t := range tables {
			if done[t] {
				continue
			}
			ready := true
			for _, r := range refs[t] {
				if r != t && in[r] && !done[r] {
					ready = false
				}
			}
			if ready {
				done[t] = true
				order = append(order, t)
				progress = true
			}
		}
		if !progress {
			return nil, fmt.Errorf("the tables' foreign keys form a cycle (copied so far: %v)", order)
		}
	}
	return order, nil
}

// samePath reports whether two paths name one file (by their absolute
// forms, and by the file itself when both exist).
func samePath(a, b string) bool {
	if fa, err := os.Stat(a); err == nil {
		if fb, err := os.Stat(b); err == nil {
			return os.SameFile(fa, fb)
		}
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}
