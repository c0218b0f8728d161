package storecopy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// Options tune Copy; the zero value works.
type Options struct {
	// Progress, if set, is told how far the copy of each table is: after
	// each batch, and once with done == 0 when the table starts.
	Progress func(table string, done, total int64)
	// BatchRows is how many rows go in one INSERT (0: 500; fewer when a
	// table's columns would pass the drivers' parameter limits).
	BatchRows int
}

// Result is what a verified copy copied.
type Result struct {
	From          string        `json:"from"` // passwords redacted
	To            string        `json:"to"`
	SchemaVersion int           `json:"schema_version"`
	Tables        []TableResult `json:"tables"` // in copy order
	Rows          int64         `json:"rows"`
	Seconds       float64       `json:"seconds"`
	Verified      bool          `json:"verified"`
}

// TableResult is one table's rows, counted in the source and in the
// target before commit.
type TableResult struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

// ErrNotEmpty is returned (wrapped) when the target already holds data.
var ErrNotEmpty = errors.New("target database is not empty")

// ErrSchemaMismatch is returned (wrapped) when source and target are at
// different schema versions, or have different tables or columns.
var ErrSchemaMismatch = errors.New("source and target schemas differ")

// Copy copies every table of the database at from into the database at
// to, which it first brings to the current schema by opening it as a
// store (creating it if need be). It reads
// the source in one read-only transaction (a consistent snapshot) and
// writes the target in one transaction, which it commits only after
// counting every table's rows in it and finding the source's counts. It
// refuses, writing nothing, when the schemas differ or the target holds
// any data.
func Copy(ctx context.Context, from, to Location, opts Options) (Result, error) {
	start := time.Now()
	res := Result{From: from.String(), To: to.String()}
	if from.Driver == SQLite && to.Driver == SQLite && samePath(from.Path, to.Path) {
		return res, fmt.Errorf("source and target are the same file %s", from.Path)
	}
	if from.Driver == Postgres && to.Driver == Postgres && from.URL == to.URL {
		return res, fmt.Errorf("source and target are the same database %s", from)
	}
	// The source first: an unreadable source fails before the target is
	// created.
	src, err := openSQL(from, true)
	if err != nil {
		return res, err
	}
	defer src.Close()
	stx, err := src.BeginTx(ctx, sourceTxOptions(from))
	if err != nil {
		return res, fmt.Errorf("read %s: %w", from, err)
	}
	defer stx.Rollback() //nolint:errcheck // read-only
	srcVersion, err := schemaVersion(ctx, stx, from)
	if err != nil {
		return res, err
	}
	if cur := store.SchemaVersion(); srcVersion != cur {
		return res, fmt.Errorf("%w: %s is at schema version %d, this warren-coordinator's is %d; migrate copies between equal versions: run the warren-coordinator release that matches the source, or start this one on the source once (serve applies its migrations)",
			ErrSchemaMismatch, from, srcVersion, cur)
	}
	// Opening the target migrates it to this code's version, the source's
	// (a newer target fails to open).
	if err := prepareTarget(ctx, to); err != nil {
		return res, fmt.Errorf("open target %s: %w", to, err)
	}
	res.SchemaVersion = srcVersion

	dst, err := openSQL(to, false)
	if err != nil {
		return res, err
	}
	defer dst.Close()
	// One connection holds the transaction; PostgreSQL's COPY runs on it
	// too (copyRows), inside the transaction.
	dconn, err := dst.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("write %s: %w", to, err)
	}
	defer dconn.Close()
	dtx, err := dconn.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("write %s: %w", to, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = dtx.Rollback()
		}
	}()
	// Read the target's version again inside the write transaction: a
	// coordinator started on it meanwhile may have moved it.
	if v, err := schemaVersion(ctx, dtx, to); err != nil {
		return res, err
	} else if v != srcVersion {
		return res, fmt.Errorf("%w: %s moved to schema version %d during the copy", ErrSchemaMismatch, to, v)
	}
	plan, err := planCopy(ctx, stx, dtx, from, to)
	if err != nil {
		return res, err
	}
	if err := checkEmpty(ctx, dtx, to, plan); err != nil {
		return res, err
	}
	// The migrations' zero counters make way for the source's.
	if _, ok := plan.cols[highWaterTable]; ok {
		if _, err := dtx.ExecContext(ctx, `DELETE FROM `+quote(highWaterTable)); err != nil {
			return res, fmt.Errorf("clear %s in %s: %w", highWaterTable, to, err)
		}
	}
	for _, t := range plan.order {
		n, err := copyTable(ctx, stx, dtx, dconn, to, t, plan.cols[t], opts)
		if err != nil {
			return res, err
		}
		res.Tables = append(res.Tables, TableResult{Name: t, Rows: n})
		res.Rows += n
	}
	floors, err := sequenceFloors(ctx, stx, from)
	if err != nil {
		return res, err
	}
	if err := fixSequences(ctx, dtx, to, floors); err != nil {
		return res, err
	}
	// Verify: every table's rows, counted again in the target's
	// transaction, against the source snapshot.
	for _, tr := range res.Tables {
		var want, got int64
		if err := stx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quote(tr.Name)).Scan(&want); err != nil {
			return res, fmt.Errorf("count %s in %s: %w", tr.Name, from, err)
		}
		if err := dtx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quote(tr.Name)).Scan(&got); err != nil {
			return res, fmt.Errorf("count %s in %s: %w", tr.Name, to, err)
		}
		if want != got || got != tr.Rows {
			return res, fmt.Errorf("verify %s: the source has %d rows, %d were copied, the target has %d; nothing was committed", tr.Name, want, tr.Rows, got)
		}
	}
	if err := dtx.Commit(); err != nil {
		return res, fmt.Errorf("commit to %s: %w", to, err)
	}
	committed = true
	res.Verified = true
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// sourceTxOptions is a read-only snapshot: PostgreSQL's repeatable read;
// SQLite's read transaction is one already (on a read-only connection).
func sourceTxOptions(from Location) *sql.TxOptions {
	if from.Driver == Postgres {
		return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	return nil
}

// plan is what to copy: the tables in copy order and each one's columns
// (the target's declared types, in the source's column order).
type plan struct {
	order []string
	cols  map[string][]column
}

// planCopy checks that source and target have the same tables with the
// same columns and orders the tables by the target's foreign keys.
func planCopy(ctx context.Context, stx, dtx querier, from, to Location) (plan, error) {
	srcTables, err := dialect(from.Driver).tables(ctx, stx)
	if err != nil {
		return plan{}, fmt.Errorf("read %s: %w", from, err)
	}
	dstTables, err := dialect(to.Driver).tables(ctx, dtx)
	if err != nil {
		return plan{}, fmt.Errorf("read %s: %w", to, err)
	}
	delete(srcTables, migrationsTable)
	delete(dstTables, migrationsTable)
	if only := missing(srcTables, dstTables); len(only) > 0 {
		return plan{}, fmt.Errorf("%w: tables only in %s: %s", ErrSchemaMismatch, from, strings.Join(only, ", "))
	}
	if only := missing(dstTables, srcTables); len(only) > 0 {
		return plan{}, fmt.Errorf("%w: tables only in %s: %s", ErrSchemaMismatch, to, strings.Join(only, ", "))
	}
	p := plan{cols: make(map[string][]column, len(srcTables))}
	refs := make(map[string][]string, len(srcTables))
	for t := range srcTables {
		sc, err := dialect(from.Driver).columns(ctx, stx, t)
		if err != nil {
			return plan{}, err
		}
		dc, err := dialect(to.Driver).columns(ctx, dtx, t)
		if err != nil {
			return plan{}, err
		}
		types := make(map[string]string, len(dc))
		for _, c := range dc {
			types[c.name] = c.typ
		}
		if len(sc) != len(dc) {
			return plan{}, fmt.Errorf("%w: table %s has %d columns in %s, %d in %s", ErrSchemaMismatch, t, len(sc), from, len(dc), to)
		}
		cols := make([]column, len(sc))
		for i, c := range sc {
			typ, ok := types[c.name]
			if !ok {
				return plan{}, fmt.Errorf("%w: column %s.%s is not in %s", ErrSchemaMismatch, t, c.name, to)
			}
			cols[i] = column{name: c.name, typ: typ}
		}
		p.cols[t] = cols
		if refs[t], err = dialect(to.Driver).references(ctx, dtx, t); err != nil {
			return plan{}, err
		}
	}
	p.order, err = copyOrder(slices.Collect(maps.Keys(srcTables)), refs)
	if err != nil {
		return plan{}, err
	}
	return p, nil
}

// missing lists the names in a that are not in b, sorted.
func missing(a, b map[string]struct{}) []string {
	var out []string
	for n := range a {
		if _, ok := b[n]; !ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// checkEmpty refuses a target with any data in it, naming every table
// that has some.
func checkEmpty(ctx context.Context, q querier, to Location, p plan) error {
	full, err := tablesWithData(ctx, q, p.order)
	if err != nil {
		return fmt.Errorf("read %s: %w", to, err)
	}
	if len(full) > 0 {
		return fmt.Errorf("%w: %s has data in %s; migrate copies only into a fresh database (create a new one, or drop and recreate this one if its data is not needed)",
			ErrNotEmpty, to, strings.Join(full, ", "))
	}
	return nil
}

// tablesWithData names those of tables that hold data, with their row
// counts: any row, except in high_water, whose zero counters the
// migrations seed.
func tablesWithData(ctx context.Context, q querier, tables []string) ([]string, error) {
	var full []string
	for _, t := range tables {
		query := `SELECT COUNT(*) FROM ` + quote(t)
		if t == highWaterTable {
			query += ` WHERE value <> 0`
		}
		var n int64
		if err := q.QueryRowContext(ctx, query).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		if n > 0 {
			full = append(full, fmt.Sprintf("%s (%d rows)", t, n))
		}
	}
	return full, nil
}

// maxParams bounds the parameters of one statement, under SQLite's
// default limit (32766) and PostgreSQL's (65535).
const maxParams = 30000

// copyTable copies one table's rows, in batches of multi-row INSERTs
// (SQLite) or with COPY (PostgreSQL), and returns how many it copied.
func copyTable(ctx context.Context, stx querier, dtx *sql.Tx, dconn *sql.Conn, to Location, table string, cols []column, opts Options) (int64, error) {
	var total int64
	if err := stx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quote(table)).Scan(&total); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	if opts.Progress != nil {
		opts.Progress(table, 0, total)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quote(c.name)
	}
	list := strings.Join(names, ", ")
	batch := opts.BatchRows
	if batch <= 0 {
		batch = 500
	}
	batch = max(1, min(batch, maxParams/len(cols)))

	rows, err := stx.QueryContext(ctx, `SELECT `+list+` FROM `+quote(table))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	if to.Driver == Postgres {
		return copyRows(ctx, dconn, rows, table, cols, batch, total, opts.Progress)
	}
	d := dialect(to.Driver)
	args := make([]any, 0, batch*len(cols))
	var done int64
	// insert is the statement for n rows; the full batch's is prepared
	// once per table.
	insert := func(n int) string {
		var b strings.Builder
		b.WriteString(`INSERT INTO ` + quote(table) + ` (` + list + `) VALUES `)
		for r := range n {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for c := range cols {
				if c > 0 {
					b.WriteString(", ")
				}
				b.WriteString(d.placeholder(r*len(cols) + c + 1))
			}
			b.WriteByte(')')
		}
		return b.String()
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	flush := func() error {
		n := len(args) / len(cols)
		if n == 0 {
			return nil
		}
		var err error
		if n == batch {
			if full == nil {
				if full, err = dtx.PrepareContext(ctx, insert(n)); err != nil {
					return fmt.Errorf("write %s to %s: %w", table, to, err)
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = dtx.ExecContext(ctx, insert(n), args...)
		}
		if err != nil {
			return fmt.Errorf("write %s to %s: %w", table, to, err)
		}
		done += int64(n)
		args = args[:0]
		if opts.Progress != nil {
			opts.Progress(table, done, total)
		}
		return nil
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return done, fmt.Errorf("read %s: %w", table, err)
		}
		for i, v := range vals {
			args = append(args, convert(v, cols[i].typ))
		}
		if len(args) == batch*len(cols) {
			if err := flush(); err != nil {
				return done, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return done, fmt.Errorf("read %s: %w", table, err)
	}
	if err := flush(); err != nil {
		return done, err
	}
	return done, nil
}

// convert makes a value read from the source fit the target column's
// declared type: text stays text and bytes stay bytes across drivers
// (SQLite may hand back either for a column).
func convert(v any, typ string) any {
	switch x := v.(type) {
	case []byte:
		if strings.Contains(typ, "text") || strings.Contains(typ, "char") {
			return string(x)
		}
		return slices.Clone(x) // the driver may reuse the buffer
	case string:
		if strings.Contains(typ, "blob") || strings.Contains(typ, "bytea") {
			return []byte(x)
		}
	}
	return v
}
