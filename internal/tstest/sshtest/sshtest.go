// Package sshtest gives tests of SSH by mesh identity what they need from
// the host: throwaway local Unix users to log in as (User), and the real
// OpenSSH client (`ssh`, from Debian) run with a private, empty
// configuration against a server under test (Client).
//
// It creates and deletes real accounts, so it needs root and useradd; it
// skips the test, saying why, when either is missing, and when `ssh` is.
// Every account it makes is named "wt…" with a random suffix and is
// removed (with its home) when the test ends. It must never be imported by
// production code, and never touches an account it did not create.
package sshtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// User creates a local Unix user for the test's lifetime: a system account
// named "wt" + name + a random suffix (at most 32 characters), with a home
// directory and /bin/sh as its shell, removed with its home at cleanup.
// name should be a few lower-case letters. User skips tb when it does not
// run as root or useradd is not installed.
func User(tb testing.TB, name string) *user.User {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("sshtest: creating a local user needs root (CI runs the tests as root)")
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		tb.Skip("sshtest: useradd not installed (Debian: passwd)")
	}
	userdel, err := exec.LookPath("userdel")
	if err != nil {
		tb.Skip("sshtest: userdel not installed (Debian: passwd)")
	}
	var suffix [3]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		tb.Fatalf("sshtest: random user name: %v", err)
	}
	login := "wt" + name
	if len(login) > 32-len(suffix)*2 {
		login = login[:32-len(suffix)*2]
	}
	login += hex.EncodeToString(suffix[:])
	out, err := exec.Command(useradd, "--system", "--create-home", "--shell", "/bin/sh", login).CombinedOutput()
	if err != nil {
		tb.Fatalf("sshtest: useradd %s: %v: %s", login, err, out)
	}
	tb.Cleanup(func() {
		out, err := exec.Command(userdel, "-r", login).CombinedOutput()
		// userdel exits 12 when only the mail spool was missing: the
		// account itself is gone.
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 12) {
			tb.Errorf("sshtest: userdel -r %s: %v: %s", login, err, out)
		}
	})
	u, err := user.Lookup(login)
	if err != nil {
		tb.Fatalf("sshtest: look up the new user %s: %v", login, err)
	}
	return u
}

// Client runs the real OpenSSH client against one server. The zero value
// is not usable: set User and either Host and Port, or ProxyCommand.
type Client struct {
	// User is the login asked for (ssh -l).
	User string
	// Host and Port are where the server listens. With ProxyCommand set,
	// Host is only the name ssh gives it (%h) and Port its %p.
	Host string
	Port int
	// ProxyCommand, when set, is ssh's ProxyCommand (e.g. "warren
	// --socket S nc %h %p").
	ProxyCommand string
	// Options are more -o options ("Key=value").
	Options []string
	// Env is added to the client's environment (the test's own
	// environment is passed on too, without SSH_AUTH_SOCK).
	Env []string
}

// Args returns the arguments ssh runs with before the remote command:
// an empty configuration, no known hosts, no agent, no keys, only the
// "none" and keyboard-interactive methods, then Options, extra (more ssh
// flags, e.g. "-tt" or "-L …"), the login and the host.
func (c Client) Args(extra ...string) []string {
	args := []string{
		"-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentityAgent=none",
		"-o", "ForwardAgent=no",
		"-o", "ForwardX11=no",
		"-o", "PubkeyAuthentication=no",
		"-o", "PasswordAuthentication=no",
		"-o", "PreferredAuthentications=none,keyboard-interactive",
		"-o", "NumberOfPasswordPrompts=0",
		"-o", "ConnectTimeout=20",
		"-o", "ServerAliveInterval=5",
		"-o", "LogLevel=INFO",
	}
	if c.ProxyCommand != "" {
		args = append(args, "-o", "ProxyCommand="+c.ProxyCommand)
	}
	if c.Port != 0 {
		args = append(args, "-p", strconv.Itoa(c.Port))
	}
	for _, o := range c.Options {
		args = append(args, "-o", o)
	}
	args = append(args, extra...)
	args = append(args, "-l", c.User, c.Host)
	return args
}

