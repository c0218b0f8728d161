package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkObserve reads a user with and without Options.Observe in one
// run: the cost of timing every statement, as a ratio of the two.
func BenchmarkObserve(b *testing.B) {
	for _, tc := range []struct {
		name    string
		observe func(string, time.Duration)
	}{
		{"off", nil},
		{"on", func(string, time.Duration) {}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenWith(ctx, filepath.Join(b.TempDir(), "warren.db"), Options{Observe: tc.observe})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			u, err := s.CreateUser(ctx, User{Name: "ann@example.com", Role: RoleAdmin})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.GetUser(ctx, u.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
