package storecopy

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/warrenmesh/warren/coordinator/store"
)

// ErrPostgres is returned (wrapped) by Backup and Restore for a
// PostgreSQL store: its own tools are the answer, and the error says which
// command to run.
var ErrPostgres = errors.New("backup and restore of PostgreSQL use PostgreSQL's own tools")

// ErrInUse is returned (wrapped) by Restore when a process has the
// target database open.
var ErrInUse = errors.New("the database is in use")

// FileResult describes a backup or a restore.
type FileResult struct {
	Store         string  `json:"store"` // the store, password redacted
	File          string  `json:"file"`  // the backup file
	SchemaVersion int     `json:"schema_version"`
	Bytes         int64   `json:"bytes"` // the backup file's size
	Seconds       float64 `json:"seconds"`
}

// PgDumpCommand is the command that backs up the PostgreSQL database at
// url into file, in pg_dump's custom format (restored with
// PgRestoreCommand). The URL's password is elided.
func PgDumpCommand(url, file string) string {
	return fmt.Sprintf("pg_dump --format=custom --file=%s %s", shellQuote(file), shellQuote(Redact(url)))
}

// PgRestoreCommand restores a pg_dump file into the (empty) database at
// url. The URL's password is elided.
func PgRestoreCommand(file, url string) string {
	return fmt.Sprintf("pg_restore --exit-on-error --single-transaction --no-owner --dbname=%s %s", shellQuote(Redact(url)), shellQuote(file))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// passwordNote is said with a command for a URL whose password was
// elided.
func passwordNote(url string) string {
	if Redact(url) == url {
		return ""
	}
	return " (the password is elided: give it in PGPASSWORD or ~/.pgpass)"
}

// Backup copies the SQLite database at from into a new file with SQLite's
// online backup API, which reads one consistent snapshot while the
// coordinator goes on running and writing. The file is written beside
// file under a temporary name, checked, and renamed into place; an
// existing file is never overwritten. For a PostgreSQL store it returns
// ErrPostgres with the pg_dump command to run.
func Backup(ctx context.Context, from Location, file string) (FileResult, error) {
	start := time.Now()
	res := FileResult{Store: from.String(), File: file}
	if from.Driver == Postgres {
		return res, fmt.Errorf("%w: run\n  %s\nand restore with pg_restore%s", ErrPostgres, PgDumpCommand(from.URL, file), passwordNote(from.URL))
	}
	if _, err := os.Lstat(file); err == nil {
		return res, fmt.Errorf("backup file %s exists; choose a new name (backup never overwrites)", file)
	}
	src, err := openSQL(from, true)
	if err != nil {
		return res, err
	}
	defer src.Close()
	if res.SchemaVersion, err = schemaVersion(ctx, src, from); err != nil {
		return res, err
	}
	tmp := file + ".partial-" + randomSuffix()
	defer os.Remove(tmp) // once renamed, a no-op
	// Owner-only from the start: the file holds what the database holds.
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	f.Close()
	conn, err := src.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("backup %s: %w", from, err)
	}
	err = conn.Raw(func(dc any) error {
		b, ok := dc.(interface {
			NewBackup(string) (*sqlite.Backup, error)
		})
		if !ok {
			return errors.New("the SQLite driver has no backup API")
		}
		bk, err := b.NewBackup(tmp)
		if err != nil {
			return err
		}
		// All pages in one step: one read transaction, one snapshot.
		_, err = bk.Step(-1)
		return errors.Join(err, bk.Finish())
	})
	conn.Close()
	if err != nil {
		return res, fmt.Errorf("backup %s: %w", from, err)
	}
	// One self-contained file: no WAL beside it.
	if err := execFile(ctx, tmp, `PRAGMA journal_mode=DELETE`); err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	if _, err := checkBackupFile(ctx, tmp); err != nil {
		return res, fmt.Errorf("backup: the copy does not check: %w", err)
	}
	if _, err := os.Lstat(file); err == nil {
		return res, fmt.Errorf("backup file %s appeared during the backup; not overwritten", file)
	}
	if err := os.Rename(tmp, file); err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	if fi, err := os.Stat(file); err == nil {
		res.Bytes = fi.Size()
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// Restore writes the backup file into the SQLite database at to (creating
// it if need be) with SQLite's backup API, holding the database's
// exclusive lock throughout. It refuses a file that is not a Warren
// database of a schema version this code knows, a target another process
// has open (a running coordinator) and, unless force, a target holding
// any data. For a PostgreSQL store it returns ErrPostgres with the
// pg_restore command to run.
func Restore(ctx context.Context, file string, to Location, force bool) (_ FileResult, err error) {
	start := time.Now()
	res := FileResult{Store: to.String(), File: file}
	if to.Driver == Postgres {
		return res, fmt.Errorf("%w: restore a pg_dump file with\n  %s\nor load a SQLite backup into PostgreSQL with\n  warren-coordinator migrate --from sqlite:%s --to %s%s",
			ErrPostgres, PgRestoreCommand(file, to.URL), shellQuote(file), shellQuote(Redact(to.URL)), passwordNote(to.URL))
	}
	v, err := checkBackupFile(ctx, file)
	if err != nil {
		return res, err
	}
	res.SchemaVersion = v
	if fi, err := os.Stat(file); err == nil {
		res.Bytes = fi.Size()
	}
	if samePath(file, to.Path) {
		return res, fmt.Errorf("the backup file is the database %s itself", to.Path)
	}
	_, statErr := os.Stat(to.Path)
	existed := statErr == nil
	if !existed {
		f, err := os.OpenFile(to.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
		f.Close()
		defer func() {
			if err != nil { // leave nothing behind
				os.Remove(to.Path)
				os.Remove(to.Path + "-journal")
			}
		}()
	}
	// busy_timeout 0: a lock held elsewhere is an answer, not a wait.
	db, err := sql.Open("sqlite", fileURI(to.Path)+"?_pragma=busy_timeout(0)")
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	defer conn.Close()
	// In EXCLUSIVE locking mode the lock BEGIN EXCLUSIVE takes is kept
	// after COMMIT, until the connection closes; in WAL mode every open
	// connection holds a shared lock, so this fails while any other
	// process has the database open.
	if _, err := conn.ExecContext(ctx, `PRAGMA locking_mode=EXCLUSIVE`); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		if isBusy(err) {
			return res, fmt.Errorf("%w: another process (a running coordinator?) has %s open; stop it, then restore", ErrInUse, to.Path)
		}
		return res, fmt.Errorf("restore: %s: %w", to.Path, err)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if existed && !force {
		if full, err := dataIn(ctx, conn); err != nil {
			return res, fmt.Errorf("restore: read %s: %w", to.Path, err)
		} else if len(full) > 0 {
			return res, fmt.Errorf("%w: %s has data in %s; restore replaces all of it only with --force (back it up first)", ErrNotEmpty, to.Path, strings.Join(full, ", "))
		}
	}
	err = conn.Raw(func(dc any) error {
		r, ok := dc.(interface {
			NewRestore(string) (*sqlite.Backup, error)
		})
		if !ok {
			return errors.New("the SQLite driver has no backup API")
		}
		bk, err := r.NewRestore(file)
		if err != nil {
			return err
		}
		_, err = bk.Step(-1)
		return errors.Join(err, bk.Finish())
	})
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", to.Path, err)
	}
	var check string
	if err := conn.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&check); err != nil || check != "ok" {
		return res, fmt.Errorf("restore %s: the result does not check (%q): %v", to.Path, check, err)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// checkBackupFile checks that file is an intact Warren SQLite database of
// a schema version this code knows, and returns the version.
func checkBackupFile(ctx context.Context, file string) (int, error) {
	loc := Location{Driver: SQLite, Path: file}
	db, err := openSQL(loc, true)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&check); err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	if check != "ok" {
		return 0, fmt.Errorf("%s is damaged: %s", file, check)
	}
	v, err := schemaVersion(ctx, db, loc)
	if err != nil {
		return 0, err
	}
	if cur := store.SchemaVersion(); v > cur || v < 1 {
		return 0, fmt.Errorf("%s is at schema version %d, which this warren-coordinator (schema %d) does not know; use a release at least as new as the one that wrote it", file, v, cur)
	}
	return v, nil
}

// dataIn names the tables of a SQLite database that hold data.
func dataIn(ctx context.Context, q querier) ([]string, error) {
	tables, err := dialect(SQLite).tables(ctx, q)
	if err != nil {
		return nil, err
	}
	delete(tables, migrationsTable)
	return tablesWithData(ctx, q, slices.Sorted(maps.Keys(tables)))
}

// execFile runs one statement on a SQLite file.
func execFile(ctx context.Context, path, stmt string) error {
	db, err := sql.Open("sqlite", fileURI(path))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (or an extended
// code of it).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
