package posture

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeSys builds a sysfs tree: block devices by name, each with its dm
// name and UUID (device-mapper) and the devices under it.
type fakeDev struct {
	name, dmName, uuid string
	slaves             []string
}

func fakeSys(t *testing.T, devs ...fakeDev) string {
	t.Helper()
	sys := t.TempDir()
	for _, d := range devs {
		dir := filepath.Join(sys, "class", "block", d.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if d.uuid != "" {
			if err := os.MkdirAll(filepath.Join(dir, "dm"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "dm", "uuid"), d.uuid+"\n")
			writeFile(t, filepath.Join(dir, "dm", "name"), d.dmName+"\n")
			if err := os.MkdirAll(filepath.Join(sys, "block"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(dir, filepath.Join(sys, "block", d.name)); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range d.slaves {
			if err := os.MkdirAll(filepath.Join(dir, "slaves", s), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return sys
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDiskEncrypted(t *testing.T) {
	sys := fakeSys(t,
		fakeDev{name: "sda"}, fakeDev{name: "sda1"}, fakeDev{name: "sda2"}, fakeDev{name: "sda3"},
		fakeDev{name: "nvme0n1p3"},
		// LUKS on sda2; LVM on it (root, home).
		fakeDev{name: "dm-0", dmName: "sda2_crypt", uuid: "CRYPT-LUKS2-2f1c4e7a9b3d4c5e8f6a7b8c9d0e1f2a-sda2_crypt", slaves: []string{"sda2"}},
		fakeDev{name: "dm-1", dmName: "vg0-root", uuid: "LVM-aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xYz", slaves: []string{"dm-0"}},
		fakeDev{name: "dm-2", dmName: "vg0-home", uuid: "LVM-aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW2xYz", slaves: []string{"dm-0"}},
		// LVM on a plain partition, and one spanning both.
		fakeDev{name: "dm-3", dmName: "vg1-data", uuid: "LVM-cC3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xYz", slaves: []string{"sda3"}},
		fakeDev{name: "dm-4", dmName: "vg2-span", uuid: "LVM-dC3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xYz", slaves: []string{"dm-0", "sda3"}},
		fakeDev{name: "dm-5", dmName: "cryptroot", uuid: "CRYPT-LUKS1-0a1b2c3d4e5f60718293a4b5c6d7e8f9-cryptroot", slaves: []string{"nvme0n1p3"}},
	)
	tests := []struct {
		name, mounts string
		want         string
	}{
		{"lvm on luks, home on it too", "/dev/mapper/vg0-root / ext4 rw 0 0\n/dev/mapper/vg0-home /home ext4 rw 0 0\n", "true"},
		{"luks root by dm name, no separate home", "/dev/dm-5 / btrfs rw 0 0\n", "true"},
		{"luks root, plain home", "/dev/mapper/cryptroot / ext4 rw 0 0\n/dev/sda3 /home ext4 rw 0 0\n", "false"},
		{"plain partition", "/dev/sda1 / ext4 rw 0 0\n", "false"},
		{"lvm on a plain partition", "/dev/mapper/vg1-data / xfs rw 0 0\n", "false"},
		{"lvm spanning encrypted and plain", "/dev/mapper/vg2-span / xfs rw 0 0\n", "false"},
		{"overlay root: cannot tell", "overlay / overlay rw,lowerdir=/l 0 0\n", ""},
		{"root not mounted: cannot tell", "/dev/sda1 /boot ext4 rw 0 0\n", ""},
		{"unknown device: cannot tell", "/dev/sdz9 / ext4 rw 0 0\n", ""},
		{"last mount wins", "/dev/sda1 / ext4 rw 0 0\n/dev/mapper/cryptroot / ext4 rw 0 0\n", "true"},
		{"escaped mount point", "/dev/sda1 / ext4 rw 0 0\n/dev/mapper/cryptroot /home/my\\040files ext4 rw 0 0\n", "false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DiskEncrypted([]byte(tt.mounts), sys, []string{"/", "/home"}); got != tt.want {
				t.Errorf("DiskEncrypted = %q, want %q", got, tt.want)
			}
		})
	}
	if got := DiskEncrypted([]byte("/dev/sda1 / ext4 rw 0 0\n/dev/mapper/cryptroot /home/my\\040files ext4 rw 0 0\n"), sys, []string{"/home/my files"}); got != "true" {
		t.Errorf("escaped mount point alone = %q, want true", got)
	}
}
