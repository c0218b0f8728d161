// Package osdns points the operating system's resolver at Warren's
// (package magicdns) for the mesh's domains only (split DNS), and undoes
// that: on Restore (warren down, warrend stopping) and, after a crash, at
// the next start. Linux: systemd-resolved over D-Bus (a routing-only
// domain on the TUN link) when it runs, otherwise a managed
// /etc/resolv.conf with the original restored byte for byte; macOS: one
// /etc/resolver/<domain> file per domain; Windows: an NRPT rule.
//
// Before it changes anything it writes a record of what it is about to
// change (and the original contents) into the state directory, so a
// restart after kill -9 or a power cut puts things back first. It must
// never change anything it has not recorded, never overwrite a file that
// someone else rewrote meanwhile when restoring, and never touch names
// outside the domains it is given.
package osdns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/warrenmesh/warren/internal/atomicfile"
)

// RecordFile is the record's name in the state directory.
const RecordFile = "dns-restore.json"

// maxRecord bounds the record read at start (it holds resolv.conf).
const maxRecord = 1 << 20

// Config is what the OS should send to Warren's resolver.
type Config struct {
	// Interface is the TUN device's name.
	Interface string
	// Nameservers are Warren's resolver's addresses.
	Nameservers []netip.Addr
	// Domains are the domains to route to it: the mesh domain first (also
	// the search domain), then the split-DNS routes' domains.
	Domains []string
}

// Method names how the OS is configured; part of the record's format.
type Method string

// Methods.
const (
	MethodResolvConf  Method = "resolv.conf" // a managed resolv.conf (Linux without resolved)
	MethodResolved    Method = "resolved"    // systemd-resolved link settings over D-Bus
	MethodResolverDir Method = "resolver-dir"
	MethodNRPT        Method = "nrpt"
)

// Options configures a Manager.
type Options struct {
	// StateDir holds the record; required.
	StateDir string
	// Method forces a method; empty picks the OS's (see the package doc).
	Method Method
	// ResolvConf is the resolv.conf to manage; default /etc/resolv.conf.
	ResolvConf string
	// ResolverDir is macOS's per-domain resolver directory; default
	// /etc/resolver.
	ResolverDir string
	Logger      *slog.Logger
}

// Manager owns the OS's DNS settings for one warrend. Its methods are
// safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu  sync.Mutex
	rec *record // what is changed now; nil when nothing is
}

// record says what Set changed, enough to undo it from a new process.
type record struct {
	Method Method `json:"method"`
	// resolv.conf
	Path     string `json:"path,omitempty"`
	Existed  bool   `json:"existed,omitempty"`
	Original []byte `json:"original,omitempty"` // byte for byte
	Mode     uint32 `json:"mode,omitempty"`
	Symlink  string `json:"symlink,omitempty"` // the path was a symlink to this
	// resolved
	IfIndex int `json:"ifIndex,omitempty"`
	// resolver-dir: each file written, with what was there before
	Files []savedFile `json:"files,omitempty"`
	// nrpt: the registry keys written
	Keys []string `json:"keys,omitempty"`
}

type savedFile struct {
	Path     string `json:"path"`
	Existed  bool   `json:"existed,omitempty"`
	Original []byte `json:"original,omitempty"`
}

// New returns a manager for opts. If a record of an earlier run is left
// in the state directory (warrend was killed while the node was up), it
// restores what that run changed first.
func New(opts Options) (*Manager, error) {
	if opts.StateDir == "" {
		return nil, errors.New("osdns: state directory required")
	}
	if opts.ResolvConf == "" {
		opts.ResolvConf = "/etc/resolv.conf"
	}
	if opts.ResolverDir == "" {
		opts.ResolverDir = "/etc/resolver"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: opts, log: opts.Logger}
	rec, err := m.loadRecord()
	if err != nil {
		return nil, err
	}
	if rec != nil {
		m.log.Info("restoring the DNS configuration left by an earlier run", "method", rec.Method)
		m.rec = rec
		if err := m.Restore(); err != nil {
			return nil, fmt.Errorf("osdns: restore the DNS configuration of an earlier run: %w (fix it by hand and remove %s)", err, m.recordPath())
		}
	}
	return m, nil
}

