package access

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// Sync puts request id's grant in force or withdraws it, as the store now
// has it: another coordinator replica sharing the store filed, decided or
// ended it (package coordinator/replica calls this). It writes nothing.
func (s *Service) Sync(ctx context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.cfg.Store.GetAccessRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.cfg.Engine.RemoveGrant(requestID(id))
		return nil
	}
	if err != nil {
		return fmt.Errorf("access: %w", err)
	}
	if r.State != wire.AccessActive || (!r.Expires.IsZero() && !s.now().Before(r.Expires)) {
		s.cfg.Engine.RemoveGrant(requestID(id))
		return nil
	}
	if err := s.cfg.Engine.SetGrant(grantOf(r)); err != nil {
		return fmt.Errorf("access: grant %s: %w", requestID(id), err)
	}
	s.poke()
	return nil
}
