package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before it kills.
const stopGrace = 5 * time.Second

// Process is a long-running command started in a namespace with Start:
// a daemon, a server, a tunnel endpoint.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *output
	done chan struct{}
	err  error // from Wait; read after done is closed

	stopOnce sync.Once
	stopped  bool // set by Stop before it signals; read after done is closed
}

// Start starts name with args inside the namespace, its standard output and
// error captured together (see WaitFor and Output). It is stopped when the
// test ends, and its output logged if the test failed.
func (n *Namespace) Start(name string, args ...string) *Process {
	n.tb.Helper()
	return start(n.tb, "netns "+n.Name, name, n.Command(name, args...))
}

// StartCmd starts cmd (in a namespace or not) as Start does: its output
// captured, stopped when the test ends, its output logged (labelled with
// where) if the test failed.
func StartCmd(tb testing.TB, where string, cmd *exec.Cmd) *Process {
	tb.Helper()
	return start(tb, where, cmd.Args[0], cmd)
}

func start(tb testing.TB, where, name string, cmd *exec.Cmd) *Process {
	tb.Helper()
	p := &Process{name: name, cmd: cmd, out: newOutput(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.WaitDelay = stopGrace // children holding the output pipe must not block Wait
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%s: start %s: %v", where, name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		if err := p.Stop(); err != nil {
			tb.Logf("%s: %v", where, err)
		}
		if tb.Failed() {
			tb.Logf("%s: output of %s:\n%s", where, name, tail(p.Output(), 16<<10))
		}
	})
	return p
}

// Stop asks the process to end (SIGTERM), kills it if it has not ended
// after a few seconds, and returns how it ended: nil when it exited
// cleanly or by Stop's signal. It may be called more than once.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.stopped = true
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
	var ee *exec.ExitError
	if p.stopped && errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() &&
			(ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGKILL) {
			return nil
		}
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w", p.name, p.err)
	}
	return nil
}

// Kill ends the process at once (SIGKILL, as kill -9: it cleans nothing
// up) and waits for it to be gone.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		p.stopped = true
		_ = p.cmd.Process.Kill()
	})
	<-p.done
}

// WaitFor waits until the process has printed substr and returns the line
// it is on. It fails if the process exits first or timeout passes, with the
// output so far in the error.
func (p *Process) WaitFor(substr string, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		text, changed := p.out.snapshot()
		if line, ok := lineWith(text, substr); ok {
			return line, nil
		}
		select {
		case <-changed:
		case <-p.done:
			// Wait has returned, so the output is complete.
			text, _ := p.out.snapshot()
			if line, ok := lineWith(text, substr); ok {
				return line, nil
			}
			return "", fmt.Errorf("%s exited (%v) before printing %q; its output:\n%s", p.name, p.err, substr, tail(text, 16<<10))
		case <-timer.C:
			return "", fmt.Errorf("%s printed no %q in %s; its output:\n%s", p.name, substr, timeout, tail(text, 16<<10))
		}
	}
}

// Output returns everything the process has printed so far.
func (p *Process) Output() string {
	text, _ := p.out.snapshot()
	return text
}

func lineWith(text, substr string) (string, bool) {
	i := strings.Index(text, substr)
	if i < 0 {
		return "", false
	}
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := len(text)
	if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
		end = i + j
	}
	return text[start:end], true
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// output collects a process's output and tells waiters when it grows.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed (and replaced) on every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(b)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(b), nil
}

func (o *output) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String(), o.changed
}
