package policyfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/internal/policy"
)

// Apply puts src in force on behalf of actor (who is recorded as the
// version's author), as if actor had written the policy file: src is
// validated like the file; if it is what is in force already, nothing
// happens and Apply reports changed false; otherwise the file is replaced
// by src (a temporary file renamed over it, in the same transaction that
// records the version) and src is put in force. The watcher then finds the
// file as it is in force and records nothing more. (A src identical to
// what is in force still replaces a file that holds a refused edit.)
//
// An invalid src changes nothing, not the file either; it is audited as a
// refused policy.apply and returned, but it is no rejection of the file
// (Status.Rejected stays as it was).
func (m *Manager) Apply(ctx context.Context, actor string, src []byte) (changed bool, err error) {
	if actor == "" {
		return false, errors.New("policyfile: Apply needs an actor")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	hash := hashSource(src)
	if m.current != nil && hash == m.status.Hash {
		if m.status.Rejected != nil {
			// The file holds a refused edit: put back what is in force.
			if err := m.mirror(); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	refuse := func(err error) (bool, error) {
		_ = m.cfg.Audit.Record(ctx, audit.Event{Actor: actor, Action: "policy.apply", Target: "policy",
			Outcome: audit.Failed, Detail: map[string]any{"hash": hash, "error": err.Error(), "in_force": m.status.Hash}})
		m.log.Warn("policy refused; the policy in force is unchanged", "author", actor, "err", err)
		return false, err
	}
	if len(src) > maxFileSize {
		return refuse(fmt.Errorf("policy larger than %d bytes", maxFileSize))
	}
	p, err := policy.Parse(src)
	if err != nil {
		return refuse(err)
	}
	tmp, err := m.writeTemp(src)
	if err != nil {
		return refuse(err)
	}
	defer os.Remove(tmp) // after a successful rename, there is nothing left to remove
	err = m.accept(ctx, p, src, hash, actor, func() error {
		if err := os.Rename(tmp, m.cfg.Path); err != nil {
			return fmt.Errorf("replace policy file: %w", err)
		}
		return nil
	})
	if err != nil {
		return refuse(err)
	}
	return true, nil
}

// writeTemp writes src to a new file beside the policy file, with the
// policy file's permissions (0640 if it has none yet), and returns its
// path.
func (m *Manager) writeTemp(src []byte) (string, error) {
	mode := fs.FileMode(0o640)
	if fi, err := os.Stat(m.cfg.Path); err == nil {
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(m.cfg.Path), "."+filepath.Base(m.cfg.Path)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("write policy file: %w", err)
	}
	_, err = f.Write(src)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write policy file: %w", err)
	}
	return f.Name(), nil
}
