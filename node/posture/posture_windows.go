//go:build windows

package posture

import (
	"context"
	"os"
	"strings"
)

const osName = "windows"

// powershell runs one PowerShell command without a profile.
func (c *Collector) powershell(ctx context.Context, command string) ([]byte, error) {
	return c.run(ctx, "powershell.exe", "-NoProfile", "-NonInteractive", "-Command", command)
}

// collectPlatform asks Windows's own tools (run as SYSTEM by the service).
func (c *Collector) collectPlatform(ctx context.Context, put func(name, value string)) {
	if out, err := c.run(ctx, "cmd.exe", "/c", "ver"); err == nil {
		osv, kernel := ParseVer(out)
		put(AttrOSVersion, osv)
		put(AttrKernelVersion, kernel)
	}
	drive := os.Getenv("SystemDrive")
	if len(drive) != 2 || drive[1] != ':' {
		drive = "C:"
	}
	if out, err := c.run(ctx, "manage-bde.exe", "-status", drive); err == nil {
		put(AttrDiskEncrypted, ParseManageBde(out))
	}
	if out, err := c.run(ctx, "netsh.exe", "advfirewall", "show", "currentprofile"); err == nil {
		put(AttrFirewall, ParseNetshFirewall(out))
	}
	if out, err := c.powershell(ctx, "Confirm-SecureBootUEFI"); err == nil {
		put(AttrSecureBoot, ParseSecureBootUEFI(out))
	}
	if out, err := c.powershell(ctx, "(Get-CimInstance Win32_BIOS).SerialNumber"); err == nil {
		put(AttrMachineSerial, HashSerial(ParseBIOSSerial(out)))
	}
	if out, err := c.run(ctx, "dsregcmd.exe", "/status"); err == nil {
		put(AttrManaged, ParseDsregcmd(out))
	}
	// reg exits 1 when the value is not set: then it is unknown.
	if out, err := c.run(ctx, "reg.exe", "query", `HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU`, "/v", "NoAutoUpdate"); err == nil {
		put(AttrAutoUpdate, ParseAutoUpdatePolicy(out))
	}
	if out, err := c.run(ctx, "reg.exe", "query", `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System`, "/v", "InactivityTimeoutSecs"); err == nil {
		put(AttrScreenLock, strings.TrimSpace(ParseInactivityLock(out)))
	}
}
