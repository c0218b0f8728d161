package posture

// Linux's readings as pure functions of file contents and paths, shared so
// they are tested on every OS (posture_linux.go calls them on the host).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// maxDMDepth bounds the walk down a device-mapper stack (LVM on LUKS on
// a partition is three).
const maxDMDepth = 8

// ParseOSRelease returns VERSION_ID from os-release content; "" when it
// has none (rolling releases).
func ParseOSRelease(b []byte) string {
	for _, l := range lines(b) {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.TrimSpace(k) != "VERSION_ID" {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if validToken(v) {
			return v
		}
		return ""
	}
	return ""
}

// validToken reports whether s is a short printable value worth
// reporting (versions, serials).
func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return false
		}
	}
	return true
}

// mountDevice returns the device mounted at mountpoint in a mount table
// (/proc/mounts format; the last mount on a point is the visible one), and
// whether the point is mounted at all.
func mountDevice(mounts []byte, mountpoint string) (string, bool) {
	dev, found := "", false
	sc := bufio.NewScanner(bytes.NewReader(mounts))
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || unescapeMount(f[1]) != mountpoint {
			continue
		}
		dev, found = unescapeMount(f[0]), true
	}
	return dev, found
}

// unescapeMount undoes the octal escapes (\040 for a space) of the mount
// table.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 || s[0] > '3' {
		return false
	}
	for i := range 3 {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

// DiskEncrypted reports whether the file systems at every one of
// mountpoints sit on dm-crypt, reading the mount table content and sysfs at
// sys: "true", "false", or "" when it cannot tell (a file system not on a
// block device: overlay, tmpfs, network, ZFS). A mount point missing from
// the table is left out (a /home that is part of /), but the first one
// (the root) must be there.
func DiskEncrypted(mounts []byte, sys string, mountpoints []string) string {
	result := ""
	for i, mp := range mountpoints {
		dev, ok := mountDevice(mounts, mp)
		if !ok {
			if i == 0 {
				return ""
			}
			continue
		}
		v := deviceEncrypted(sys, dev)
		switch {
		case v == "":
			return ""
		case v == "false":
			result = "false"
		case result == "":
			result = "true"
		}
	}
	return result
}

// deviceEncrypted tells whether a mounted device (/dev/mapper/NAME,
// /dev/dm-N, /dev/sda2, a /dev/VG/LV link) is dm-crypt, or a device-mapper
// stack (LVM) whose every underlying device is.
func deviceEncrypted(sys, dev string) string {
	if !strings.HasPrefix(dev, "/dev/") {
		return ""
	}
	name := ""
	switch {
	case strings.HasPrefix(dev, "/dev/mapper/"):
		name = dmByName(sys, strings.TrimPrefix(dev, "/dev/mapper/"))
	case strings.HasPrefix(dev, "/dev/dm-"):
		name = filepath.Base(dev)
	}
	if name == "" {
		// A link such as /dev/vg0/root, or a plain block device.
		if real, err := filepath.EvalSymlinks(dev); err == nil {
			dev = real
		}
		name = filepath.Base(dev)
	}
	if !validToken(name) || strings.ContainsAny(name, "/") || name == "." || name == ".." {
		return ""
	}
	if _, err := os.Stat(filepath.Join(sys, "class", "block", name)); err != nil {
		return "" // not a block device this kernel shows: cannot tell
	}
	return boolString(blockEncrypted(sys, name, 0))
}

// dmByName finds the dm-N device whose device-mapper name is name.
func dmByName(sys, name string) string {
	ents, _ := filepath.Glob(filepath.Join(sys, "block", "dm-*"))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(e, "dm", "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return filepath.Base(e)
		}
	}
	return ""
}

// blockEncrypted reports whether block device name is dm-crypt (its dm
// UUID starts CRYPT-: LUKS1, LUKS2 or plain), or a device-mapper device
// whose underlying devices all are. A disk or partition is not.
func blockEncrypted(sys, name string, depth int) bool {
	if depth > maxDMDepth {
		return false
	}
	dir := filepath.Join(sys, "class", "block", name)
	uuid, err := os.ReadFile(filepath.Join(dir, "dm", "uuid"))
	if err != nil {
		return false // not device-mapper: a disk or partition
	}
	if strings.HasPrefix(strings.TrimSpace(string(uuid)), "CRYPT-") {
		return true
	}
	slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
	if len(slaves) == 0 {
		return false
	}
	for _, s := range slaves {
		if !blockEncrypted(sys, s.Name(), depth+1) {
			return false
		}
	}
	return true
}

