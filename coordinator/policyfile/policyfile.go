// Package policyfile keeps the coordinator's policy in force. It loads the
// admins' policy file, validates it (parse, checks and the file's own
// tests, see internal/policy), records every accepted version in the store
// with its hash, author and diff, and hands it to the netmap engine. It
// watches the file so that an edit takes effect within a second; a broken
// edit is rejected loudly (log, audit log, Status for the CLI) and the last
// good policy stays in force, across restarts too. Apply is the other way
// in: a policy sent through the admin API, recorded as its sender's and
// written over the file. It never puts a policy in force unvalidated or
// unrecorded, and never records a version identical to the one in force.
package policyfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"github.com/aymanbagabas/go-udiff"
	"github.com/fsnotify/fsnotify"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
)

// DefaultSource is written to the policy path when no file exists yet: deny
// by default, each user reaches their own devices, and nothing else until
// an admin says so.
const DefaultSource = `// Warren policy: who may reach what. Deny by default; every rule accepts.
// Reference: ops/policy/README.md. Edits take effect within a second; a
// broken file is rejected and the last good policy stays in force.
{
	"groups": {
		// "group:eng": ["ann@example.com"],
	},
	"tagOwners": {
		// "tag:db": ["autogroup:admin"],
	},
	"acls": [
		// Everyone reaches their own devices.
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
	],
	"tests": [],
}
`

// maxFileSize bounds what Reload reads.
const maxFileSize = 4 << 20

// debounce is how long the watcher waits after the last event on the file
// before reloading, so an editor's several writes load once.
const debounce = 100 * time.Millisecond

// Config configures a Manager.
type Config struct {
	// Path is the policy file. Required.
	Path string
	// Store keeps the history; Audit records applies and rejections.
	Store store.Store
	Audit *audit.Log
	// Apply puts a validated policy in force (netmap.Engine.SetPolicy).
	Apply  func(*policy.Policy)
	Logger *slog.Logger
	Now    func() time.Time
	// Replica makes the store's newest version the policy in force (see
	// replica.go): coordinator replicas share the store, each keeps its
	// file as a copy of that version, and an edit of the file on any one
	// records a new version that Sync puts in force on the others.
	Replica bool
}

// Status is what is in force and what was last refused.
type Status struct {
	Hash     string    `json:"hash"`
	Version  int64     `json:"version"` // store ID of the version in force
	Author   string    `json:"author"`
	Applied  time.Time `json:"applied"`
	Source   string    `json:"source"`
	Warnings []string  `json:"warnings,omitempty"`
	// Rejected is the newest version of the file that was refused since the
	// one in force was applied (nil: the file is what is in force).
	Rejected *Rejection `json:"rejected,omitempty"`
}