// Method returns how the OS is configured now; empty when it is not.
func (m *Manager) Method() Method {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rec == nil {
		return ""
	}
	return m.rec.Method
}

// Upstreams returns the resolvers the system had before Warren changed
// anything: the nameservers of the original resolv.conf (none when it
// cannot be read), with port 53.
func (m *Manager) Upstreams() []netip.AddrPort {
	m.mu.Lock()
	rec := m.rec
	m.mu.Unlock()
	var b []byte
	if rec != nil && rec.Method == MethodResolvConf {
		b = rec.Original
	} else {
		var err error
		if b, err = os.ReadFile(m.opts.ResolvConf); err != nil {
			return nil
		}
	}
	var out []netip.AddrPort
	for _, a := range ParseResolvConf(b).Nameservers {
		out = append(out, netip.AddrPortFrom(a, 53))
	}
	return out
}

// Set points the OS at cfg's nameservers for cfg's domains, recording
// first what it changes. Calling it again with a new cfg updates the
// settings and keeps the original of the first call.
func (m *Manager) Set(cfg Config) error {
	if len(cfg.Nameservers) == 0 || len(cfg.Domains) == 0 {
		return errors.New("osdns: no nameservers or domains to configure")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	method := m.opts.Method
	if m.rec != nil {
		method = m.rec.Method
	}
	if method == "" {
		method = platformMethod()
	}
	switch method {
	case MethodResolvConf:
		return m.setResolvConf(cfg)
	case MethodResolverDir:
		return m.setResolverDir(cfg)
	case MethodResolved, MethodNRPT:
		return m.setPlatform(method, cfg)
	}
	return fmt.Errorf("osdns: unknown method %q", method)
}

// Restore undoes what Set changed (nothing when it changed nothing) and
// removes the record.
func (m *Manager) Restore() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.rec
	if rec == nil {
		return nil
	}
	var err error
	switch rec.Method {
	case MethodResolvConf:
		err = m.restoreResolvConf(rec)
	case MethodResolverDir:
		err = m.restoreResolverDir(rec)
	case MethodResolved, MethodNRPT:
		err = restorePlatform(rec)
	default:
		err = fmt.Errorf("unknown method %q", rec.Method)
	}
	if err != nil {
		return err
	}
	m.rec = nil
	if err := os.Remove(m.recordPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("osdns: remove the record: %w", err)
	}
	return nil
}

func (m *Manager) recordPath() string { return filepath.Join(m.opts.StateDir, RecordFile) }

// saveRecord writes rec (atomically, 0600) before the change it describes.
func (m *Manager) saveRecord(rec *record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(m.recordPath(), b, 0o600); err != nil {
		return fmt.Errorf("osdns: save what is about to change (nothing changed): %w", err)
	}
	m.rec = rec
	return nil
}

func (m *Manager) loadRecord() (*record, error) {
	b, err := os.ReadFile(m.recordPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("osdns: read %s: %w", m.recordPath(), err)
	}
	if len(b) > maxRecord {
		return nil, fmt.Errorf("osdns: %s is larger than %d bytes: not Warren's; remove it", m.recordPath(), maxRecord)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.Method == "" {
		return nil, fmt.Errorf("osdns: %s is not a record Warren wrote (%v): restore the DNS configuration by hand and remove it", m.recordPath(), err)
	}
	return &rec, nil
}

// routingDomains lower-cases the domains and drops empty ones and
// duplicates, keeping the order.
func routingDomains(ds []string) []string {
	var out []string
	for _, d := range ds {
		d = strings.Trim(strings.ToLower(d), ".")
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func errNotHere(method Method) error {
	return fmt.Errorf("osdns: method %q is not available on this operating system", method)
}
