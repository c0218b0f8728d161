package coordinator

import (
	"context"
	"time"
)

// auditPruneEvery is how often audit events past Config.AuditRetention
// and flows past Config.FlowRetention are deleted.
const auditPruneEvery = time.Hour

// Flow pruning deletes at most flowPruneBatch rows per statement, so the
// store's one writer is never held for long, and at most
// flowPruneBatches statements per pass (the next pass goes on).
const (
	flowPruneBatch   = 10000
	flowPruneBatches = 1000
)

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

// pruneFlows deletes the flows whose last packet is older than
// retention, in bounded batches.
func (c *Coordinator) pruneFlows(ctx context.Context, retention time.Duration) {
	before := time.Now().Add(-retention)
	var total int64
	for range flowPruneBatches {
		n, err := c.store.PruneFlows(ctx, before, flowPruneBatch)
		if err != nil {
			c.log.Error("flow retention: prune failed", "err", err)
			break
		}
		total += n
		if n < flowPruneBatch || ctx.Err() != nil {
			break
		}
	}
	if total > 0 {
		c.log.Info("flow retention: pruned old flows", "flows", total, "older_than", retention.String())
	}
}

// prune applies both retentions (0: keep forever).
func (c *Coordinator) prune(ctx context.Context, audit, flows time.Duration) {
	if audit > 0 {
		c.pruneAudit(ctx, audit)
	}
	if flows > 0 {
		c.pruneFlows(ctx, flows)
	}
}

// runRetention prunes every auditPruneEvery until ctx ends.
func (c *Coordinator) runRetention(ctx context.Context, audit, flows time.Duration) {
	t := time.NewTicker(auditPruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.prune(ctx, audit, flows)
		}
	}
}
