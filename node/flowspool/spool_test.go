package flowspool

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

func recs(from, n int) []wire.FlowRecord {
	out := make([]wire.FlowRecord, n)
	t0 := time.Unix(1700000000, 0).UTC()
	for i := range out {
		out[i] = wire.FlowRecord{
			ID: fmt.Sprintf("7-1-%06d", from+i), Start: t0, End: t0.Add(time.Second),
			Src: netip.MustParseAddrPort("100.64.0.2:40000"), Dst: netip.MustParseAddrPort("100.64.0.1:22"),
			Proto: 6, BytesIn: 100, Verdict: "accept", Rule: "acls[0]",
		}
	}
	return out
}

func ids(rs []wire.FlowRecord) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// drain reads every record from the acknowledged position on.
func drain(t *testing.T, s *Spool) ([]wire.FlowRecord, uint64) {
	t.Helper()
	var all []wire.FlowRecord
	pos := s.Acked()
	for range 10000 {
		b, next, err := s.Batch(pos, 7, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			return all, pos
		}
		all = append(all, b...)
		pos = next
	}
	t.Fatal("drain did not end")
	return nil, 0
}

func TestAppendBatchAckRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Append(recs(0, 30))
	got, end := drain(t, s)
	if len(got) != 30 || got[0].ID != "7-1-000000" || got[29].ID != "7-1-000029" || end != 30 {
		t.Fatalf("got %d records ending at %d: %v", len(got), end, ids(got))
	}
	if err := s.Ack(10); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Acked() != 10 || s.End() != 30 {
		t.Fatalf("after restart acked %d end %d, want 10 30", s.Acked(), s.End())
	}
	s.Append(recs(30, 5))
	got, end = drain(t, s)
	if len(got) != 25 || got[0].ID != "7-1-000010" || got[24].ID != "7-1-000034" || end != 35 {
		t.Fatalf("got %d records ending at %d: %v", len(got), end, ids(got))
	}
	if err := s.Ack(end); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Pending != 0 || st.Bytes != 0 {
		t.Fatalf("after acking everything: %+v", st)
	}
	s.Append(recs(35, 1))
	if got, _ := drain(t, s); len(got) != 1 || got[0].ID != "7-1-000035" {
		t.Fatalf("after a full ack: %v", ids(got))
	}
}

func TestFullDropsOldest(t *testing.T) {
	one, _ := encodeRecord(recs(0, 1)[0])
	size := int64(len(one)) * 80 // 8 segments of 10 records
	s, err := Open(t.TempDir(), size, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Append(recs(0, 200))
	st := s.Stats()
	if st.Bytes > size {
		t.Fatalf("spool holds %d bytes, bound %d", st.Bytes, size)
	}
	got, _ := drain(t, s)
	if uint64(len(got))+s.Dropped() != 200 || s.Dropped() == 0 {
		t.Fatalf("kept %d and dropped %d of 200", len(got), s.Dropped())
	}
	// The newest are kept, in order, the oldest dropped.
	if got[len(got)-1].ID != "7-1-000199" || got[0].ID != fmt.Sprintf("7-1-%06d", s.Dropped()) {
		t.Fatalf("kept %s..%s, dropped %d", got[0].ID, got[len(got)-1].ID, s.Dropped())
	}
	if st.Dropped != s.Dropped() {
		t.Fatalf("stats dropped %d, Dropped %d", st.Dropped, s.Dropped())
	}
	s.Reported(5)
	if s.Dropped() != st.Dropped-5 || s.Stats().Dropped != st.Dropped {
		t.Fatalf("after reporting 5: unreported %d, total %d", s.Dropped(), s.Stats().Dropped)
	}
}

func TestCorruptSegment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(b []byte) []byte
		wantIDs int
	}{
		{"torn tail", func(b []byte) []byte { return b[:len(b)-3] }, 9},
		{"flipped payload byte", func(b []byte) []byte { b[headerLen+5] ^= 0xff; return b }, 9},
		{"garbage length", func(b []byte) []byte { b[0], b[1], b[2], b[3] = 0xff, 0xff, 0xff, 0x7f; return b }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.Append(recs(0, 10))
			s.Close()
			name := filepath.Join(dir, segName(0))
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, _ := drain(t, s)
			if len(got) != tc.wantIDs {
				t.Fatalf("read %d records, want %d", len(got), tc.wantIDs)
			}
			s.Append(recs(10, 2))
			got, end := drain(t, s)
			if len(got) != tc.wantIDs+2 || got[len(got)-1].ID != "7-1-000011" {
				t.Fatalf("after appending: %v", ids(got))
			}
			if err := s.Ack(end); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	good, _ := encodeRecord(recs(0, 1)[0])
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good[:5]...))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, span := countRecords(b)
		if span > len(b) {
			t.Fatalf("span %d past %d bytes", span, len(b))
		}
		var seen uint64
		for off := 0; off < span; seen++ {
			r, k, err := decodeRecord(b[off:])
			if k == 0 {
				t.Fatalf("record %d at %d unframed inside the counted span", seen, off)
			}
			if err == nil {
				again, _ := encodeRecord(r)
				if _, _, err := decodeRecord(again); err != nil {
					t.Fatalf("re-encoded record does not decode: %v", err)
				}
			}
			off += k
		}
		if seen != n {
			t.Fatalf("counted %d, walked %d", n, seen)
		}
	})
}
