package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/store/storecopy"
	"github.com/warrenmesh/warren/internal/cli"
)

// keyNote says what must go with a database that moved: the key ring
// that seals its secrets, which the database never holds.
const keyNote = `The secrets key is not in the database: sealed TOTP secrets and refresh
tokens were copied sealed and open only with the key file they were sealed
with (%s in the state directory). Give every coordinator that uses the
new database that same file.
`

// migrateCmd runs "migrate --from URL --to URL": it copies every table of
// one store into a fresh one in one transaction and commits only when each
// table's row count in the target matches the source's (package
// storecopy). Exit status 0 means verified and committed.
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the database to copy from, left unchanged: sqlite:///path/warren.db or postgres://...")
	to := fs.String("to", "", "the fresh database to copy into (created and migrated if need be; it must hold no data)")
	batch := fs.Int("batch", 500, "rows per INSERT")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	if fs.NArg() > 0 || *from == "" || *to == "" {
		return &cli.ExitError{Code: 2, Err: errors.New("usage: warren-coordinator migrate --from URL --to URL [--json] (stop the coordinator first: a copy of a running one misses what it writes after the snapshot)")}
	}
	src, err := storecopy.ParseLocation(*from)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("--from: %w", err)}
	}
	dst, err := storecopy.ParseLocation(*to)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("--to: %w", err)}
	}
	p := newProgress(stderr)
	res, err := storecopy.Copy(ctx, src, dst, storecopy.Options{BatchRows: *batch, Progress: p.table})
	p.end()
	if err != nil {
		return fmt.Errorf("migrate: %w (nothing was committed to %s)", err, dst)
	}
	if *asJSON {
		return cli.PrintJSON(stdout, res)
	}
	if err := cli.PrintTable(stdout, "TABLE\tROWS", func(w io.Writer) {
		for _, t := range res.Tables {
			fmt.Fprintf(w, "%s\t%d\n", t.Name, t.Rows)
		}
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nCopied %s to %s: %d rows in %d tables (schema version %d) in %.1fs,\nverified by counting every table in the target before commit.\n\n",
		res.From, res.To, res.Rows, len(res.Tables), res.SchemaVersion, res.Seconds)
	fmt.Fprintf(stdout, keyNote, coordinator.SecretsKeyFile)
	return nil
}

// backupCmd runs "backup --to FILE": an online copy of a SQLite store
// (the coordinator may keep running); for PostgreSQL it prints the
// pg_dump command and fails.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeURL, _ := storeFlags(fs, "the coordinator's state directory, whose warren.db is the default store")
	file := fs.String("to", "", "the backup file to write (it must not exist)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	if fs.NArg() > 0 || *file == "" {
		return &cli.ExitError{Code: 2, Err: errors.New("usage: warren-coordinator backup [--store URL | --state-dir DIR] --to FILE [--json]")}
	}
	loc, err := storecopy.ParseLocation(storeURL())
	if err != nil {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("--store: %w", err)}
	}
	res, err := storecopy.Backup(ctx, loc, *file)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if *asJSON {
		return cli.PrintJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "Backed up %s (schema version %d) to %s: %d bytes in %.1fs.\n\n", res.Store, res.SchemaVersion, res.File, res.Bytes, res.Seconds)
	fmt.Fprintf(stdout, keyNote, coordinator.SecretsKeyFile)
	return nil
}

// restoreCmd runs "restore --from FILE": it writes a backup into a
// stopped coordinator's SQLite store; for PostgreSQL it prints the
// pg_restore command and fails.
func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storeURL, _ := storeFlags(fs, "the coordinator's state directory, whose warren.db is the default store")
	file := fs.String("from", "", "the backup file (made by warren-coordinator backup)")
	force := fs.Bool("force", false, "replace a database that holds data (never one in use)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	if fs.NArg() > 0 || *file == "" {
		return &cli.ExitError{Code: 2, Err: errors.New("usage: warren-coordinator restore --from FILE [--store URL | --state-dir DIR] [--force] [--json]")}
	}
	loc, err := storecopy.ParseLocation(storeURL())
	if err != nil {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("--store: %w", err)}
	}
	res, err := storecopy.Restore(ctx, *file, loc, *force)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if *asJSON {
		return cli.PrintJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "Restored %s (schema version %d) into %s in %.1fs. Start the coordinator with the secrets key\n(%s) it had when the backup was made.\n",
		res.File, res.SchemaVersion, res.Store, res.Seconds, coordinator.SecretsKeyFile)
	return nil
}

// storeFlags defines --state-dir (described by stateDirHelp) and --store
// on fs, and returns the store they name once fs is parsed: --store, else
// $WARREN_STORE, else SQLite at <state-dir>/warren.db (as the coordinator
// itself does).
func storeFlags(fs *flag.FlagSet, stateDirHelp string) (storeURL func() string, stateDir *string) {
	stateDir = fs.String("state-dir", stateDirDefault(), stateDirHelp)
	u := fs.String("store", os.Getenv("WARREN_STORE"), storeUsage)
	return func() string { return cmp.Or(*u, filepath.Join(*stateDir, "warren.db")) }, stateDir
}

// progress draws one line on stderr: the table being copied and how far.
type progress struct {
	w     io.Writer
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

// table is storecopy's Progress callback; it redraws at most ten times a
// second, and always at a table's end.
func (p *progress) table(name string, done, total int64) {
	now := time.Now()
	if done != total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	fmt.Fprintf(p.w, "\rcopying %-20s %10d / %-10d rows %5.1f%%", name, done, total, pct)
	p.drawn = true
}

// end finishes the progress line.
func (p *progress) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
