package posture

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestCollectLinuxTree runs the Linux collector on a prepared tree (mount
// table, sysfs, /etc) and recorded firewall output.
func TestCollectLinuxTree(t *testing.T) {
	sys := fakeSys(t, fakeDev{name: "nvme0n1p3"},
		fakeDev{name: "dm-0", dmName: "cryptroot", uuid: "CRYPT-LUKS2-00112233445566778899aabbccddeeff-cryptroot", slaves: []string{"nvme0n1p3"}})
	etc := t.TempDir()
	writeFile(t, filepath.Join(etc, "os-release"), "ID=debian\nVERSION_ID=\"12\"\n")
	writeFile(t, filepath.Join(etc, "machine-id"), "4c1a9e0b2d3f4a5b8c7d6e5f4a3b2c1d\n")
	if err := os.MkdirAll(filepath.Join(etc, "apt", "apt.conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(etc, "apt", "apt.conf.d", "20auto-upgrades"), "APT::Periodic::Unattended-Upgrade \"1\";\n")
	mounts := filepath.Join(t.TempDir(), "mounts")
	writeFile(t, mounts, "/dev/mapper/cryptroot / ext4 rw 0 0\n")
	nft, err := os.ReadFile("testdata/linux/nft-drop.json")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	c := New(Config{
		Run: func(_ context.Context, name string, _ ...string) ([]byte, error) {
			if name == "nft" {
				return nft, nil
			}
			return nil, errors.New("not installed")
		},
		Now: func() time.Time { return at }, EtcDir: etc, SysDir: sys, MountsFile: mounts,
	})
	got := c.Collect(context.Background())
	want := map[string]string{
		AttrOS: "linux", AttrOSVersion: "12", AttrArch: runtime.GOARCH, AttrDiskEncrypted: "true",
		AttrFirewall: "true", AttrAutoUpdate: "true", AttrMachineSerial: HashSerial("4c1a9e0b2d3f4a5b8c7d6e5f4a3b2c1d"),
	}
	for name, v := range want {
		if got[name].Value != v {
			t.Errorf("%s = %q, want %q", name, got[name].Value, v)
		}
	}
	for _, absent := range []string{AttrScreenLock, AttrManaged, AttrSecureBoot} {
		if v, ok := got[absent]; ok {
			t.Errorf("%s = %q, want absent (cannot be told)", absent, v.Value)
		}
	}
	for name, v := range got {
		if !strings.HasPrefix(name, NodePrefix) {
			t.Errorf("collected %s, not a node: attribute", name)
		}
		if !v.CollectedAt.Equal(at) {
			t.Errorf("%s collected at %v, want %v", name, v.CollectedAt, at)
		}
	}
	for _, k := range []string{AttrKernelVersion, AttrClientVersion, AttrHostname} {
		if got[k].Value == "" {
			t.Errorf("%s missing", k)
		}
	}
}

// TestCollectCommandTimeout: a command that hangs is cut off and its
// attribute left out.
func TestCollectCommandTimeout(t *testing.T) {
	c := New(Config{CommandTimeout: 50 * time.Millisecond, MountsFile: "/nonexistent",
		Run: func(ctx context.Context, _ string, _ ...string) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	got := c.Collect(context.Background())
	if v, ok := got[AttrFirewall]; ok {
		t.Errorf("firewall = %q from a command that never answered", v.Value)
	}
	if got[AttrOS].Value != "linux" {
		t.Errorf("os = %q", got[AttrOS].Value)
	}
}
