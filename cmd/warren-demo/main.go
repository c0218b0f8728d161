// Command warren-demo runs a whole Warren mesh on one machine, as real
// processes: a coordinator (embedded SQLite), a "laptop" node with the
// local proxy, and a "server" node exposing a web service on its mesh
// address. It reaches the service from the laptop through the proxy, prints
// how to try it yourself, and keeps the mesh up until interrupted.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/node/localapi"
)

func main() {
	cli.Main("warren-demo", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout) })
}

// options are the demo's settings.
type options struct {
	bin, state, listen, proxy, service string
	once                               bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("warren-demo", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.bin, "bin", "bin", "directory with warren-coordinator, warrend and warren")
	fs.StringVar(&o.state, "state-dir", ".warren", "directory for the demo's state and logs")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "coordinator address")
	fs.StringVar(&o.proxy, "proxy", "127.0.0.1:1055", "the laptop's SOCKS5/HTTP proxy address")
	fs.StringVar(&o.service, "service", "127.0.0.1:8000", "host address of the server's web service")
	fs.BoolVar(&o.once, "once", false, "check the mesh works, then stop (for CI)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, b := range []string{"warren-coordinator", "warrend", "warren"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s/%s missing: run make build first", o.bin, b)
		}
	}
	if err := os.MkdirAll(o.state, 0o700); err != nil {
		return err
	}
	d := &demo{opts: o, out: out}
	defer d.stopAll()
	return d.run(ctx)
}

// demo owns the child processes.
type demo struct {
	opts  options
	out   io.Writer
	procs []*exec.Cmd
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

func (d *demo) run(ctx context.Context) error {
	o := d.opts
	coordURL := "http://" + o.listen
	coordDir := filepath.Join(o.state, "coordinator")

	d.step("starting the coordinator on %s (state in %s)", o.listen, coordDir)
	if err := d.start("coordinator", "warren-coordinator", "serve", "--state-dir", coordDir, "--listen", o.listen, "--stun-listen", "127.0.0.1:0"); err != nil {
		return err
	}
	if err := waitHTTP(ctx, coordURL+"/key", 15*time.Second); err != nil {
		return fmt.Errorf("coordinator did not come up (see %s/coordinator.log): %w", o.state, err)
	}
	authKey, err := d.demoKey(ctx, coordDir)
	if err != nil {
		return err
	}

	d.step("starting a web service on %s (only the server node exposes it)", o.service)
	svc, err := serveHello(o.service)
	if err != nil {
		return err
	}
	defer svc.Close()

	laptopSock, serverSock := filepath.Join(o.state, "laptop.sock"), filepath.Join(o.state, "server.sock")
	d.step("starting two nodes: laptop (proxy on %s) and server (mesh port 80 -> %s)", o.proxy, o.service)
	if err := d.start("laptop", "warrend", "--state-dir", filepath.Join(o.state, "laptop"), "--socket", laptopSock,
		"--socks5", o.proxy); err != nil {
		return err
	}
	if err := d.start("server", "warrend", "--state-dir", filepath.Join(o.state, "server"), "--socket", serverSock,
		"--socks5", "", "--expose", "80="+o.service); err != nil {
		return err
	}
	for _, n := range []struct{ name, sock string }{{"laptop", laptopSock}, {"server", serverSock}} {
		if err := waitSocket(ctx, n.sock, 15*time.Second); err != nil {
			return fmt.Errorf("%s did not start (see %s/%s.log): %w", n.name, o.state, n.name, err)
		}
		d.step("joining %s to the mesh", n.name)
		c := localapi.NewClient(n.sock)
		uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := c.Up(uctx, localapi.UpRequest{Coordinator: coordURL, AuthKey: authKey, Hostname: n.name},
			func(msg string) { fmt.Fprintf(d.out, "    %s: %s\n", n.name, msg) })
		cancel()
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: up: %w", n.name, err)
		}
		fmt.Fprintf(d.out, "    %s is %s\n", n.name, st.Self.Addresses[0].Addr())
	}

	d.step("laptop -> http://server/ through the laptop's proxy")
	start := time.Now()
	body, err := getViaProxy(ctx, o.proxy, "http://server/")
	if err != nil {
		return fmt.Errorf("the laptop could not reach the server's service: %w", err)
	}
	fmt.Fprintf(d.out, "    %q in %s, through a WireGuard tunnel\n", strings.TrimSpace(body), time.Since(start).Round(time.Millisecond))
	if o.once {
		d.step("the mesh works; stopping (--once)")
		return nil
	}
	bin := o.bin
	fmt.Fprintf(d.out, `
The mesh is up. Try:
  curl --proxy socks5h://%[1]s http://server/
  %[2]s/warren --socket %[3]s status
  %[2]s/warren --socket %[3]s ping server --tcp 80
  %[2]s/warren-coordinator nodes list --state-dir %[4]s
Join this machine's own node (another terminal):
  %[2]s/warrend --state-dir /tmp/warren-me --socket /tmp/warren-me.sock --socks5 127.0.0.1:1056 &
  %[2]s/warren --socket /tmp/warren-me.sock up --coordinator %[5]s --auth-key %[6]s
Logs: %[7]s/*.log. Ctrl-C stops everything.
`, o.proxy, bin, laptopSock, coordDir, coordURL, authKey, o.state)
	<-ctx.Done()
	d.step("stopping")
	return nil
}

// start runs a binary from the bin directory with its output in a log.
func (d *demo) start(name, bin string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(d.opts.state, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.opts.bin, bin), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	logf.Close() // the child has its own copy
	d.procs = append(d.procs, cmd)
	return nil
}

// stopAll stops the children, last started first.
func (d *demo) stopAll() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
}

// demoKey creates a reusable pre-auth key for the demo user through the
// coordinator's admin socket.
func (d *demo) demoKey(ctx context.Context, coordDir string) (string, error) {
	admin := filepath.Join(d.opts.bin, "warren-coordinator")
	_ = exec.CommandContext(ctx, admin, "users", "create", "demo@warren.internal", "--admin", "--state-dir", coordDir).Run() // exists on reruns
	outb, err := exec.CommandContext(ctx, admin, "keys", "create", "--user", "demo@warren.internal", "--reusable", "--ttl", "24h",
		"--state-dir", coordDir, "--json").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("create a pre-auth key: %s", strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("create a pre-auth key: %w", err)
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(outb, &k); err != nil || k.Key == "" {
		return "", fmt.Errorf("create a pre-auth key: unexpected output %q", outb)
	}
	return k.Key, nil
}

// serveHello serves a page naming the server on addr.
func serveHello(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the server node's web service (you came from %s)\n", r.RemoteAddr)
	})}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

func getViaProxy(ctx context.Context, proxyAddr, target string) (string, error) {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5h", Host: proxyAddr})}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(bufio.NewReader(io.LimitReader(resp.Body, 1<<20)))
	return string(b), err
}

func waitHTTP(ctx context.Context, u string, timeout time.Duration) error {
	return waitUntil(ctx, timeout, func() error {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
}

func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	return waitUntil(ctx, timeout, func() error {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// waitUntil retries try every 100 ms until it succeeds or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, try func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := try()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
