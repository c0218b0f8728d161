// Package lb runs a real load balancer in front of coordinator replicas
// for tests: Debian's HAProxy in TCP mode (websockets pass through
// untouched), round robin, with an HTTP health check of each replica's
// /key every 200 ms, redispatch of a connection whose replica refuses it,
// and the sessions of a replica marked down cut at once. A test steers new
// connections with Enable and Disable (HAProxy's runtime API on a Unix
// socket) to put nodes on the replica it wants.
//
// It is for tests only: it writes its configuration and socket to a
// temporary directory, listens only on loopback, and stops HAProxy when
// the test ends. It must never touch an HAProxy it did not start. Tests
// are skipped, saying so, when haproxy is not installed.
package lb

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// Backend is one replica behind the balancer.
type Backend struct {
	// Name is how Enable, Disable and Up name it (letters and digits).
	Name string
	// Addr is its host:port on loopback.
	Addr string
}

// LB is a running HAProxy.
type LB struct {
	// URL is the balancer's address for nodes: http://127.0.0.1:port.
	URL  string
	sock string
}

// Available returns the haproxy binary's path, or "" when it is absent.
func Available() string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	return ""
}

// config is HAProxy's configuration for the backends, listening on
// listen, with the runtime API on sock.
func config(listen, sock string, backends []Backend) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    # Control channels are long-lived websockets with their own keep-alives.
    timeout client 1h
    timeout server 1h
    timeout check 500ms
    retries 3
    option redispatch 1

frontend control
    bind %s
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /key
    http-check expect status 200
    default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 2 on-marked-down shutdown-sessions
`, sock, listen)
	for _, be := range backends {
		fmt.Fprintf(&b, "    server %s %s check\n", be.Name, be.Addr)
	}
	return b.String()
}

// Start runs HAProxy in front of backends until the test ends and waits
// until it accepts connections. It skips the test when haproxy is absent.
func Start(t testing.TB, backends ...Backend) *LB {
	t.Helper()
	return StartConfig(t, func(listen, sock string) string { return config(listen, sock, backends) })
}

// StartConfig runs HAProxy with the configuration cfg returns for a
// frontend listening on listen (a loopback address) and the runtime API
// on sock (its global section must have "stats socket SOCK"), as Start
// does.
func StartConfig(t testing.TB, cfgText func(listen, sock string) string) *LB {
	t.Helper()
	bin := Available()
	if bin == "" {
		t.Skip("haproxy not installed (Debian: apt-get install haproxy); skipping the load-balanced test")
	}
	dir := t.TempDir()
	listen := freePort(t)
	sock := filepath.Join(dir, "admin.sock")
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(cfgText(listen, sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("lb: haproxy rejects its configuration: %v\n%s", err, out)
	}
	// -db: stay in the foreground, so the process is ours to stop.
	cmd := exec.Command(bin, "-db", "-f", cfg)
	logf, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("lb: start haproxy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("haproxy's log:\n%s", b)
			}
		}
	})
	lb := &LB{URL: "http://" + listen, sock: sock}
	poll.Until(t, 20*time.Second, "haproxy to listen", func() error {
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("lb: haproxy exited: %v\n%s", err, b)
		default:
		}
		c, err := net.Dial("tcp", listen)
		if err != nil {
			return err
		}
		c.Close()
		_, err = lb.command("show info")
		return err
	})
	return lb
}

// freePort returns a loopback address with a port that was free a
// moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// command sends one command to HAProxy's runtime API and returns its
// answer.
func (lb *LB) command(cmd string) (string, error) {
	c, err := net.Dial("unix", lb.sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String(), sc.Err()
}

// Disable stops sending new connections to the named backend, as an
// operator draining a replica would: the connections it holds stay (HAProxy's
// drain state; maintenance would cut them, as a replica marked down does).
func (lb *LB) Disable(t testing.TB, name string) {
	t.Helper()
	lb.set(t, "set server replicas/"+name+" state drain")
}

// Enable lets the named backend take new connections again.
func (lb *LB) Enable(t testing.TB, name string) {
	t.Helper()
	lb.set(t, "set server replicas/"+name+" state ready")
}

func (lb *LB) set(t testing.TB, cmd string) {
	t.Helper()
	out, err := lb.command(cmd)
	if err == nil && strings.TrimSpace(out) != "" {
		err = errors.New(strings.TrimSpace(out))
	}
	if err != nil {
		t.Fatalf("lb: %s: %v", cmd, err)
	}
}

// Up reports whether HAProxy's health check holds the named backend up
// (and it is enabled).
func (lb *LB) Up(name string) (bool, error) {
	out, err := lb.command("show stat")
	if err != nil {
		return false, err
	}
	// CSV: pxname,svname,...,status is the 18th field.
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) > 17 && f[0] == "replicas" && f[1] == name {
			return strings.HasPrefix(f[17], "UP"), nil
		}
	}
	return false, fmt.Errorf("lb: no backend %q in %q", name, out)
}

// Sessions returns how many connections the named backend holds now.
func (lb *LB) Sessions(name string) (int, error) {
	out, err := lb.command("show stat")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) > 4 && f[0] == "replicas" && f[1] == name {
			var n int
			_, err := fmt.Sscan(f[4], &n) // scur
			return n, err
		}
	}
	return 0, fmt.Errorf("lb: no backend %q", name)
}
