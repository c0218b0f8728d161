package storecopy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// copyRows streams rows into a PostgreSQL table with COPY FROM on conn,
// whose transaction is open (it is the session's: COPY joins it). It
// calls progress every batch rows and at the end.
func copyRows(ctx context.Context, conn *sql.Conn, rows *sql.Rows, table string, cols []column, batch int, total int64,
	progress func(table string, done, total int64)) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	src := &rowSource{rows: rows, cols: cols, vals: make([]any, len(cols)), ptrs: make([]any, len(cols)), out: make([]any, len(cols)),
		every: int64(batch), table: table, total: total, progress: progress}
	for i := range src.vals {
		src.ptrs[i] = &src.vals[i]
	}
	var n int64
	err := conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("not a pgx connection")
		}
		var err error
		n, err = pc.Conn().CopyFrom(ctx, pgx.Identifier{table}, names, src)
		return err
	})
	if err != nil {
		return src.done, fmt.Errorf("copy %s: %w", table, err)
	}
	if progress != nil {
		progress(table, n, total)
	}
	return n, nil
}

// rowSource is a pgx.CopyFromSource over rows read from the source.
type rowSource struct {
	rows            *sql.Rows
	cols            []column
	vals, ptrs, out []any
	err             error
	done, every     int64
	table           string
	total           int64
	progress        func(table string, done, total int64)
}

func (s *rowSource) Next() bool {
	if !s.rows.Next() {
		return false
	}
	if err := s.rows.Scan(s.ptrs...); err != nil {
		s.err = err
		return false
	}
	for i, v := range s.vals {
		s.out[i] = convert(v, s.cols[i].typ)
	}
	s.done++
	if s.progress != nil && s.done%s.every == 0 {
		s.progress(s.table, s.done, s.total)
	}
	return true
}

func (s *rowSource) Values() ([]any, error) { return s.out, nil }

func (s *rowSource) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.rows.Err()
}
