//go:build darwin

package posture

import (
	"context"
	"strings"
)

const osName = "macos"

// collectPlatform asks macOS's own tools. Secure boot is left out: macOS
// has no command that states it plainly.
func (c *Collector) collectPlatform(ctx context.Context, put func(name, value string)) {
	if out, err := c.run(ctx, "sw_vers"); err == nil {
		put(AttrOSVersion, ParseSwVers(out))
	}
	if out, err := c.run(ctx, "uname", "-r"); err == nil {
		if v := strings.TrimSpace(string(out)); validToken(v) {
			put(AttrKernelVersion, v)
		}
	}
	if out, err := c.run(ctx, "fdesetup", "status"); err == nil {
		put(AttrDiskEncrypted, ParseFdesetup(out))
	}
	if out, err := c.run(ctx, "/usr/libexec/ApplicationFirewall/socketfilterfw", "--getglobalstate"); err == nil {
		put(AttrFirewall, ParseSocketfilterfw(out))
	}
	if out, err := c.run(ctx, "ioreg", "-rd1", "-c", "IOPlatformExpertDevice"); err == nil {
		put(AttrMachineSerial, HashSerial(ParseIoregSerial(out)))
	}
	if out, err := c.run(ctx, "profiles", "status", "-type", "enrollment"); err == nil {
		put(AttrManaged, ParseProfilesEnrollment(out))
	}
	if out, err := c.run(ctx, "softwareupdate", "--schedule"); err == nil {
		put(AttrAutoUpdate, ParseSoftwareUpdateSchedule(out))
	}
	// sysadminctl exits 0 and writes its answer to standard error.
	if out, err := c.run(ctx, "sysadminctl", "-screenLock", "status"); err == nil {
		put(AttrScreenLock, ParseScreenLock(out))
	}
}
