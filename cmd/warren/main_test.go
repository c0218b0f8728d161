package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/localapi"
)

// wait bounds every wait on the processes a test starts; it only ends a
// hung test.
const wait = 30 * time.Second

// proc starts a binary whose output goes to a log file in dir, and stops
// it when the test ends.
func proc(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, b)
		}
	})
}

// startCoordinator runs the warren-coordinator binary in bin with its
// state in dir/coordinator until the test ends, and returns its listen
// address and state directory once it answers.
func startCoordinator(t *testing.T, bin, dir string) (listen, stateDir string) {
	t.Helper()
	listen = buildtest.FreePort(t)
	stateDir = filepath.Join(dir, "coordinator")
	proc(t, dir, "coordinator", filepath.Join(bin, "warren-coordinator"), "serve", "--state-dir", stateDir, "--listen", listen, "--stun-listen", "127.0.0.1:0")
	poll.UntilTrue(t, wait, "the coordinator", func() bool {
		resp, err := http.Get("http://" + listen + "/key")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return listen, stateDir
}

// warren runs the CLI in-process and returns stdout and stderr.
func warren(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return warrenStdin(t, "", args...)
}

// warrenStdin runs the CLI in-process with stdin and returns stdout and
// stderr.
func warrenStdin(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestCLIAgainstRealDaemons runs the warren CLI against two warrend
// processes and a coordinator process.
func TestCLIAgainstRealDaemons(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend")
	dir := t.TempDir()
	listen, coordDir := startCoordinator(t, bin, dir)
	admin := func(args ...string) []byte {
		out, err := exec.Command(filepath.Join(bin, "warren-coordinator"), append(args, "--state-dir", coordDir)...).Output()
		if err != nil {
			t.Fatalf("warren-coordinator %v: %v", args, err)
		}
		return out
	}
	admin("users", "create", "ann@example.com")
	var key struct{ Key string }
	if err := json.Unmarshal(admin("keys", "create", "--user", "ann@example.com", "--reusable", "--json"), &key); err != nil {
		t.Fatal(err)
	}

	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	laptop, db := filepath.Join(dir, "laptop.sock"), filepath.Join(dir, "db.sock")
	// db's service is behind --expose 5432=SVC,http-identity: it greets
	// the caller by the header and asks db's warrend who that is.
	whois := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var out bytes.Buffer
		if err := run(r.Context(), []string{"--socket", db, "whois", r.RemoteAddr}, strings.NewReader(""), &out, io.Discard); err != nil {
			out.WriteString("whois: " + err.Error())
		}
		select {
		case whois <- out.String():
		default:
		}
		io.WriteString(w, "db says hi to "+r.Header.Get("Warren-User-Login"))
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(svc) }()
	defer srv.Close()

	proc(t, dir, "laptop", filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "laptop"), "--socket", laptop,
		"--socks5", buildtest.FreePort(t), "--endpoint", "127.0.0.1")
	proc(t, dir, "db", filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "db"), "--socket", db,
		"--socks5", "", "--endpoint", "127.0.0.1", "--expose", "5432="+svc.Addr().String()+",http-identity")
	for _, s := range []string{laptop, db} {
		poll.UntilTrue(t, wait, s, func() bool {
			c, err := net.Dial("unix", s)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}

	// Before up: status says stopped; ping explains.
	out, _, err := warren(t, "--socket", laptop, "status")
	if err != nil || !strings.Contains(out, "Stopped") {
		t.Fatalf("status before up: %q, %v", out, err)
	}
	if _, _, err := warren(t, "--socket", laptop, "ping", "db"); err == nil || !strings.Contains(err.Error(), "warren up") {
		t.Fatalf("ping before up: %v", err)
	}

	// Before up, warren posture collects for itself and says it does
	// not report.
	out, _, err = warren(t, "--socket", laptop, "posture")
	if err != nil || !strings.Contains(out, "node:os") || !strings.Contains(out, "not reported") {
		t.Fatalf("posture before up: %q, %v", out, err)
	}

	coord := "http://" + listen
	// The key from a file and from stdin: neither shows in ps.
	keyFile := filepath.Join(dir, "authkey")
	if err := os.WriteFile(keyFile, []byte(key.Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, progress, err := warren(t, "--socket", laptop, "up", "--coordinator", coord, "--auth-key-file", keyFile, "--hostname", "laptop")
	if err != nil || !strings.Contains(out, "Up: laptop (100.64.") || !strings.Contains(progress, "pinned coordinator key ckey:") {
		t.Fatalf("up: %q %q %v", out, progress, err)
	}
	out, _, err = warrenStdin(t, key.Key+"\n", "up", "--socket", db, "--coordinator", coord, "--auth-key", "-", "--hostname", "db", "--json")
	var st localapi.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Self.Name != "db" {
		t.Fatalf("up --json: %q, %v", out, err)
	}

	poll.UntilTrue(t, wait, "laptop to see db", func() bool {
		out, _, err := warren(t, "--socket", laptop, "status", "--json")
		var st localapi.Status
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && len(st.Peers) == 1 && st.Peers[0].Name == "db"
	})
	out, _, err = warren(t, "--socket", laptop, "ping", "db", "--tcp", "5432", "-c", "2")
	if err != nil || strings.Count(out, "tcp connect to port 5432 from db") != 2 {
		t.Fatalf("ping: %q, %v", out, err)
	}
	out, _, err = warren(t, "--socket", laptop, "status")
	if err != nil || !strings.Contains(out, "db ") || !strings.Contains(out, "direct 127.0.0.1:") {
		t.Fatalf("status: %q, %v", out, err)
	}
	out, _, err = warren(t, "--socket", laptop, "netcheck", "--json")
	var nc localapi.NetcheckReport
	if err != nil || json.Unmarshal([]byte(out), &nc) != nil || !nc.ControlKeyMatches || !nc.ControlChannelOpen || nc.ListenPort == 0 {
		t.Fatalf("netcheck: %q, %v", out, err)
	}

	out, _, err = warren(t, "--socket", laptop, "posture", "--json")
	var pr localapi.PostureReport
	if err != nil || json.Unmarshal([]byte(out), &pr) != nil || !pr.Reporting || len(pr.Attrs) == 0 || pr.Attrs[0].CollectedAt.IsZero() {
		t.Fatalf("posture --json: %q, %v", out, err)
	}
	if !slices.ContainsFunc(pr.Attrs, func(a localapi.PostureAttr) bool { return a.Name == "node:arch" && a.Value == runtime.GOARCH }) {
		t.Fatalf("posture --json has no node:arch %s: %+v", runtime.GOARCH, pr.Attrs)
	}

	// warren forward: a local port to db:5432.
	fwd := buildtest.FreePort(t)
	_, port, _ := net.SplitHostPort(fwd)
	fctx, fcancel := context.WithCancel(context.Background())
	fdone := make(chan error, 1)
	go func() {
		fdone <- run(fctx, []string{"--socket", laptop, "forward", port, "db:5432"}, strings.NewReader(""), io.Discard, io.Discard)
	}()
	var body string
	poll.UntilTrue(t, wait, "the forward", func() bool {
		resp, err := http.Get("http://" + fwd + "/")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return true
	})
	fcancel()
	if err := <-fdone; err != nil || body != "db says hi to ann@example.com" {
		t.Fatalf("forward: %q, %v", body, err)
	}
	if w := <-whois; !strings.Contains(w, " is laptop (laptop.") || !strings.Contains(w, "ann@example.com") ||
		!strings.Contains(w, "through expose 5432 http-identity, from 100.64.") {
		t.Errorf("warren whois of the service's client address: %q", w)
	}

	out, _, err = warren(t, "--socket", laptop, "down")
	if err != nil || !strings.Contains(out, "Down") {
		t.Fatalf("down: %q, %v", out, err)
	}
	out, _, err = warren(t, "--socket", db, "logout")
	if err != nil || !strings.Contains(out, "Logged out") {
		t.Fatalf("logout: %q, %v", out, err)
	}
	nodes := admin("nodes", "list", "--json")
	if !strings.Contains(string(nodes), `"expired": true`) && !strings.Contains(string(nodes), `"expired":true`) {
		t.Fatalf("after logout the coordinator does not show db expired: %s", nodes)
	}
}

func TestCLIErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--socket", sock, "status"}, "warrend is not running"},
		{[]string{"bogus"}, "unknown command"},
		{[]string{"--socket", sock, "ping"}, "usage: warren ping"},
		{[]string{"--socket", sock, "forward", "x", "db:1"}, "not a port"},
		{[]string{"--socket", sock, "forward", "8000", "db"}, "PEER:PORT"},
		{[]string{"--socket"}, "--socket needs a path"},
		{[]string{"--socket", sock, "whois"}, "usage: warren whois"},
		{[]string{"--socket", sock, "whois", "db"}, "warrend is not running"},
		{[]string{"--socket", sock, "whois", "192.0.2.1"}, "not a Warren address"},
		{[]string{"--socket", sock, "whois", "127.0.0.1:5000"}, "warrend is not running"},
		{[]string{"--socket", sock, "whois", "100.64.0.1"}, "warrend is not running"},
		{[]string{"--socket", sock, "ip", "-4", "-6"}, "usage: warren ip"},
		{[]string{"--socket", sock, "ip", "a", "b"}, "usage: warren ip"},
		{[]string{"--socket", sock, "ip"}, "warrend is not running"},
		{[]string{"--socket", sock, "posture"}, "warrend is not running"},
		{[]string{"--socket", sock, "posture", "extra"}, "usage: warren posture"},
	} {
		_, _, err := warren(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("warren %v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	out, _, err := warren(t, "--help")
	if err != nil || !strings.Contains(out, "warren forward LOCALPORT PEER:PORT") {
		t.Fatalf("help: %q, %v", out, err)
	}

}
