package storecopy

import (
	"context"
	"testing"
)

// BenchmarkCopy migrates 1,000 nodes, 10,000 audit events and 50,000
// flows into each kind of target and reports rows per second; sqlite is
// the same run's baseline for the others.
//
//	go test -run '^$' -bench Copy -benchtime 3x ./coordinator/store/storecopy/
func BenchmarkCopy(b *testing.B) {
	src, _ := newSource(b, benchSize)
	for _, tg := range targets() {
		b.Run(tg.name, func(b *testing.B) {
			var rows int64
			for b.Loop() {
				b.StopTimer()
				dst := tg.new(b)
				b.StartTimer()
				res, err := Copy(context.Background(), src, dst, Options{})
				if err != nil {
					b.Fatal(err)
				}
				rows += res.Rows
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
