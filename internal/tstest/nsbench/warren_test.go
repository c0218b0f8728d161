package nsbench

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// Warren's part of the benchmark: a coordinator in namespace A, a warrend
// in kernel TUN mode in each namespace (advertising its veth address as its
// endpoint), both joined with the coordinator's bootstrap pre-auth key, so
// they are nodes of one user and may talk. The sink in B is reached at B's
// mesh IPv4 address, through A's and B's TUN devices.

const (
	coordinatorListen = vethA + ":8080"
	warrenTUN         = "wrn0"
	warrenPort        = "41641"
)

// warrenSetup is the outcome of startWarren: B's mesh address to send to,
// or why the measurement cannot run.
type warrenSetup struct {
	peerAddr string
	mtu      int    // of A's TUN device
	skip     string // cmd/warrend (or another binary) does not exist yet
	err      error  // the setup failed
}

// check skips or fails b when the setup did not work.
func (w warrenSetup) check(b *testing.B) {
	b.Helper()
	if w.skip != "" {
		b.Skip(w.skip)
	}
	if w.err != nil {
		b.Fatal(w.err)
	}
}

// startWarren builds the Warren binaries and starts the coordinator and two
// warrend processes. It fails only through the result, so the other
// measurements still run when Warren does not work.
func startWarren(b *testing.B, nsA, nsB *netns.Namespace) warrenSetup {
	b.Helper()
	root, err := moduleRoot(b)
	if err != nil {
		return warrenSetup{err: err}
	}
	cmds := []string{"warren-coordinator", "warrend", "warren"}
	for _, c := range cmds {
		if _, err := os.Stat(filepath.Join(root, "cmd", c)); err != nil {
			return warrenSetup{skip: fmt.Sprintf("skipping: cmd/%s does not exist yet, so Warren's TUN mode cannot be measured", c)}
		}
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "bin")
	args := append([]string{"build", "-o", bin + "/"}, prefixAll("github.com/warrenmesh/warren/cmd/", cmds)...)
	if out, err := exec.CommandContext(b.Context(), "go", args...).CombinedOutput(); err != nil {
		return warrenSetup{err: fmt.Errorf("build the Warren commands: %v\n%s", err, out)}
	}

	coord := nsA.Start(filepath.Join(bin, "warren-coordinator"), "serve", "--state-dir", filepath.Join(dir, "coordinator"),
		"--listen", coordinatorListen, "--bootstrap-user", "admin@warren.internal")
	// The bootstrap key is printed whole once, on a line of its own, before
	// the "warren up ... --auth-key -" hint (which reads it from stdin).
	if _, err := coord.WaitFor("--auth-key", 30*time.Second); err != nil {
		return warrenSetup{err: err}
	}
	authKey := regexp.MustCompile(`wpk_[a-z0-9]{32}`).FindString(coord.Output())
	if authKey == "" {
		return warrenSetup{err: fmt.Errorf("no pre-auth key in the coordinator's output:\n%s", coord.Output())}
	}

	socks := map[*netns.Namespace]string{}
	for _, n := range []struct {
		ns   *netns.Namespace
		name string
		veth string
	}{{nsA, "bench-a", vethA}, {nsB, "bench-b", vethB}} {
		sock := filepath.Join(dir, n.name+".sock")
		socks[n.ns] = sock
		d := n.ns.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, n.name), "--socket", sock,
			"--tun", warrenTUN, "--dns", "off", "--port", warrenPort, "--endpoint", n.veth, "--socks5", "")
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			return warrenSetup{err: err}
		}
		_, err := n.ns.TryRun(filepath.Join(bin, "warren"), "--socket", sock, "up",
			"--coordinator", "http://"+coordinatorListen, "--auth-key", authKey, "--hostname", n.name)
		if err != nil {
			return warrenSetup{err: err}
		}
	}

	peer, err := waitForPeer(nsA, filepath.Join(bin, "warren"), socks[nsA], "bench-b", 30*time.Second)
	if err != nil {
		return warrenSetup{err: err}
	}
	var mtu int
	err = nsA.Do(func() error {
		ifi, err := net.InterfaceByName(warrenTUN)
		if err == nil {
			mtu = ifi.MTU
		}
		return err
	})
	if err != nil {
		return warrenSetup{err: fmt.Errorf("warrend's TUN device in %s: %w", nsA.Name, err)}
	}
	return warrenSetup{peerAddr: peer.String(), mtu: mtu}
}

// status is the part of warren status --json the benchmark reads.
type status struct {
	Self *struct {
		Name      string   `json:"name"`
		Addresses []string `json:"addresses"`
	} `json:"self"`
	Peers []struct {
		Name      string   `json:"name"`
		Addresses []string `json:"addresses"`
	} `json:"peers"`
}

// waitForPeer polls warren status in ns until the node lists a peer whose
// name starts with name, and returns that peer's mesh IPv4 address.
// (warrend is another process with no event to wait on; polling is the
// way.)
func waitForPeer(ns *netns.Namespace, warren, sock, name string, timeout time.Duration) (netip.Addr, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		out, err := ns.TryRun(warren, "--socket", sock, "status", "--json")
		last = out
		if err != nil {
			last = err.Error()
		}
		var st status
		if err == nil && json.Unmarshal([]byte(out), &st) == nil {
			for _, p := range st.Peers {
				if !strings.HasPrefix(p.Name, name) {
					continue
				}
				for _, a := range p.Addresses {
					if pfx, err := netip.ParsePrefix(a); err == nil && pfx.Addr().Is4() {
						return pfx.Addr(), nil
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return netip.Addr{}, fmt.Errorf("node in %s did not list peer %s within %s; last status:\n%s", ns.Name, name, timeout, last)
}

func moduleRoot(b *testing.B) (string, error) {
	out, err := exec.CommandContext(b.Context(), "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.Join(errors.New("cannot find the module root (go env GOMOD)"), err)
	}
	return filepath.Dir(gomod), nil
}

func prefixAll(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}