// Command returns the ssh command for remote (empty: a login shell), with
// extra ssh flags before the host, bound to ctx. It skips tb when ssh is
// not installed.
func (c Client) Command(ctx context.Context, tb testing.TB, remote string, extra ...string) *exec.Cmd {
	tb.Helper()
	path, err := exec.LookPath("ssh")
	if err != nil {
		tb.Skip("sshtest: the OpenSSH client is not installed (Debian: openssh-client)")
	}
	args := c.Args(extra...)
	if remote != "" {
		args = append(args, "--", remote)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	env := make([]string, 0, len(os.Environ())+len(c.Env))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, c.Env...)
	// A ProxyCommand child may hold ssh's output open after ssh is
	// killed: stop waiting for it after a while.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Result is how one ssh run ended.
type Result struct {
	Stdout, Stderr string
	// ExitCode is ssh's exit status: the remote command's, or 255 when
	// ssh itself failed (refused, disconnected); -1 when it was killed.
	ExitCode int
}

// Run runs ssh for remote with stdin (may be nil) and waits for it to end
// or ctx to end (then ssh is killed). The error is only for failing to
// start ssh; a refused login is a Result with ExitCode 255.
func (c Client) Run(ctx context.Context, tb testing.TB, stdin io.Reader, remote string, extra ...string) Result {
	tb.Helper()
	cmd := c.Command(ctx, tb, remote, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	default:
		tb.Fatalf("sshtest: run ssh: %v", err)
	}
	return res
}

// Session is an ssh run the test interacts with while it runs: it writes
// Stdin, and reads ssh's stderr line by line (to catch a sign-in URL the
// server shows) from Lines.
type Session struct {
	Stdin io.WriteCloser

	lines   chan string
	stdout  syncBuffer
	stderr  syncBuffer
	read    chan struct{} // closed when the stderr reader ended
	done    chan struct{} // closed when ssh ended; then waitErr is set
	waitErr error
}

// Start starts ssh for remote (empty: a login shell) with extra flags. It
// is killed when ctx ends; the test must call Wait.
func (c Client) Start(ctx context.Context, tb testing.TB, remote string, extra ...string) *Session {
	tb.Helper()
	cmd := c.Command(ctx, tb, remote, extra...)
	s := &Session{lines: make(chan string, 256), read: make(chan struct{}), done: make(chan struct{})}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatalf("sshtest: stdin: %v", err)
	}
	stderr, errW := io.Pipe()
	s.Stdin = stdin
	cmd.Stdout = &s.stdout
	cmd.Stderr = errW
	if err := cmd.Start(); err != nil {
		tb.Fatalf("sshtest: start ssh: %v", err)
	}
	// This goroutine waits for ssh to end (or be killed with ctx), then
	// ends the stderr reader; Wait waits for both.
	go func() {
		s.waitErr = cmd.Wait()
		_ = errW.Close()
		close(s.done)
	}()
	go func() {
		defer close(s.read)
		defer close(s.lines)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.stderr.WriteString(line + "\n")
			select {
			case s.lines <- line:
			default: // the test is not reading lines: keep them in Stderr only
			}
		}
	}()
	return s
}

// Lines delivers ssh's stderr a line at a time (up to 256 unread; more
// are kept only in Stderr), and is closed when ssh has ended.
func (s *Session) Lines() <-chan string { return s.lines }

// Stdout returns what ssh printed so far.
func (s *Session) Stdout() string { return s.stdout.String() }

// Stderr returns ssh's stderr so far.
func (s *Session) Stderr() string { return s.stderr.String() }

// Wait closes stdin, waits for ssh to end and returns how.
func (s *Session) Wait() (Result, error) {
	_ = s.Stdin.Close()
	<-s.done
	<-s.read
	err := s.waitErr
	res := Result{Stdout: s.stdout.String(), Stderr: s.stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	default:
		return res, fmt.Errorf("ssh: %w", err)
	}
	return res, nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
