package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
)

// benchRegistrations is how many clients register at once in each
// operation of BenchmarkRegistrations.
const benchRegistrations = 1500

// BenchmarkRegistrations measures registrations per second with 1,500
// clients registering at once through the real control channel: the
// store's single writer beside the old shared pool (the baseline, in the
// same run), which also reports how many registrations it failed.
func BenchmarkRegistrations(b *testing.B) {
	for _, bc := range []struct {
		name   string
		shared bool
	}{
		{"store=shared-pool", true},
		{"store=single-writer", false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			m := testmesh.New(b, testmesh.Options{Coordinator: coordinator.Config{SharedStorePool: bc.shared}})
			u := m.User("load@example.com")
			authKey := m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
			failed := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f, _ := registerWave(ctx, m, authKey, i, benchRegistrations)
				failed += len(f)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*benchRegistrations)/b.Elapsed().Seconds(), "registrations/s")
			b.ReportMetric(float64(failed)/float64(b.N), "failed/op")
		})
	}
}
