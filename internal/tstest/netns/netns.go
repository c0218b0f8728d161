// Package netns builds small networks of Linux network namespaces for tests
// that need real kernel networking: TUN devices, veth links, routing and
// NAT with iptables, separate processes acting as separate hosts.
//
// Every namespace gets a unique name (a fixed prefix, the caller's label and
// random hex), so parallel test runs never collide, and everything a test
// creates — namespaces, the links inside them, processes started in them —
// is removed in the test's cleanup, after failures too. Links are created
// inside the namespaces directly, never in the caller's own namespace.
//
// It is for tests only, needs root and iproute2's ip (Skip says so and
// skips otherwise), and must never change the namespace it is called from.
// A test binary killed before its cleanups ran leaves namespaces named
// wrn-*: ip netns del removes them.
package netns

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Prefix starts the name of every namespace this package creates.
const Prefix = "wrn-"

// runDir is where ip netns keeps its named namespaces.
const runDir = "/var/run/netns"

var (
	probeOnce sync.Once
	probeErr  error
)

// Skip skips tb, saying why, unless it runs as root on Linux with ip on
// PATH and may create network namespaces.
func Skip(tb testing.TB) {
	tb.Helper()
	if !supported {
		tb.Skipf("skipping: network namespace tests need Linux (this is %s)", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		tb.Skip("skipping: network namespace tests need root (they create namespaces, links and TUN devices); run them as root, e.g. sudo -E go test ./...")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("skipping: network namespace tests need iproute2's ip on PATH (apt-get install iproute2)")
	}
	probeOnce.Do(func() {
		name := Prefix + "probe-" + randomHex()
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("ip netns add: %v: %s", err, bytes.TrimSpace(out))
			return
		}
		exec.Command("ip", "netns", "del", name).Run()
	})
	if probeErr != nil {
		tb.Skipf("skipping: cannot create network namespaces here (a container without CAP_SYS_ADMIN?): %v", probeErr)
	}
}

// Namespace is a named network namespace that lives until the end of the
// test that created it.
type Namespace struct {
	// Name is the namespace's name for ip netns (and ip -n).
	Name string

	tb    testing.TB
	mu    sync.Mutex
	veths int // veth devices created in this namespace, for naming
}

var labelChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// New creates a namespace named Prefix+label+random hex with its loopback
// up, and deletes it (killing whatever still runs in it) when tb ends.
func New(tb testing.TB, label string) *Namespace {
	tb.Helper()
	label = labelChars.ReplaceAllString(label, "-")
	if len(label) > 24 {
		label = label[:24]
	}
	n := &Namespace{Name: Prefix + label + "-" + randomHex(), tb: tb}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		tb.Fatalf("netns: create %s: %v: %s", n.Name, err, bytes.TrimSpace(out))
	}
	tb.Cleanup(n.remove)
	n.Run("ip", "link", "set", "lo", "up")
	return n
}

// remove kills what still runs in the namespace and deletes it; the kernel
// then destroys its links (and with a veth, the peer end too).
func (n *Namespace) remove() {
	if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			// Never this process: one of its threads may still be inside.
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		n.tb.Errorf("netns: delete %s: %v: %s", n.Name, err, bytes.TrimSpace(out))
	}
}

// Command returns a command that runs name with args inside the namespace
// (through ip netns exec), not yet started.
func (n *Namespace) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name with args inside the namespace and returns its standard
// output; it fails the test, with the command's output, if the command
// fails.
func (n *Namespace) Run(name string, args ...string) string {
	n.tb.Helper()
	out, err := n.TryRun(name, args...)
	if err != nil {
		n.tb.Fatal(err)
	}
	return out
}

// TryRun is Run that returns the failure instead of failing the test.
func (n *Namespace) TryRun(name string, args ...string) (string, error) {
	cmd := n.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("netns %s: %s %s: %w\n%s%s", n.Name, name, strings.Join(args, " "),
			err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), nil
}

// Connect joins a and b with a veth pair, gives each end its address (a
// prefix such as "10.1.0.1/24" or "fd00::1/64"; empty for none) and sets
// both up. It returns the device names, vethN in each namespace, N
// counting the pairs created there.
func Connect(a, b *Namespace, aAddr, bAddr string) (aDev, bDev string) {
	a.tb.Helper()
	aDev, bDev = a.nextVeth(), b.nextVeth()
	a.run("ip", "link", "add", aDev, "netns", a.Name, "type", "veth", "peer", "name", bDev, "netns", b.Name)
	for _, end := range []struct {
		ns        *Namespace
		dev, addr string
	}{{a, aDev, aAddr}, {b, bDev, bAddr}} {
		if end.addr != "" {
			end.ns.AddAddr(end.dev, end.addr)
		}
		end.ns.Run("ip", "link", "set", end.dev, "up")
	}
	return aDev, bDev
}

func (n *Namespace) nextVeth() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	name := fmt.Sprintf("veth%d", n.veths)
	n.veths++
	return name
}

// run runs a command in the caller's namespace (ip commands that name
// their namespaces themselves).
func (n *Namespace) run(name string, args ...string) {
	n.tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		n.tb.Fatalf("netns: %s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// AddAddr assigns prefix (such as "10.1.0.1/24") to dev. IPv6 addresses
// skip duplicate address detection, so they are usable at once.
func (n *Namespace) AddAddr(dev, prefix string) {
	n.tb.Helper()
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		n.tb.Fatalf("netns: address for %s: %v", dev, err)
	}
	args := []string{"addr", "add", p.String(), "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	n.Run("ip", args...)
}

// EnableForwarding makes the namespace route packets between its links
// (IPv4 and IPv6), as a router or NAT box does.
func (n *Namespace) EnableForwarding() {
	n.tb.Helper()
	err := n.Do(func() error {
		for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
			if err := os.WriteFile(f, []byte("1\n"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.tb.Fatalf("netns %s: enable forwarding: %v", n.Name, err)
	}
}

func randomHex() string {
	var b [4]byte
	rand.Read(b[:]) // never fails (it crashes the program instead)
	return hex.EncodeToString(b[:])
}
