package coordinator

import (
	"context"
	"time"
)

// auditPruneEvery is how often audit events past Config.AuditRetention
// are deleted.
const auditPruneEvery = time.Hour

// pruneAudit deletes the audit events older than retention.
func (c *Coordinator) pruneAudit(ctx context.Context, retention time.Duration) {
	n, err := c.store.PruneAudit(ctx, time.Now().Add(-retention))
	switch {
	case err != nil:
		c.log.Error("audit retention: prune failed", "err", err)
	case n > 0:
		c.log.Info("audit retention: pruned old events", "events", n, "older_than", retention.String())
	}
}

// runAuditRetention prunes every auditPruneEvery until ctx ends.
func (c *Coordinator) runAuditRetention(ctx context.Context, retention time.Duration) {
	t := time.NewTicker(auditPruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.pruneAudit(ctx, retention)
		}
	}
}
