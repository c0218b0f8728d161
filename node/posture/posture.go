// Package posture finds out what a node can tell about its own health
// (its OS and version, disk encryption, firewall, secure boot, automatic
// updates, screen lock, MDM enrolment, a hash of its serial number) as
// node: attributes for the coordinator's posture rules.
//
// The per-OS files (posture_linux.go, posture_darwin.go,
// posture_windows.go, posture_other.go) only run commands and read files;
// what their output means is decided by pure parsers in the shared files
// (linux.go, darwin.go, windows.go), which are tested on every OS against
// recorded command output.
//
// It must never guess: what it cannot determine is absent, not false. It
// must never report a custom: attribute, never report a raw serial number
// (only its SHA-256), never change the system it inspects, and never run
// longer than its timeouts.
package posture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/warrenmesh/warren/internal/version"
	"github.com/warrenmesh/warren/internal/wire"
)

// The attributes a collector reports.
const (
	AttrOS            = "node:os"            // "linux", "macos", "windows", else GOOS
	AttrOSVersion     = "node:osVersion"     // as the OS writes it: "12", "14.5", "10.0.22631"
	AttrKernelVersion = "node:kernelVersion" // "6.1.0-21-amd64", "23.5.0", "10.0.22631.3593"
	AttrArch          = "node:arch"          // GOARCH
	AttrClientVersion = "node:clientVersion" // Warren's version
	AttrHostname      = "node:hostname"
	AttrDiskEncrypted = "node:diskEncrypted" // "true"/"false"
	AttrFirewall      = "node:firewall"      // "true": inbound dropped by default
	AttrScreenLock    = "node:screenLock"
	AttrAutoUpdate    = "node:autoUpdate"
	AttrSecureBoot    = "node:secureBoot"
	AttrMachineSerial = "node:machineSerial" // hex SHA-256 of the serial
	AttrManaged       = "node:managed"       // enrolled in an MDM
)

// NodePrefix starts every attribute a node may report.
const NodePrefix = "node:"

// Runner runs a command and returns what it wrote (stdout and stderr).
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Config configures a Collector. The zero value collects from this host.
type Config struct {
	// Run runs commands; nil runs them with os/exec (LC_ALL=C).
	Run Runner
	// CommandTimeout bounds each command; default 5 s.
	CommandTimeout time.Duration
	// Timeout bounds a whole collection; default 20 s.
	Timeout time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Linux only: the mount table, sysfs and /etc to read (defaults
	// /proc/self/mounts, /sys, /etc), and the mount points whose file
	// systems must sit on dm-crypt (default / and /home, /home only when
	// it is a mount of its own).
	MountsFile  string
	SysDir      string
	EtcDir      string
	MountPoints []string
}

// Collector collects a node's posture attributes.
type Collector struct {
	cfg Config
}

// New returns a Collector.
func New(cfg Config) *Collector {
	if cfg.Run == nil {
		cfg.Run = execRun
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MountsFile == "" {
		cfg.MountsFile = "/proc/self/mounts"
	}
	if cfg.SysDir == "" {
		cfg.SysDir = "/sys"
	}
	if cfg.EtcDir == "" {
		cfg.EtcDir = "/etc"
	}
	return &Collector{cfg: cfg}
}

// Collect finds out what it can, within the collector's timeout, and
// returns the attributes with the time each was collected.
func (c *Collector) Collect(ctx context.Context) map[string]wire.PostureValue {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	out := make(map[string]wire.PostureValue)
	put := func(name, value string) {
		if !printable(value) || !strings.HasPrefix(name, NodePrefix) {
			return
		}
		out[name] = wire.PostureValue{Value: value, CollectedAt: c.cfg.Now().UTC()}
	}
	put(AttrOS, osName)
	put(AttrArch, runtime.GOARCH)
	put(AttrClientVersion, version.String())
	if h, err := os.Hostname(); err == nil {
		put(AttrHostname, strings.TrimSpace(h))
	}
	c.collectPlatform(ctx, put)
	return out
}

// run runs one command within the command timeout.
func (c *Collector) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CommandTimeout)
	defer cancel()
	return c.cfg.Run(ctx, name, args...)
}

// execRun runs a command with the C locale, so its output is the English
// the parsers read; a command that outlives ctx is killed.
func execRun(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.WaitDelay = time.Second
	return cmd.CombinedOutput()
}

// HashSerial returns the hex SHA-256 of a serial number (or machine ID),
// trimmed of surrounding white space; "" for an empty one. An inventory
// that knows the serial hashes it the same way to match the node.
func HashSerial(serial string) string {
	serial = strings.TrimSpace(serial)
	if serial == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(serial))
	return hex.EncodeToString(sum[:])
}

// Equal reports whether two reports hold the same attribute values,
// whenever they were collected.
func Equal(a, b map[string]wire.PostureValue) bool {
	return maps.EqualFunc(a, b, func(x, y wire.PostureValue) bool { return x.Value == y.Value })
}

// printable reports whether a value is worth reporting: non-empty, at
// most 256 bytes of UTF-8 without control characters.
func printable(s string) bool {
	if s == "" || len(s) > 256 || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// boolString is "true" or "false".
func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// lines splits command output into trimmed lines.
func lines(out []byte) []string {
	var ls []string
	for _, l := range strings.Split(strings.ReplaceAll(string(out), "\r", ""), "\n") {
		ls = append(ls, strings.TrimSpace(l))
	}
	return ls
}
