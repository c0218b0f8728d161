package posture

// macOS's readings as pure parsers of its commands' output, shared so they
// are tested on every OS against recorded output (testdata/darwin).

import (
	"strings"
)

// ParseSwVers returns ProductVersion from `sw_vers` ("14.5").
func ParseSwVers(b []byte) string {
	for _, l := range lines(b) {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == "ProductVersion" {
			if v = strings.TrimSpace(v); validToken(v) {
				return v
			}
		}
	}
	return ""
}

// ParseFdesetup reads `fdesetup status`: "true" when FileVault is on and
// not decrypting, "false" when it is off or decrypting, "" otherwise.
func ParseFdesetup(b []byte) string {
	s := string(b)
	switch {
	case strings.Contains(s, "FileVault is On") && !strings.Contains(s, "Decryption in progress"):
		return "true"
	case strings.Contains(s, "FileVault is Off"), strings.Contains(s, "Decryption in progress"):
		return "false"
	}
	return ""
}

// ParseSocketfilterfw reads `socketfilterfw --getglobalstate`: the
// application firewall is on (State = 1, or 2 for block all) or off
// (State = 0).
func ParseSocketfilterfw(b []byte) string {
	s := string(b)
	switch {
	case strings.Contains(s, "(State = 1)"), strings.Contains(s, "(State = 2)"),
		strings.Contains(s, "Firewall is enabled"), strings.Contains(s, "Firewall is blocking all"):
		return "true"
	case strings.Contains(s, "(State = 0)"), strings.Contains(s, "Firewall is disabled"):
		return "false"
	}
	return ""
}

// ParseIoregSerial returns IOPlatformSerialNumber from `ioreg -rd1 -c
// IOPlatformExpertDevice`.
func ParseIoregSerial(b []byte) string {
	for _, l := range lines(b) {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.Trim(strings.TrimSpace(k), `"`) != "IOPlatformSerialNumber" {
			continue
		}
		if v = strings.Trim(strings.TrimSpace(v), `"`); usableSerial(v) {
			return v
		}
	}
	return ""
}

// ParseProfilesEnrollment reads `profiles status -type enrollment`: "MDM
// enrollment: Yes…" is managed, "No" is not.
func ParseProfilesEnrollment(b []byte) string {
	for _, l := range lines(b) {
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) != "MDM enrollment" {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(v, "Yes"):
			return "true"
		case strings.HasPrefix(v, "No"):
			return "false"
		}
	}
	return ""
}

// ParseSoftwareUpdateSchedule reads `softwareupdate --schedule`: whether
// automatic checking for updates is on.
func ParseSoftwareUpdateSchedule(b []byte) string {
	s := strings.ToLower(string(b))
	switch {
	case strings.Contains(s, "is turned on"), strings.Contains(s, "check is on"):
		return "true"
	case strings.Contains(s, "is turned off"), strings.Contains(s, "check is off"):
		return "false"
	}
	return ""
}

// ParseScreenLock reads `sysadminctl -screenLock status` (it writes to
// standard error): a delay (immediate or some seconds) is on, "off" is
// off.
func ParseScreenLock(b []byte) string {
	s := string(b)
	switch {
	case strings.Contains(s, "screenLock delay is"):
		return "true"
	case strings.Contains(s, "screenLock is off"):
		return "false"
	}
	return ""
}
