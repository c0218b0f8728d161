package policyfile

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
)

// Replicas: when several coordinators share one store (Config.Replica),
// the store's newest version is the policy in force on all of them. Load
// puts it in force and writes it over the local file (mirror), whatever
// the file held; an admin's edit of the file on any replica (or an Apply
// through any replica's API) records a new version as usual, and the
// other replicas' Sync, called for each policy change in the feed, puts it
// in force and mirrors it to their files, where their watchers then find
// the file as it is in force and record nothing.

// Sync puts the store's newest policy version in force if it is not in
// force already, and mirrors it to the file. A stored version that no
// longer parses is logged and skipped (the policy in force stays).
func (m *Manager) Sync(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	latest, err := m.cfg.Store.LatestPolicy(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("policyfile: %w", err)
	}
	if latest.Hash == m.status.Hash {
		return nil // in force already (another replica recorded the same source again)
	}
	p, err := policy.Parse([]byte(latest.Source))
	if err != nil {
		m.log.Error("stored policy version is invalid here; the policy in force stays", "version", latest.ID, "err", err)
		return fmt.Errorf("policyfile: version %d: %w", latest.ID, err)
	}
	m.install(p, latest)
	m.log.Info("policy applied from the store", "version", latest.ID, "hash", short(latest.Hash), "author", latest.Author)
	return m.mirror()
}

// mirror writes the policy in force over the file unless the file holds
// it already. Callers hold m.mu.
func (m *Manager) mirror() error {
	if cur, err := os.ReadFile(m.cfg.Path); err == nil && hashSource(cur) == m.status.Hash {
		m.status.Rejected = nil
		return nil
	}
	tmp, err := m.writeTemp([]byte(m.status.Source))
	if err == nil {
		err = os.Rename(tmp, m.cfg.Path)
		os.Remove(tmp)
	}
	if err != nil {
		return fmt.Errorf("policyfile: write the policy in force to %s: %w", m.cfg.Path, err)
	}
	m.status.Rejected = nil
	return nil
}
