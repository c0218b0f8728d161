package posture

// Windows's readings as pure parsers of its commands' output, shared so
// they are tested on every OS against recorded output (testdata/windows).

import (
	"strconv"
	"strings"
)

// ParseVer reads `cmd /c ver` ("Microsoft Windows [Version
// 10.0.22631.3593]"): the OS version is major.minor.build
// ("10.0.22631"), the kernel version all four parts.
func ParseVer(b []byte) (osVersion, kernelVersion string) {
	s := string(b)
	i := strings.Index(s, "[Version ")
	if i < 0 {
		return "", ""
	}
	rest := s[i+len("[Version "):]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return "", ""
	}
	full := strings.TrimSpace(rest[:j])
	parts := strings.Split(full, ".")
	if len(parts) < 3 || !validToken(full) {
		return "", ""
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			return "", ""
		}
	}
	return strings.Join(parts[:3], "."), full
}

// ParseManageBde reads `manage-bde -status C:`: "true" when the volume is
// fully encrypted with protection on, "false" when it is decrypted,
// partly encrypted or its protection is suspended, "" otherwise.
func ParseManageBde(b []byte) string {
	conv, prot := "", ""
	for _, l := range lines(b) {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Conversion Status":
			conv = strings.TrimSpace(v)
		case "Protection Status":
			prot = strings.TrimSpace(v)
		}
	}
	switch {
	case conv == "" || prot == "":
		return ""
	case conv == "Fully Encrypted" && prot == "Protection On":
		return "true"
	}
	return "false"
}

// ParseNetshFirewall reads `netsh advfirewall show currentprofile`: "true"
// when every profile shown is on and blocks inbound by default, "false"
// when one is off or allows inbound, "" when none is shown.
func ParseNetshFirewall(b []byte) string {
	profiles, good := 0, true
	for _, l := range lines(b) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch {
		case f[0] == "State":
			profiles++
			good = good && f[1] == "ON"
		case f[0] == "Firewall" && len(f) == 3 && f[1] == "Policy":
			good = good && strings.HasPrefix(f[2], "BlockInbound")
		}
	}
	if profiles == 0 {
		return ""
	}
	return boolString(good)
}

// ParseRegDword returns the DWORD value name in `reg query KEY /v NAME`
// output, and whether it was there.
func ParseRegDword(b []byte, name string) (uint32, bool) {
	for _, l := range lines(b) {
		f := strings.Fields(l)
		if len(f) != 3 || !strings.EqualFold(f[0], name) || f[1] != "REG_DWORD" {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(f[2]), "0x"), 16, 32)
		if err != nil {
			return 0, false
		}
		return uint32(v), true
	}
	return 0, false
}

// ParseAutoUpdatePolicy reads the NoAutoUpdate policy: 1 turns automatic
// updates off, 0 leaves them on; without the policy it cannot tell.
func ParseAutoUpdatePolicy(b []byte) string {
	v, ok := ParseRegDword(b, "NoAutoUpdate")
	if !ok {
		return ""
	}
	return boolString(v == 0)
}

// ParseInactivityLock reads the InactivityTimeoutSecs policy (the machine
// locks after that many idle seconds; 0 never).
func ParseInactivityLock(b []byte) string {
	v, ok := ParseRegDword(b, "InactivityTimeoutSecs")
	if !ok {
		return ""
	}
	return boolString(v > 0)
}

// ParseSecureBootUEFI reads PowerShell's Confirm-SecureBootUEFI: "True"
// or "False"; anything else (a BIOS machine's "not supported") is unknown.
func ParseSecureBootUEFI(b []byte) string {
	switch strings.TrimSpace(string(b)) {
	case "True":
		return "true"
	case "False":
		return "false"
	}
	return ""
}

// ParseBIOSSerial reads the BIOS serial from `wmic bios get serialnumber`
// or PowerShell's (Get-CimInstance Win32_BIOS).SerialNumber: the last
// non-empty line that is not the header.
func ParseBIOSSerial(b []byte) string {
	serial := ""
	for _, l := range lines(b) {
		if l != "" && l != "SerialNumber" {
			serial = l
		}
	}
	if !usableSerial(serial) {
		return ""
	}
	return serial
}

// ParseDsregcmd reads `dsregcmd /status`: a device enrolled in an MDM
// through Entra ID shows its MdmUrl; without one it cannot tell (another
// MDM may manage it).
func ParseDsregcmd(b []byte) string {
	for _, l := range lines(b) {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == "MdmUrl" && strings.HasPrefix(strings.TrimSpace(v), "http") {
			return "true"
		}
	}
	return ""
}
