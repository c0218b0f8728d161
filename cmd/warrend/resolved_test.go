package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/localapi"
)

// resolvedEnv names the systemd-resolved binary TestMagicDNSWithResolved
// runs. It is opt-in: installing systemd-resolved would take over the
// machine's own /etc/resolv.conf, so the test runs the binary unpacked
// from the package instead (see the skip message).
const resolvedEnv = "WARREN_TEST_RESOLVED"

// TestMagicDNSWithResolved runs the real systemd-resolved (with its own
// D-Bus system bus, in the laptop's namespace and private mount
// namespaces, so the host's resolved and bus, if any, are untouched) and
// a TUN-mode warrend with --dns resolved: resolved's stub answers
// db.<domain> through MagicDNS on the TUN link; warren down reverts the
// link; after kill -9 the next start restores first and configures again.
func TestMagicDNSWithResolved(t *testing.T) {
	netns.Skip(t)
	resolved := os.Getenv(resolvedEnv)
	if resolved == "" {
		t.Skip("skipping: set " + resolvedEnv + " to a systemd-resolved binary, e.g. " +
			"(cd /tmp && apt-get download systemd-resolved && dpkg -x systemd-resolved_*.deb resolved) and " +
			resolvedEnv + "=/tmp/resolved/lib/systemd/systemd-resolved (do not install the package: it takes over /etc/resolv.conf)")
	}
	for _, tool := range []string{"dig", "dbus-daemon", "busctl", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed", tool)
		}
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	laptop, db := netns.New(t, "b-rs-laptop"), netns.New(t, "b-rs-db")
	netns.Connect(laptop, db, "10.81.0.1/24", "10.81.0.2/24")
	dir := t.TempDir()
	// resolved runs as its own user, which must reach the bus socket:
	// a directory of its own that others may enter (t.TempDir's are 0700).
	busDir, err := os.MkdirTemp("", "warren-resolved-bus-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(busDir) })
	if err := os.Chmod(busDir, 0o755); err != nil {
		t.Fatal(err)
	}

	// resolved's user exists only in the private mount namespaces of the
	// bus and resolved (a bind-mounted /etc/passwd and /etc/group).
	etcFile := func(name, line string) string {
		b, err := os.ReadFile("/etc/" + name)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, append(b, line...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	passwd := etcFile("passwd", "systemd-resolve:x:64991:64991:resolved:/:/usr/sbin/nologin\n")
	group := etcFile("group", "systemd-resolve:x:64991:\n")
	bus := filepath.Join(busDir, "bus")
	busConf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(busConf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+bus+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/> <allow own="*"/>
    <allow send_type="method_call"/> <allow send_type="signal"/> <allow send_type="method_return"/> <allow send_type="error"/>
    <allow receive_type="method_call"/> <allow receive_type="signal"/> <allow receive_type="method_return"/> <allow receive_type="error"/>
  </policy>
</busconfig>
`), 0o644); err != nil {
		t.Fatal(err)
	}
	binds := fmt.Sprintf("mount --bind %s /etc/passwd && mount --bind %s /etc/group", passwd, group)
	laptop.Start("unshare", "-m", "sh", "-c", binds+" && exec dbus-daemon --config-file="+busConf+" --nofork --nopidfile")
	busAddr := "DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + bus
	busctl := func(args ...string) (string, error) {
		cmd := exec.Command("busctl", append([]string{"--system"}, args...)...)
		cmd.Env = append(os.Environ(), busAddr)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	poll.Until(t, 30*time.Second, "the private system bus", func() error {
		_, err := busctl("list")
		return err
	})
	laptop.Start("env", busAddr, "unshare", "-m", "sh", "-c", binds+
		" && mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/resolve && chown 64991:64991 /run/systemd/resolve && exec "+resolved)
	poll.Until(t, 30*time.Second, "systemd-resolved on the bus", func() error {
		_, err := busctl("introspect", "org.freedesktop.resolve1", "/org/freedesktop/resolve1")
		return err
	})

	coord := laptop.Start(filepath.Join(bin, "warren-coordinator"), "serve", "--state-dir", filepath.Join(dir, "coordinator"),
		"--listen", "10.81.0.1:8080", "--bootstrap-user", "admin@warren.internal", "--stun-listen", "")
	if _, err := coord.WaitFor("Join a node", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	authKey := regexp.MustCompile(`wpk_[a-z0-9]{32}`).FindString(coord.Output())
	warren := filepath.Join(bin, "warren")
	laptopSock := filepath.Join(dir, "laptop.sock")
	laptopArgs := []string{busAddr, filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "laptop"), "--socket", laptopSock,
		"--tun", "warren0", "--endpoint", "10.81.0.1", "--socks5", "", "--dns", "resolved"}
	laptopD := laptop.Start("env", laptopArgs...)
	dbSock := filepath.Join(dir, "db.sock")
	dbD := db.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "db"), "--socket", dbSock,
		"--tun", "warren0", "--endpoint", "10.81.0.2", "--socks5", "", "--dns", "off")
	for _, d := range []*netns.Process{laptopD, dbD} {
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	laptop.Run(warren, "--socket", laptopSock, "up", "--coordinator", "http://10.81.0.1:8080", "--auth-key", authKey, "--hostname", "laptop")
	db.Run(warren, "--socket", dbSock, "up", "--coordinator", "http://10.81.0.1:8080", "--auth-key", authKey, "--hostname", "db")
	var dbV4 string
	poll.Until(t, 30*time.Second, "the laptop to see db", func() error {
		var st localapi.Status
		out, err := laptop.TryRun(warren, "--socket", laptopSock, "status", "--json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.Name == "db" {
				dbV4 = p.Addresses[0].Addr().String()
				return nil
			}
		}
		return fmt.Errorf("peers %+v", st.Peers)
	})

	// resolved's stub (127.0.0.53) sends the mesh domain to the TUN link,
	// whose DNS server is MagicDNS.
	viaStub := func(what string) {
		t.Helper()
		poll.Until(t, 30*time.Second, "resolved to answer db.warren.internal "+what, func() error {
			out, err := laptop.TryRun("dig", "+short", "+time=2", "+tries=1", "@127.0.0.53", "db.warren.internal")
			if strings.TrimSpace(out) != dbV4 {
				return fmt.Errorf("dig @127.0.0.53 db.warren.internal: %q, %v", out, err)
			}
			return nil
		})
	}
	viaStub("after warren up")
	record := filepath.Join(dir, "laptop", "dns-restore.json")
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("no restore record while up: %v", err)
	}
	laptop.Run(warren, "--socket", laptopSock, "down")
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Fatalf("restore record left after warren down: %v", err)
	}
	if out, _ := laptop.TryRun("dig", "+short", "+time=1", "+tries=1", "@127.0.0.53", "db.warren.internal"); strings.Contains(out, dbV4) {
		t.Fatalf("resolved still answers db.warren.internal after warren down: %q", out)
	}

	// kill -9 while up: the next start restores first, then resumes.
	laptop.Run(warren, "--socket", laptopSock, "up")
	viaStub("after the second warren up")
	laptopD.Kill()
	laptopD = laptop.Start("env", laptopArgs...)
	if _, err := laptopD.WaitFor("restoring the DNS configuration left by an earlier run", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	viaStub("after kill -9 and a restart")
	laptop.Run(warren, "--socket", laptopSock, "down")
}