// Rejection is a policy file that failed validation.
type Rejection struct {
	Hash  string    `json:"hash"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// Manager owns the policy in force. Its methods are safe for concurrent
// use; Run is called once.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	watching chan struct{} // closed by Run once it watches the file

	mu      sync.Mutex // serializes loads; guards the fields below
	current *policy.Policy
	status  Status
}

// New returns a Manager; call Load before serving and Run to watch.
func New(cfg Config) (*Manager, error) {
	if cfg.Path == "" || cfg.Store == nil || cfg.Apply == nil {
		return nil, errors.New("policyfile: path, store and apply are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.New(cfg.Store, cfg.Logger)
	}
	return &Manager{cfg: cfg, log: cfg.Logger, watching: make(chan struct{})}, nil
}

// Load puts a policy in force at start. A missing file is created with
// DefaultSource. A broken file leaves the newest stored version in force;
// with no stored version either, Load fails with the file's errors.
func (m *Manager) Load(ctx context.Context) error {
	if _, err := os.Stat(m.cfg.Path); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(m.cfg.Path, []byte(DefaultSource), 0o640); err != nil {
			return fmt.Errorf("policyfile: create default policy: %w", err)
		}
		m.log.Warn("no policy file: wrote the default (each user reaches only their own devices)", "path", m.cfg.Path)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	latest, latestErr := m.cfg.Store.LatestPolicy(ctx)
	if latestErr != nil && !errors.Is(latestErr, store.ErrNotFound) {
		return fmt.Errorf("policyfile: %w", latestErr)
	}
	if latestErr == nil {
		// Start from the last good version so that a broken file, or a
		// file edited while the coordinator was down, is judged against it.
		p, err := policy.Parse([]byte(latest.Source))
		if err != nil {
			m.log.Error("stored policy no longer valid; ignoring it", "version", latest.ID, "err", err)
		} else {
			m.install(p, latest)
			if m.cfg.Replica {
				return m.mirror()
			}
		}
	}
	err := m.reload(ctx, "")
	if m.current == nil {
		return fmt.Errorf("policyfile: no valid policy to start with: %w", err)
	}
	return nil
}

// Reload reads the file and puts it in force if it is valid and differs
// from what is in force. actor names who asked ("" for the file watcher).
// The returned error is the file's validation error, if any; the policy in
// force is then unchanged.
func (m *Manager) Reload(ctx context.Context, actor string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reload(ctx, actor)
}

// Current returns the policy in force.
func (m *Manager) Current() *policy.Policy {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

// Status reports the policy in force and the last rejection.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status
	s.Warnings = append([]string(nil), s.Warnings...)
	if s.Rejected != nil {
		r := *s.Rejected
		s.Rejected = &r
	}
	return s
}

// reload does Reload's work; callers hold m.mu.
func (m *Manager) reload(ctx context.Context, actor string) error {
	src, author, err := m.read()
	if err != nil {
		m.reject(ctx, actor, "", err)
		return err
	}
	if actor != "" {
		author = actor + " via " + author
	}
	hash := hashSource(src)
	if m.current != nil && hash == m.status.Hash {
		m.status.Rejected = nil // the file is back to what is in force
		return nil
	}
	if r := m.status.Rejected; r != nil && r.Hash == hash {
		return errors.New(r.Error) // already refused and reported
	}
	p, err := policy.Parse(src)
	if err != nil {
		m.reject(ctx, author, hash, err)
		return err
	}
	if err := m.accept(ctx, p, src, hash, author, nil); err != nil {
		m.reject(ctx, author, hash, err)
		return err
	}
	return nil
}

// accept records the validated policy p (source src, hash hash) as a new
// version by author and puts it in force. before, if not nil, runs last in
// the version's transaction; its error undoes the version. Callers hold
// m.mu.
func (m *Manager) accept(ctx context.Context, p *policy.Policy, src []byte, hash, author string, before func() error) error {
	prev := m.status
	v := store.PolicyVersion{Hash: hash, Source: string(src), Author: author, Created: m.cfg.Now()}
	if m.current != nil {
		v.Diff = udiff.Unified("in force", "new", prev.Source, string(src))
	}
	// The version and its audit event commit together, and only then is
	// the policy put in force: a policy is never in force unrecorded.
	err := m.cfg.Audit.Commit(ctx, func(tx *audit.Tx) error {
		var err error
		if v, err = tx.SavePolicy(ctx, v); err != nil {
			return err
		}
		detail := map[string]any{"hash": hash, "version": v.ID, "warnings": len(p.Warnings())}
		if prev.Hash != "" {
			detail["previous"] = prev.Hash
			detail["diff"] = v.Diff
		}
		tx.Record(audit.Event{Actor: author, Action: "policy.apply", Target: "policy", Detail: detail})
		if before != nil {
			return before()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record policy version: %w", err)
	}
	m.install(p, v)
	m.log.Info("policy applied", "version", v.ID, "hash", short(hash), "author", author, "warnings", len(p.Warnings()))
	for _, w := range p.Warnings() {
		m.log.Warn("policy warning", "path", m.cfg.Path, "warning", w.Error())
	}
	return nil
}

// install puts p (stored as v) in force. Callers hold m.mu.
func (m *Manager) install(p *policy.Policy, v store.PolicyVersion) {
	m.current = p
	var warnings []string
	for _, w := range p.Warnings() {
		warnings = append(warnings, w.Error())
	}
	m.status = Status{Hash: v.Hash, Version: v.ID, Author: v.Author, Applied: v.Created, Source: v.Source, Warnings: warnings}
	m.cfg.Apply(p)
}

// reject records a file that cannot be put in force. Callers hold m.mu.
func (m *Manager) reject(ctx context.Context, author, hash string, err error) {
	m.status.Rejected = &Rejection{Hash: hash, Error: err.Error(), At: m.cfg.Now()}
	if author == "" {
		author = "file:" + m.cfg.Path
	}
	_ = m.cfg.Audit.Record(ctx, audit.Event{Actor: author, Action: "policy.reject", Target: "policy",
		Outcome: audit.Failed, Detail: map[string]any{"hash": hash, "error": err.Error(), "in_force": m.status.Hash}})
	m.log.Error("policy file rejected; the last good policy stays in force",
		"path", m.cfg.Path, "in_force", short(m.status.Hash), "err", err)
}

// read returns the file's bytes and who last wrote it ("file:PATH (uid N
// name)").
func (m *Manager) read() ([]byte, string, error) {
	author := "file:" + m.cfg.Path
	f, err := os.Open(m.cfg.Path)
	if err != nil {
		return nil, author, fmt.Errorf("read policy file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, author, fmt.Errorf("read policy file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, author, fmt.Errorf("read policy file: %s is not a regular file", m.cfg.Path)
	}
	if uid, ok := fileOwner(fi); ok {
		author += " (uid " + uid
		if u, err := user.LookupId(uid); err == nil {
			author += " " + u.Username
		}
		author += ")"
	}
	src, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, author, fmt.Errorf("read policy file: %w", err)
	}
	if len(src) > maxFileSize {
		return nil, author, fmt.Errorf("read policy file: larger than %d bytes", maxFileSize)
	}
	return src, author, nil
}

// Run watches the file's directory (editors replace files by renaming) and
// reloads after each change until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("policyfile: watch: %w", err)
	}
	defer w.Close()
	dir, name := filepath.Split(filepath.Clean(m.cfg.Path))
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("policyfile: watch %s: %w", dir, err)
	}
	close(m.watching)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("policyfile: watcher closed")
			}
			if filepath.Base(ev.Name) == name {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("policyfile: watcher closed")
			}
			m.log.Warn("policy file watcher", "err", err)
			timer.Reset(debounce) // events may have been lost: look again
		case <-timer.C:
			_ = m.Reload(ctx, "")
		}
	}
}

// Watching is closed once Run watches the file: an edit after that is
// seen; an edit before it may not be (until the next one).
func (m *Manager) Watching() <-chan struct{} { return m.watching }

// hashSource is the hex SHA-256 of a policy file, as stored in history.
func hashSource(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:])
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
