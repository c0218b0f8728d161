package storecopy

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Sequences: the values a database hands out by itself (PostgreSQL
// identity columns, SQLite AUTOINCREMENT rowids) must go on after the
// copied ones, and after any the source handed out and then deleted, or
// a new row takes a copied row's ID or reuses a pruned one's (an ID the
// store promises never to reuse is a cursor somewhere).

// identityColumns lists the columns of the database whose values a
// sequence hands out (PostgreSQL identity and serial columns), as
// table -> column. SQLite has none to fix: a rowid follows the highest
// one stored.
func (d dialect) identityColumns(ctx context.Context, q querier) (map[string][]string, error) {
	if Driver(d) != Postgres {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')`)
	if err != nil {
		return nil, fmt.Errorf("list identity columns: %w", err)
	}
	defer rows.Close()
	m := make(map[string][]string)
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, fmt.Errorf("list identity columns: %w", err)
		}
		m[t] = append(m[t], c)
	}
	return m, rows.Err()
}

// sequenceFloors reads, per table, the highest value the source's
// sequence has handed out (deleted rows included): SQLite's
// sqlite_sequence for AUTOINCREMENT tables, PostgreSQL's identity
// sequences.
func sequenceFloors(ctx context.Context, q querier, from Location) (map[string]int64, error) {
	floors := map[string]int64{}
	if from.Driver == SQLite {
		tables, err := dialect(SQLite).tables(ctx, q)
		if err != nil {
			return nil, err
		}
		// sqlite_sequence exists once a table with AUTOINCREMENT does.
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'`).Scan(&n); err != nil || n == 0 {
			return floors, err
		}
		rows, err := q.QueryContext(ctx, `SELECT name, seq FROM sqlite_sequence`)
		if err != nil {
			return nil, fmt.Errorf("read sqlite_sequence of %s: %w", from, err)
		}
		defer rows.Close()
		for rows.Next() {
			var t string
			var v int64
			if err := rows.Scan(&t, &v); err != nil {
				return nil, fmt.Errorf("read sqlite_sequence of %s: %w", from, err)
			}
			if _, ok := tables[t]; ok {
				floors[t] = v
			}
		}
		return floors, rows.Err()
	}
	ids, err := dialect(Postgres).identityColumns(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	for t, cols := range ids {
		for _, c := range cols {
			var v sql.NullInt64 // NULL: never used
			if err := q.QueryRowContext(ctx, `SELECT pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass)`, quote(t), c).Scan(&v); err != nil {
				return nil, fmt.Errorf("read the sequence of %s.%s in %s: %w", t, c, from, err)
			}
			if v.Valid {
				floors[t] = max(floors[t], v.Int64)
			}
		}
	}
	return floors, nil
}

// fixSequences moves every sequence of the target past the highest value
// copied and the source's floor for its table.
func fixSequences(ctx context.Context, q querier, to Location, floors map[string]int64) error {
	if to.Driver == SQLite {
		// Inserting explicit rowids already moved sqlite_sequence past
		// the copied ones; raise it to the floors of the tables that have
		// AUTOINCREMENT in the target.
		for t, floor := range floors {
			var ddl string
			err := q.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, t).Scan(&ddl)
			if err == sql.ErrNoRows || !strings.Contains(strings.ToUpper(ddl), "AUTOINCREMENT") {
				continue
			}
			if err != nil {
				return fmt.Errorf("read the schema of %s in %s: %w", t, to, err)
			}
			res, err := q.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?`, floor, t)
			if err != nil {
				return fmt.Errorf("set the sequence of %s in %s: %w", t, to, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				if _, err := q.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)`, t, floor); err != nil {
					return fmt.Errorf("set the sequence of %s in %s: %w", t, to, err)
				}
			}
		}
		return nil
	}
	ids, err := dialect(Postgres).identityColumns(ctx, q)
	if err != nil {
		return fmt.Errorf("%s: %w", to, err)
	}
	for t, cols := range ids {
		for _, c := range cols {
			// setval(seq, v, true): the next value is v+1; with nothing
			// to follow, setval(seq, 1, false): the next is 1.
			query := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence($1, $2), GREATEST(COALESCE(MAX(%s), 0), $3, 1), GREATEST(COALESCE(MAX(%s), 0), $3) > 0) FROM %s`,
				quote(c), quote(c), quote(t))
			if _, err := q.ExecContext(ctx, query, quote(t), c, floors[t]); err != nil {
				return fmt.Errorf("set the sequence of %s.%s in %s: %w", t, c, to, err)
			}
		}
	}
	return nil
}
