//go:build unix

package sshserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/creack/pty"
)

func platformSupported() error { return nil }

// lookupAccount finds a local user by name (or, byID, by uid) in the
// system's user database, with its groups and login shell.
func lookupAccount(name string, byID bool) (*account, error) {
	var u *user.User
	var err error
	if byID {
		u, err = user.LookupId(name)
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return nil, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Username, err)
	}
	a := &account{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, shell: loginShell(u.Username)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				a.groups = append(a.groups, uint32(g))
			}
		}
	}
	return a, nil
}

// loginShell returns name's shell from /etc/passwd, or /bin/sh when it
// is not listed there (as on macOS, whose directory service holds users).
func loginShell(name string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "/bin/sh"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == name && filepath.IsAbs(fields[6]) {
			return fields[6]
		}
	}
	return "/bin/sh"
}

// procSpec is what a session runs.
type procSpec struct {
	acct     *account
	switchTo bool     // run with acct's credentials (warrend runs as root)
	command  string   // "" for a login shell
	env      []string // the whole environment
	pty      *ptyReq  // nil: pipes
}

// process is a session's running program.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.Reader // the terminal, with a PTY
	stderr io.Reader // nil with a PTY
	tty    *os.File  // the PTY's controlling side, nil without
}

// startProcess starts sp in a session of its own (so kill reaches all of
// it), as sp.acct when sp.switchTo.
func startProcess(sp procSpec) (*process, error) {
	a := sp.acct
	var cmd *exec.Cmd
	if sp.command == "" {
		cmd = &exec.Cmd{Path: a.shell, Args: []string{"-" + filepath.Base(a.shell)}}
	} else {
		cmd = &exec.Cmd{Path: a.shell, Args: []string{a.shell, "-c", sp.command}}
	}
	cmd.Env = sp.env
	cmd.Dir = "/"
	if st, err := os.Stat(a.home); err == nil && st.IsDir() {
		cmd.Dir = a.home
	}
	attr := &syscall.SysProcAttr{Setsid: true}
	if sp.switchTo {
		attr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
	}
	cmd.SysProcAttr = attr
	p := &process{cmd: cmd}
	if sp.pty != nil {
		ptmx, tty, err := pty.Open()
		if err != nil {
			return nil, fmt.Errorf("open a pty: %w", err)
		}
		if sp.switchTo {
			_ = tty.Chown(int(a.uid), int(a.gid))
		}
		_ = pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(sp.pty.width), Rows: uint16(sp.pty.height)})
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		attr.Setctty = true
		attr.Ctty = 0
		err = cmd.Start()
		_ = tty.Close()
		if err != nil {
			_ = ptmx.Close()
			return nil, fmt.Errorf("start %s: %w", a.shell, err)
		}
		p.tty, p.stdin, p.stdout = ptmx, ptmx, ptmx
		return p, nil
	}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if p.stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if p.stderr, err = cmd.StderrPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", a.shell, err)
	}
	return p, nil
}

// resize sets the PTY's size.
func (p *process) resize(width, height int) {
	if p.tty != nil {
		_ = pty.Setsize(p.tty, &pty.Winsize{Cols: uint16(width), Rows: uint16(height)})
	}
}

// kill ends the program and everything in its session.
func (p *process) kill() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// wait waits for the program, once its output has been read, and returns
// its exit status (-1 when a signal ended it); it releases the PTY.
func (p *process) wait() int {
	err := p.cmd.Wait()
	if p.tty != nil {
		_ = p.tty.Close()
	}
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return -1
}

// defaultPath is the PATH a session starts with.
func defaultPath(uid uint32) string {
	if uid == 0 {
		return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return "/usr/local/bin:/usr/bin:/bin"
}