// nftRuleset is the part of `nft -j list ruleset` the firewall reading
// needs.
type nftRuleset struct {
	Nftables []struct {
		Chain *struct {
			Family string `json:"family"`
			Table  string `json:"table"`
			Name   string `json:"name"`
			Hook   string `json:"hook"`
			Policy string `json:"policy"`
		} `json:"chain"`
		Rule *struct {
			Family string                       `json:"family"`
			Table  string                       `json:"table"`
			Chain  string                       `json:"chain"`
			Expr   []map[string]json.RawMessage `json:"expr"`
		} `json:"rule"`
	} `json:"nftables"`
}

// ParseNftRuleset reads `nft -j list ruleset`: "true" when an input hook
// chain of the inet or ip family drops by default (policy drop, or a last
// rule that drops or rejects everything), "false" when none does, "" when
// the output is not a ruleset.
func ParseNftRuleset(b []byte) string {
	var rs nftRuleset
	if err := json.Unmarshal(b, &rs); err != nil || rs.Nftables == nil {
		return ""
	}
	type chainID struct{ family, table, name string }
	inputs := map[chainID]bool{}
	last := map[chainID]bool{} // chain → its last rule drops everything
	for _, o := range rs.Nftables {
		if c := o.Chain; c != nil && c.Hook == "input" && (c.Family == "inet" || c.Family == "ip") {
			id := chainID{c.Family, c.Table, c.Name}
			inputs[id] = true
			if c.Policy == "drop" {
				return "true"
			}
		}
		if r := o.Rule; r != nil {
			last[chainID{r.Family, r.Table, r.Chain}] = unconditionalDrop(r.Expr)
		}
	}
	for id := range inputs {
		if last[id] {
			return "true"
		}
	}
	return "false"
}

// unconditionalDrop reports whether a rule's expressions match everything
// and drop or reject (counters and logging aside).
func unconditionalDrop(exprs []map[string]json.RawMessage) bool {
	if len(exprs) == 0 {
		return false
	}
	for _, e := range exprs[:len(exprs)-1] {
		for k := range e {
			if k != "counter" && k != "log" {
				return false
			}
		}
	}
	end := exprs[len(exprs)-1]
	_, drop := end["drop"]
	_, reject := end["reject"]
	return len(end) == 1 && (drop || reject)
}

// ParseIptablesInput reads `iptables -S INPUT`: "true" when the policy is
// DROP or the last rule drops or rejects everything, "false" when neither,
// "" when the output has no INPUT policy line.
func ParseIptablesInput(b []byte) string {
	policy, lastAll := "", false
	for _, l := range lines(b) {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "-P" && f[1] == "INPUT":
			policy = f[2]
		case len(f) >= 2 && f[0] == "-A" && f[1] == "INPUT":
			lastAll = len(f) == 4 && f[2] == "-j" && (f[3] == "DROP" || f[3] == "REJECT") ||
				len(f) > 4 && f[2] == "-j" && f[3] == "REJECT" && f[4] == "--reject-with"
		}
	}
	if policy == "" {
		return ""
	}
	return boolString(policy == "DROP" || lastAll)
}

// ParseSecureBootVar reads the SecureBoot EFI variable (four attribute
// bytes, then the value): "true", "false", or "" when malformed.
func ParseSecureBootVar(b []byte) string {
	if len(b) != 5 || b[4] > 1 {
		return ""
	}
	return boolString(b[4] == 1)
}

// ParseAptPeriodic returns the value of APT::Periodic::Unattended-Upgrade
// in apt configuration files (given in the order apt reads them; the
// last setting wins): "true" for a non-zero value, "false" for "0", ""
// when no file sets it.
func ParseAptPeriodic(files [][]byte) string {
	val := ""
	for _, f := range files {
		for _, l := range lines(f) {
			if strings.HasPrefix(l, "//") || strings.HasPrefix(l, "#") {
				continue
			}
			k, rest, ok := strings.Cut(l, " ")
			if !ok {
				k, rest, ok = strings.Cut(l, "\t")
			}
			if !ok || !strings.EqualFold(k, "APT::Periodic::Unattended-Upgrade") {
				continue
			}
			v := strings.Trim(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), ";")), `"`)
			switch {
			case v == "" || v == "0" || strings.EqualFold(v, "false"):
				val = "false"
			default:
				val = "true"
			}
		}
	}
	return val
}

// placeholderSerials are what firmware writes when it has no serial.
var placeholderSerials = []string{
	"", "0", "none", "default string", "not specified", "not applicable",
	"to be filled by o.e.m.", "system serial number", "0123456789", "chassis serial number",
}

// usableSerial reports whether a DMI serial is a real one.
func usableSerial(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return validToken(s) && !slices.Contains(placeholderSerials, s) && strings.Trim(s, "0 ") != ""
}
