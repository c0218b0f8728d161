//go:build linux

package relayrss

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
)

const (
	warmClients = 100  // connected before the first reading: one-time costs (pools, runtime) are not per client
	idleClients = 1000 // connected between the two readings
	settleEvery = 250 * time.Millisecond
	settleReads = 6                // readings within settleBand in a row: settled
	settleBand  = 128 << 10        // bytes
	settleMax   = 30 * time.Second // give up waiting and take the last reading
	startMax    = 30 * time.Second // a relay must answer within this
)

// BenchmarkIdleClientRSS connects warmClients and then idleClients more
// idle clients to a relay process and reports how much its resident memory
// grew per added client: warren-KB/client for warren-derp,
// derper-KB/client for Tailscale's derper (v1.102.5) in the same run, and
// warren/derper. Clients run in a separate process for both relays (this
// test binary re-executed for Warren's, derpidle for derper's). If derper
// cannot be built (no module proxy, no module cache) its half is skipped
// and says why.
func BenchmarkIdleClientRSS(b *testing.B) {
	raiseFileLimit(b)
	warren := buildtest.Build(b, "warren-derp")
	derperDir, derperErr := buildDerper(b)
	if derperErr != nil {
		b.Logf("derper baseline skipped: %v", derperErr)
	}
	b.ResetTimer()
	for range b.N {
		w := measure(b, "warren-derp", startWarren(b, filepath.Join(warren, "warren-derp")))
		b.ReportMetric(w, "warren-KB/client")
		if derperErr != nil {
			continue
		}
		d := measure(b, "derper", startDerper(b, derperDir))
		b.ReportMetric(d, "derper-KB/client")
		b.ReportMetric(w/d, "warren/derper")
	}
}

// relayProc is a relay process and the commands that open idle clients to it.
type relayProc struct {
	cmd     *exec.Cmd
	clients *exec.Cmd // reads "dial N", answers "ok TOTAL"
}

// measure returns the relay's RSS growth in KB per idle client.
func measure(b *testing.B, name string, p relayProc) float64 {
	b.Helper()
	stdin, err := p.clients.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := p.clients.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	p.clients.Stderr = os.Stderr
	if err := p.clients.Start(); err != nil {
		b.Fatalf("start %s clients: %v", name, err)
	}
	defer func() {
		stdin.Close() // the client process exits when its input ends
		if err := p.clients.Wait(); err != nil {
			b.Errorf("%s clients: %v", name, err)
		}
	}()
	lines := bufio.NewScanner(stdout)
	dial := func(n, total int) {
		fmt.Fprintf(stdin, "dial %d\n", n)
		if !lines.Scan() || lines.Text() != fmt.Sprintf("ok %d", total) {
			b.Fatalf("%s clients: dial %d: got %q, %v", name, n, lines.Text(), lines.Err())
		}
	}
	pid := p.cmd.Process.Pid
	rssStart := settledRSS(b, pid)
	dial(warmClients, warmClients)
	rss0 := settledRSS(b, pid)
	start := time.Now()
	dial(idleClients, warmClients+idleClients)
	connect := time.Since(start)
	rss1 := settledRSS(b, pid)
	perClient := float64(rss1-rss0) / idleClients / 1024
	b.Logf("%s: RSS %d KB idle, %d KB with %d clients, %d KB with %d: %.1f KB per client (%d clients connected in %v)",
		name, rssStart>>10, rss0>>10, warmClients, rss1>>10, warmClients+idleClients, perClient, idleClients, connect.Round(time.Millisecond))
	return perClient
}

// settledRSS waits until the process's RSS stays within settleBand over
// settleReads readings (at most settleMax) and returns the last reading.
func settledRSS(b *testing.B, pid int) int64 {
	b.Helper()
	var window []int64
	deadline := time.Now().Add(settleMax)
	for {
		window = append(window, vmRSS(b, pid))
		if len(window) > settleReads {
			window = window[1:]
		}
		if len(window) == settleReads && spread(window) <= settleBand {
			return window[len(window)-1]
		}
		if time.Now().After(deadline) {
			b.Logf("pid %d: RSS did not settle within %v (last readings %v); taking the last", pid, settleMax, window)
			return window[len(window)-1]
		}
		time.Sleep(settleEvery) // sampling a value over time, not synchronisation
	}
}

func spread(v []int64) int64 {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return hi - lo
}

// vmRSS reads a process's resident set size in bytes from /proc.
func vmRSS(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("read RSS: %v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("parse %q: %v", line, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// raiseFileLimit lets this process and its children hold every connection.
func raiseFileLimit(b *testing.B) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	need := uint64(2*(warmClients+idleClients) + 256)
	if lim.Cur < need {
		lim.Cur = min(need, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatal(err)
		}
	}
	if lim.Cur < need {
		b.Skipf("open file limit %d is below the %d this benchmark needs (raise ulimit -Hn)", lim.Cur, need)
	}
}

// startWarren starts warren-derp on a loopback port, admitting every node
// key (the admission check is not per-client memory), and returns it with
// this test binary as its idle-client process.
func startWarren(b *testing.B, bin string) relayProc {
	b.Helper()
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--stun", "", "--insecure-admit-all",
		"--max-conns-per-ip", "0", "--key-file", filepath.Join(b.TempDir(), "relay.key"), "--log-level", "error")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	startProc(b, cmd)
	url := ""
	lines := bufio.NewScanner(out)
	for url == "" && lines.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(lines.Text()), "relay URL:"); ok {
			url = strings.Fields(rest)[0]
		}
	}
	if url == "" {
		b.Fatalf("warren-derp printed no relay URL: %v", lines.Err())
	}
	go io.Copy(io.Discard, out) //nolint:errcheck // ends when the relay exits
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	clients := exec.Command(self, "-test.run", "^$")
	clients.Env = append(os.Environ(), idleEnv+"="+url)
	return relayProc{cmd: cmd, clients: clients}
}

// buildDerper builds Tailscale's derper and the derpidle client from the
// derperbaseline module into a temporary directory.
func buildDerper(b *testing.B) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	mod := filepath.Join(filepath.Dir(file), "derperbaseline")
	dir := b.TempDir()
	for _, args := range [][]string{
		{"build", "-o", filepath.Join(dir, "derper"), "tailscale.com/cmd/derper"},
		{"build", "-o", filepath.Join(dir, "derpidle"), "."},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir, nil
}

// startDerper starts derper on a loopback port in plain HTTP (a port other
// than 443 and no -certmode manual), without STUN, and waits until it
// answers its probe.
func startDerper(b *testing.B, dir string) relayProc {
	b.Helper()
	addr := buildtest.FreePort(b)
	cmd := exec.Command(filepath.Join(dir, "derper"), "-a", addr, "-stun=false", "-home", "blank",
		"-c", filepath.Join(b.TempDir(), "derper.json"))
	startProc(b, cmd)
	probe := "http://" + addr + "/derp/probe"
	deadline := time.Now().Add(startMax)
	for {
		resp, err := http.Get(probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				break
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			b.Fatalf("derper did not answer %s within %v: %v", probe, startMax, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a process we do not control for readiness
	}
	return relayProc{cmd: cmd, clients: exec.Command(filepath.Join(dir, "derpidle"), "http://"+addr+"/derp")}
}

// startProc starts cmd and kills it when the benchmark ends.
func startProc(b *testing.B, cmd *exec.Cmd) {
	b.Helper()
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", cmd.Path, err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}
