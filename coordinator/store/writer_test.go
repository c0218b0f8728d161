package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentWriteTransactions is the regression test for registrations
// failing under load with SQLITE_BUSY: many goroutines each run a write
// transaction (a node and its audit row, as a registration does) at once on
// a real file-backed store. Every one must commit, slower if need be.
func TestConcurrentWriteTransactions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		u, err := s.CreateUser(ctx, User{Name: "ann@example.com", Role: RoleMember})
		must(t, err)
		k, err := s.CreateAuthKey(ctx, AuthKey{Prefix: "wak_x", Hash: []byte("reusable"), UserID: u.ID, Reusable: true})
		must(t, err)
		start := make(chan struct{})
		writers := concurrentWriters
		if bk.name == "postgres" {
			// The failure this guards against is SQLite's; on PostgreSQL
			// 300 writers queue on the write lock just the same, in a
			// tenth of the time.
			writers = min(writers, 300)
		}
		errs := make(chan error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				node := newNode(fmt.Sprintf("host-%d", i), u.ID)
				errs <- s.Tx(ctx, func(q Queries) error {
					// The reads and writes of a registration with a reusable key.
					key, err := q.GetAuthKeyByHash(ctx, k.Hash)
					if err != nil {
						return err
					}
					if _, err := q.GetNodeByNodeKey(ctx, node.NodeKey); !errors.Is(err, ErrNotFound) {
						return fmt.Errorf("node key: %w", err)
					}
					if _, err := q.GetNodeByMachineKey(ctx, node.MachineKey); !errors.Is(err, ErrNotFound) {
						return fmt.Errorf("machine key: %w", err)
					}
					n, err := q.CreateNode(ctx, node)
					if err != nil {
						return err
					}
					key.UsedCount++
					if err := q.UpdateAuthKey(ctx, key); err != nil {
						return err
					}
					// A read inside the transaction sees its own write.
					if _, err := q.GetNode(ctx, n.ID); err != nil {
						return fmt.Errorf("read own write: %w", err)
					}
					return q.AppendAudit(ctx, AuditEvent{Time: time.Now(), Actor: "system", Action: "node.register",
						Target: fmt.Sprintf("node:%d", n.ID), Outcome: "ok"})
				})
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		failed := 0
		for err := range errs {
			if err != nil {
				if failed == 0 {
					t.Errorf("write transaction failed: %v", err)
				}
				failed++
			}
		}
		if failed > 0 {
			t.Fatalf("%d of %d write transactions failed", failed, writers)
		}
		nodes, err := s.ListNodes(ctx)
		must(t, err)
		events, err := s.ListAudit(ctx, AuditFilter{Action: "node.register", Limit: maxAuditLimit})
		must(t, err)
		if len(nodes) != writers || len(events) != writers {
			t.Fatalf("%d nodes and %d audit rows, want %d of each", len(nodes), len(events), writers)
		}
		if k, err = s.GetAuthKey(ctx, k.ID); err != nil || k.UsedCount != writers {
			t.Fatalf("key used %d times (%v), want %d", k.UsedCount, err, writers)
		}
	})
}
