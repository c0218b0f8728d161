package posture

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// TestHostLinux runs the real collector on this host: the OS and its
// version are there, and every value is a short printable one.
func TestHostLinux(t *testing.T) {
	got := New(Config{}).Collect(context.Background())
	if got[AttrOS].Value != "linux" {
		t.Errorf("os = %q, want linux", got[AttrOS].Value)
	}
	if _, err := os.Stat("/etc/os-release"); err == nil {
		if b, _ := os.ReadFile("/etc/os-release"); ParseOSRelease(b) != "" && got[AttrOSVersion].Value == "" {
			t.Error("osVersion missing though /etc/os-release has VERSION_ID")
		}
	}
	if got[AttrKernelVersion].Value == "" {
		t.Error("kernelVersion missing")
	}
	for name, v := range got {
		if !validToken(v.Value) || v.CollectedAt.IsZero() {
			t.Errorf("%s = %q collected at %v", name, v.Value, v.CollectedAt)
		}
	}
	t.Logf("this host: %v", got)
}

// nsCollector reads the firewall of namespace ns: its commands run inside
// it through ip netns exec.
func nsCollector(ns *netns.Namespace) *Collector {
	return New(Config{Run: func(ctx context.Context, name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		return cmd.CombinedOutput()
	}})
}

// TestFirewallInNamespace adds a default-drop input policy in a fresh
// network namespace, with nftables and then with iptables, and watches
// node:firewall turn true, then false again when it is removed.
func TestFirewallInNamespace(t *testing.T) {
	netns.Skip(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping: nft not installed (apt-get install nftables)")
	}
	ns := netns.New(t, "p18fw")
	c := nsCollector(ns)
	firewall := func() string {
		t.Helper()
		return c.linuxFirewall(context.Background())
	}
	if got := firewall(); got != "false" {
		t.Fatalf("fresh namespace: firewall = %q, want false", got)
	}
	ns.Run("nft", "add table inet p18")
	ns.Run("nft", "add chain inet p18 input { type filter hook input priority 0 ; policy drop ; }")
	if got := firewall(); got != "true" {
		t.Errorf("nftables input policy drop: firewall = %q, want true", got)
	}
	ns.Run("nft", "delete table inet p18")
	if got := firewall(); got != "false" {
		t.Errorf("policy removed: firewall = %q, want false", got)
	}
	if _, err := exec.LookPath("iptables"); err == nil {
		ns.Run("iptables", "-P", "INPUT", "DROP")
		if got := firewall(); got != "true" {
			t.Errorf("iptables INPUT policy DROP: firewall = %q, want true", got)
		}
		ns.Run("iptables", "-P", "INPUT", "ACCEPT")
		if got := firewall(); got != "false" {
			t.Errorf("iptables INPUT policy back to ACCEPT: firewall = %q, want false", got)
		}
	}
	// The whole collector, not only its firewall part.
	if got := c.Collect(context.Background())[AttrFirewall].Value; got != "false" {
		t.Errorf("Collect: firewall = %q, want false", got)
	}
}

// TestDiskEncryptedDMCrypt formats a loop file with LUKS, opens it, mounts
// a file system on it and checks the detector calls that mount point
// encrypted (and a plain loop mount not). It skips where the kernel has no
// device-mapper (containers, micro VMs).
func TestDiskEncryptedDMCrypt(t *testing.T) {
	netns.Skip(t) // root and Linux, as for the namespace tests
	misc, _ := os.ReadFile("/proc/misc")
	if !strings.Contains(string(misc), "device-mapper") {
		t.Skip("skipping: this kernel has no device-mapper (dm_mod not loaded or not built), so no dm-crypt device can be created")
	}
	for _, tool := range []string{"cryptsetup", "losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install cryptsetup-bin util-linux e2fsprogs)", tool)
		}
	}
	run := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	dir := t.TempDir()
	img, keyFile := filepath.Join(dir, "p18-disk.img"), filepath.Join(dir, "p18-key")
	if err := os.WriteFile(keyFile, []byte("p18 test key, not a secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(createFile(t, img), 32<<20); err != nil {
		t.Fatal(err)
	}
	loop := run("losetup", "--find", "--show", img)
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	run("cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
		"--pbkdf-force-iterations", "1000", "--key-file", keyFile, loop)
	name := "p18crypt-" + filepath.Base(filepath.Dir(dir))
	if len(name) > 100 {
		name = name[:100]
	}
	run("cryptsetup", "open", "--key-file", keyFile, loop, name)
	t.Cleanup(func() { _ = exec.Command("cryptsetup", "close", name).Run() })
	run("mkfs.ext4", "-q", "/dev/mapper/"+name)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run("mount", "/dev/mapper/"+name, mnt)
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })

	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if got := DiskEncrypted(mounts, "/sys", []string{mnt}); got != "true" {
		t.Errorf("dm-crypt mount %s: diskEncrypted = %q, want true\nmounts:\n%s", mnt, got, mounts)
	}
	got := New(Config{MountPoints: []string{mnt}}).Collect(context.Background())
	if got[AttrDiskEncrypted].Value != "true" {
		t.Errorf("Collect with the dm-crypt mount: diskEncrypted = %q, want true", got[AttrDiskEncrypted].Value)
	}
}

func createFile(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return name
}
