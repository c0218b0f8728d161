package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/warrenmesh/warren/internal/atomicfile"
)

// Config says what service to install.
type Config struct {
	// Name of the service: the systemd unit warrend.service, the launchd
	// label com.warrenmesh.warrend, the Windows service warrend.
	Name string
	// Description is shown by the service manager.
	Description string
	// Executable is the absolute path of the binary the service runs.
	Executable string
	// Args are its arguments.
	Args []string
	// Dir is where the definition file is written (the unit or the
	// property list); empty means the OS's place. Unused on Windows.
	Dir string
	// Group, when not empty, is created (as a system group) if missing:
	// the group whose members may use the local API.
	Group string
	// WritableDirs (systemd only) are the directories the daemon writes:
	// its state directory and its socket's. The unit makes them writable
	// under its read-only file system: those under /var/lib and /run as
	// systemd's state and runtime directories, others by path.
	WritableDirs []string
	// EnvironmentFile (systemd only) is read by the unit if it exists,
	// and ArgsVariable names a variable in it whose words are appended to
	// the command line. Both empty for install-service; set for packages.
	EnvironmentFile string
	ArgsVariable    string
}

// check is what an install needs: a plain name and an absolute path.
func (c Config) check() error {
	if err := c.checkName(); err != nil {
		return err
	}
	if !isAbs(c.Executable) {
		return fmt.Errorf("service executable %q is not an absolute path", c.Executable)
	}
	return nil
}

// checkName is what an uninstall needs.
func (c Config) checkName() error {
	if c.Name == "" || strings.ContainsAny(c.Name, "/\\ \t\n") {
		return fmt.Errorf("service name %q is not a plain name", c.Name)
	}
	return nil
}

// isAbs accepts absolute paths of every OS the definitions are for, so
// that plans for one OS can be built and tested on another.
func isAbs(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	return len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

// A Step is one thing a Plan does: run a command, write a file, remove a
// file, or call the OS's service manager.
type Step struct {
	Cmd    []string // run this command
	Write  *File    // write this file (atomically)
	Remove string   // remove this file (absent is fine)
	Mkdir  string   // create this directory (0700) if missing
	// Call does the step through an OS API (the Windows service manager);
	// Desc says what it does.
	Call func(ctx context.Context) error
	Desc string
	// MayFail steps report their error and the plan goes on: stopping a
	// service that is not running, for example.
	MayFail bool
}

// File is a file a Plan writes.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
}

// String says what the step does, as --print shows it.
func (s Step) String() string {
	var d string
	switch {
	case s.Cmd != nil:
		d = "run " + strings.Join(s.Cmd, " ")
	case s.Write != nil:
		d = fmt.Sprintf("write %s (%04o)", s.Write.Path, s.Write.Mode.Perm())
	case s.Remove != "":
		d = "remove " + s.Remove
	case s.Mkdir != "":
		d = "create " + s.Mkdir + " (0700)"
	default:
		d = s.Desc
	}
	if s.MayFail {
		d += " (may fail)"
	}
	return d
}

func (s Step) do(ctx context.Context) error {
	switch {
	case s.Cmd != nil:
		out, err := exec.CommandContext(ctx, s.Cmd[0], s.Cmd[1:]...).CombinedOutput()
		if err != nil {
			if msg := strings.TrimSpace(string(out)); msg != "" {
				return fmt.Errorf("%w: %s", err, msg)
			}
			return err
		}
		return nil
	case s.Write != nil:
		if err := os.MkdirAll(filepath.Dir(s.Write.Path), 0o755); err != nil {
			return err
		}
		return atomicfile.Write(s.Write.Path, s.Write.Data, s.Write.Mode)
	case s.Remove != "":
		if err := os.Remove(s.Remove); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	case s.Mkdir != "":
		return os.MkdirAll(s.Mkdir, 0o700)
	case s.Call != nil:
		return s.Call(ctx)
	}
	return errors.New("empty step")
}

// Plan is an ordered list of steps that installs or removes a service.
type Plan []Step

// Apply carries out the steps in order, saying each on out. It stops at
// the first failing step that may not fail.
func (p Plan) Apply(ctx context.Context, out io.Writer) error {
	for _, s := range p {
		fmt.Fprintln(out, s)
		if err := s.do(ctx); err != nil {
			if !s.MayFail {
				return fmt.Errorf("%s: %w", s, err)
			}
			fmt.Fprintf(out, "  (went on: %v)\n", err)
		}
	}
	return nil
}

// Print writes the steps and the files' contents, without doing any.
func (p Plan) Print(out io.Writer) {
	for _, s := range p {
		fmt.Fprintln(out, s)
		if s.Write != nil {
			data := s.Write.Data
			if !bytes.HasSuffix(data, []byte("\n")) {
				data = append(data[:len(data):len(data)], '\n')
			}
			fmt.Fprintf(out, "--- %s\n%s---\n", s.Write.Path, data)
		}
	}
}
