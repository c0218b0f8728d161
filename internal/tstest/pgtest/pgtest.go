// Package pgtest runs a throwaway PostgreSQL server for tests: a cluster
// made with initdb in a temporary directory, started with pg_ctl, listening
// only on a Unix socket in that directory, and removed when the tests end.
// Each test gets a fresh database of its own (NewDatabase).
//
// A package whose tests use it calls Main from its TestMain. When the
// PostgreSQL binaries are absent the tests that need them are skipped with
// a message saying so; nothing else is. It must never touch a PostgreSQL
// server it did not start, and never listen on a network interface.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running throwaway cluster.
type Server struct {
	dir    string // data directory, also the socket directory
	bin    string // directory of initdb, pg_ctl and postgres
	asUser string // run the binaries as this user (via runuser); "" as ourselves
	port   int
	mu     sync.Mutex
	n      int // databases made so far
}

// superuser is the cluster's superuser role (initdb --username).
const superuser = "postgres"

// Binaries returns the directory holding initdb and pg_ctl: the one on
// PATH, else the newest /usr/lib/postgresql/*/bin. It returns "" when
// there is none.
func Binaries() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

// version is the major version in /usr/lib/postgresql/<v>/bin.
func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start makes and starts a cluster. PostgreSQL refuses to run as root, so
// when we are root the data directory is given to the nobody user and
// the binaries run as nobody. The caller must Stop it.
func Start() (*Server, error) {
	bin := Binaries()
	if bin == "" {
		return nil, errNoBinaries
	}
	dir, err := os.MkdirTemp("", "warren-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, port: 5432}
	if os.Geteuid() == 0 {
		s.asUser = "nobody"
		if err := os.Chown(dir, 65534, 65534); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "--auth=trust", "--username="+superuser, "--encoding=UTF8", "--no-sync", "-D", data); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// Durability is not the point of a throwaway cluster: no fsync.
	opts := strings.Join([]string{
		"-c listen_addresses=''",
		"-c unix_socket_directories=" + dir,
		"-p " + strconv.Itoa(s.port),
		"-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
		"-c max_connections=300",
	}, " ")
	if out, err := s.run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	return s, nil
}

// run runs one of the cluster's binaries, as asUser when set.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

// Stop stops the server at once and removes its directory.
func (s *Server) Stop() error {
	out, err := s.run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", filepath.Join(s.dir, "data"))
	if err != nil {
		err = fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

// URL is a connection URL for database db as the superuser, over the
// server's Unix socket.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable", superuser, db, s.dir, s.port)
}

// CreateDatabase makes a new empty database and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("warren_test_%d", s.n)
	s.mu.Unlock()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.URL(name), nil
}

// DropDatabase drops the database of a URL CreateDatabase returned,
// ending the connections still open to it.
func (s *Server) DropDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)")
	return err
}

var errNoBinaries = fmt.Errorf("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: install Debian's postgresql package")

// shared is the package's server, made by Main on first use.
var shared struct {
	sync.Mutex
	inMain  bool
	started bool
	srv     *Server
	err     error
}

// Main runs the tests and then stops the server if any test started it.
// Call it from TestMain: os.Exit(pgtest.Main(m)), or wrap m.Run of
// another TestMain helper.
func Main(m interface{ Run() int }) int {
	shared.Lock()
	shared.inMain = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
		shared.srv = nil
	}
	return code
}

// Shared returns the package's server, starting it on first use. It skips
// the test when the binaries are absent and fails it when the server
// cannot start or Main is not in use.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.inMain {
		tb.Fatal("pgtest: call pgtest.Main from the package's TestMain")
	}
	if !shared.started {
		shared.started = true
		shared.srv, shared.err = Start()
	}
	if shared.err == errNoBinaries {
		tb.Skip("pgtest:", shared.err)
	}
	if shared.err != nil {
		tb.Fatal("pgtest:", shared.err)
	}
	return shared.srv
}

// NewDatabase returns the URL of a fresh database on the shared server,
// dropped when the test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	srv := Shared(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := srv.CreateDatabase(ctx)
	if err != nil {
		tb.Fatal("pgtest: create database:", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.DropDatabase(ctx, url); err != nil {
			tb.Error("pgtest: drop database:", err)
		}
	})
	return url
}
