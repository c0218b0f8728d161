package export

import (
	"context"
	"encoding/json"
	"io"
	"testing"
)

// BenchmarkExport measures the exporter's own cost per event, reading a
// batch of 500 audit rows from SQLite: "store" is the read alone (the
// baseline), "schema" adds the conversion to the event schema and its
// JSON encoding (what the file sink writes), "syslog" renders RFC 5424
// messages instead. Compare the ratios of ns/event within one run.
func BenchmarkExport(b *testing.B) {
	st, _ := openStore(b)
	const rows, batch = 5000, 500
	appendAudit(b, st, 1, rows)
	ctx := context.Background()
	src := AuditSource{Store: st}
	sl, err := openSyslog(SinkConfig{Network: "tcp", Addr: "127.0.0.1:1", Facility: DefaultFacility})
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		each func(cursor int64) (int, error)
	}{
		{"store", func(c int64) (int, error) {
			r, err := st.ListAuditAfter(ctx, c, batch)
			return len(r), err
		}},
		{"schema", func(c int64) (int, error) {
			evs, err := src.After(ctx, c, batch)
			if err != nil {
				return 0, err
			}
			enc := json.NewEncoder(io.Discard)
			for _, e := range evs {
				if err := enc.Encode(e); err != nil {
					return 0, err
				}
			}
			return len(evs), nil
		}},
		{"syslog", func(c int64) (int, error) {
			evs, err := src.After(ctx, c, batch)
			if err != nil {
				return 0, err
			}
			for _, e := range evs {
				if _, err := sl.format(e); err != nil {
					return 0, err
				}
			}
			return len(evs), nil
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			events := 0
			for i := 0; b.Loop(); i++ {
				n, err := tc.each(int64(i*batch) % rows)
				if err != nil {
					b.Fatal(err)
				}
				events += n
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
		})
	}
}
