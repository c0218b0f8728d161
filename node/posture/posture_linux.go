//go:build linux

package posture

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const osName = "linux"

// secureBootVar is the EFI global variable that says whether secure boot
// is enforced.
const secureBootVar = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// collectPlatform reads Linux's attributes. The screen lock is left out:
// a daemon cannot tell it on Linux (a headless server has none), nor MDM
// enrolment.
func (c *Collector) collectPlatform(ctx context.Context, put func(name, value string)) {
	etc, sys := c.cfg.EtcDir, c.cfg.SysDir
	if b, err := os.ReadFile(filepath.Join(etc, "os-release")); err == nil {
		put(AttrOSVersion, ParseOSRelease(b))
	} else if b, err := os.ReadFile("/usr/lib/os-release"); err == nil && etc == "/etc" {
		put(AttrOSVersion, ParseOSRelease(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		if v := strings.TrimSpace(string(b)); validToken(v) {
			put(AttrKernelVersion, v)
		}
	}
	if b, err := os.ReadFile(c.cfg.MountsFile); err == nil {
		mps := c.cfg.MountPoints
		if len(mps) == 0 {
			mps = []string{"/", "/home"}
		}
		put(AttrDiskEncrypted, DiskEncrypted(b, sys, mps))
	}
	put(AttrFirewall, c.linuxFirewall(ctx))
	if _, err := os.Stat(filepath.Join(sys, "firmware", "efi")); err == nil {
		if b, err := os.ReadFile(filepath.Join(sys, "firmware", "efi", "efivars", secureBootVar)); err == nil {
			put(AttrSecureBoot, ParseSecureBootVar(b))
		}
	}
	put(AttrAutoUpdate, linuxAutoUpdate(etc))
	put(AttrMachineSerial, linuxSerial(sys, etc))
}

// linuxFirewall asks nftables, then iptables (legacy or a host without
// nft): "true" when either drops inbound by default, "false" when those
// that answered do not, "" when neither could be read (not root, not
// installed).
func (c *Collector) linuxFirewall(ctx context.Context) string {
	answered := false
	if out, err := c.run(ctx, "nft", "-j", "list", "ruleset"); err == nil {
		switch ParseNftRuleset(out) {
		case "true":
			return "true"
		case "false":
			answered = true
		}
	}
	if out, err := c.run(ctx, "iptables", "-S", "INPUT"); err == nil {
		switch ParseIptablesInput(out) {
		case "true":
			return "true"
		case "false":
			answered = true
		}
	}
	if answered {
		return "false"
	}
	return ""
}

// linuxAutoUpdate: apt's unattended upgrades setting, or an enabled
// dnf-automatic timer; "" when neither is there.
func linuxAutoUpdate(etc string) string {
	names, _ := filepath.Glob(filepath.Join(etc, "apt", "apt.conf.d", "*"))
	slices.Sort(names)
	var files [][]byte
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil && len(b) < 1<<20 {
			files = append(files, b)
		}
	}
	if v := ParseAptPeriodic(files); v != "" {
		return v
	}
	timers, _ := filepath.Glob(filepath.Join(etc, "systemd", "system", "timers.target.wants", "dnf-automatic*.timer"))
	if len(timers) > 0 {
		return "true"
	}
	return ""
}

// linuxSerial hashes the DMI product serial (root only), or the machine
// ID when there is no usable serial (virtual machines, boards without one).
func linuxSerial(sys, etc string) string {
	if b, err := os.ReadFile(filepath.Join(sys, "class", "dmi", "id", "product_serial")); err == nil && usableSerial(string(b)) {
		return HashSerial(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(etc, "machine-id")); err == nil && validToken(strings.TrimSpace(string(b))) {
		return HashSerial(string(b))
	}
	return ""
}
