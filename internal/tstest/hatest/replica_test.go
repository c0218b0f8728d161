//go:build linux

package hatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/pgtest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// replica is one warren-coordinator serve process.
type replica struct {
	t      *testing.T
	name   string
	bin    string   // the warren-coordinator binary
	dir    string   // its state directory (key files, admin socket)
	addr   string   // its listener on loopback
	store  string   // the PostgreSQL URL
	public string   // the load balancer's URL, which nodes use
	extra  []string // more serve flags

	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs the replica and waits until it answers /key.
func (r *replica) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "serve", "--state-dir", r.dir, "--listen", r.addr, "--public-url", r.public,
		"--store", r.store, "--no-relay", "--stun-listen", "", "--max-conns-per-ip", "0", "--log-level", "debug")
	r.cmd.Args = append(r.cmd.Args, r.extra...)
	logf, err := os.OpenFile(filepath.Join(r.dir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("replica %s: %v", r.name, err)
	}
	exited := make(chan struct{})
	r.exited = exited
	cmd := r.cmd
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	client := &http.Client{Timeout: 2 * time.Second}
	poll.Until(r.t, 60*time.Second, "replica "+r.name+" to serve /key", func() error {
		select {
		case <-exited:
			r.t.Fatalf("replica %s exited at start:\n%s", r.name, r.log())
		default:
		}
		resp, err := client.Get("http://" + r.addr + "/key")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/key: %s", resp.Status)
		}
		return nil
	})
}

// log returns what the replica wrote so far.
func (r *replica) log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "serve.log"))
	return string(b)
}

// kill9 ends the replica with SIGKILL: no goodbye to anyone.
func (r *replica) kill9() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill -9 replica %s: %v", r.name, err)
	}
	<-r.exited
}

// freeze stops the replica with SIGSTOP (a hung process, or a machine
// that vanished: its sockets stay open but nothing answers) until thaw or
// the test's end.
func (r *replica) freeze() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatalf("freeze replica %s: %v", r.name, err)
	}
	r.t.Cleanup(r.thaw) // runs before the stop registered earlier (last in, first out)
}

// thaw lets a frozen replica run again.
func (r *replica) thaw() { _ = r.cmd.Process.Signal(syscall.SIGCONT) }

// stop ends the replica politely (the test's cleanup).
func (r *replica) stop() {
	if r.cmd == nil {
		return
	}
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(15 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// admin runs an admin command against this replica's admin socket and
// returns its standard output.
func (r *replica) admin(args ...string) []byte {
	r.t.Helper()
	return r.run(nil, args)
}

// run is admin with extra flags.
func (r *replica) run(flags, args []string) []byte {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The group and verb, then the flags, then the arguments.
	n := 2
	if args[0] == "audit" {
		n = 1
	}
	full := append(append(append(append([]string{}, args[:n]...), "--state-dir", r.dir), flags...), args[n:]...)
	cmd := exec.CommandContext(ctx, r.bin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("replica %s: warren-coordinator %v: %v\n%s%s", r.name, args, err, out.Bytes(), errb.Bytes())
	}
	return out.Bytes()
}

// adminJSON runs an admin command with --json and decodes its answer.
func adminJSON[T any](r *replica, args ...string) T {
	r.t.Helper()
	var v T
	out := r.run([]string{"--json"}, args)
	if err := json.Unmarshal(out, &v); err != nil {
		r.t.Fatalf("replica %s: %v: decode %q: %v", r.name, args, out, err)
	}
	return v
}

// copyKeys gives dst the coordinator key and the secrets key ring of src:
// replicas are one coordinator to the nodes (the same pinned key) and
// unseal the same secrets in the shared database.
func copyKeys(t *testing.T, src, dst string) {
	t.Helper()
	for _, f := range []string{"coordinator.key", "secrets.key"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
