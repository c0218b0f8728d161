// Package flowspool is the node's bounded on-disk queue of flow records
// waiting to reach the coordinator. Records are appended to segment files
// in a directory of the node's state dir; each record has a position (a
// number that only grows, across restarts) and stays until the
// coordinator acknowledges every position before it (Ack). Segments are
// written by appending and deleted whole.
//
// When the spool would grow past its size, the oldest segment is deleted,
// acknowledged or not, and the records it held are counted as dropped
// (Dropped, reported to the coordinator in the next flow batch). A corrupt
// segment loses only its damaged part.
//
// It must never block its caller on the network, never grow past its size
// by more than one record, and never hand out a record twice in one batch.
package flowspool

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/warrenmesh/warren/internal/wire"
)

// DefaultSize is the spool's default bound on disk (64 MiB).
const DefaultSize = 64 << 20

// A full spool is divided into at least minSegments segments (dropping
// the oldest loses at most that fraction of it), each at most maxSegment
// bytes (a batch reads one segment, holding the spool's lock).
const (
	minSegments = 8
	maxSegment  = 1 << 20
)

// ackFile holds the acknowledged position across restarts.
const ackFile = "acked"

// segment is one file of records, named by the position of its first.
type segment struct {
	base  uint64 // position of the first record
	count uint64 // records in it (a corrupt tail is not counted)
	size  int64  // bytes
}

func (s segment) end() uint64 { return s.base + s.count }

func segName(base uint64) string { return fmt.Sprintf("%016x.seg", base) }

// Spool is a bounded on-disk queue of flow records. Its methods are safe
// for concurrent use.
type Spool struct {
	dir     string
	max     int64
	segMax  int64
	log     *slog.Logger
	changed chan struct{}

	mu       sync.Mutex
	segs     []segment // oldest first; the last is being appended to
	f        *os.File  // the last segment, open for appending
	size     int64     // bytes in every segment
	acked    uint64    // every position before it is acknowledged
	dropped  uint64    // dropped since they were last reported
	dropTot  uint64    // dropped since Open
	closed   bool
	writeErr error // the last append's error, logged once
}

// Open opens (creating if needed) the spool in dir, bounded to size bytes
// (0: DefaultSize), and reads what a previous run left there.
func Open(dir string, size int64, logger *slog.Logger) (*Spool, error) {
	if size <= 0 {
		size = DefaultSize
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("flow spool: %w", err)
	}
	s := &Spool{dir: dir, max: size, segMax: min(max(size/minSegments, 1), maxSegment), log: logger, changed: make(chan struct{}, 1)}
	if b, err := os.ReadFile(filepath.Join(dir, ackFile)); err == nil {
		s.acked, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return nil, fmt.Errorf("flow spool: %w", err)
	}
	for _, name := range names {
		base, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".seg"), 16, 64)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("flow spool: %w", err)
		}
		n, good := countRecords(b)
		if good < len(b) {
			logger.Warn("flow spool: corrupt segment tail dropped", "file", name, "bytes", len(b)-good)
		}
		s.segs = append(s.segs, segment{base: base, count: n, size: int64(len(b))})
		s.size += int64(len(b))
	}
	slices.SortFunc(s.segs, func(a, b segment) int { return cmpU64(a.base, b.base) })
	// Segments wholly acknowledged are left over from a crash.
	for len(s.segs) > 0 && s.segs[0].end() <= s.acked && s.segs[0].count > 0 {
		s.removeOldest()
	}
	return s, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Changed is signalled (at most one pending signal) when records are
// appended.
func (s *Spool) Changed() <-chan struct{} { return s.changed }

// End returns the position the next appended record will get.
func (s *Spool) End() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endLocked()
}

func (s *Spool) endLocked() uint64 {
	if len(s.segs) == 0 {
		return s.acked
	}
	return max(s.segs[len(s.segs)-1].end(), s.acked)
}

// Append adds records; it writes to the page cache only (no fsync), so
// it never waits for the disk for long. A write error drops the records,
// counted as dropped.
func (s *Spool) Append(recs []wire.FlowRecord) {
	if len(recs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, r := range recs {
		b, err := encodeRecord(r)
		if err != nil {
			s.dropped++
			s.dropTot++
			continue
		}
		if err := s.appendLocked(b); err != nil {
			if s.writeErr == nil {
				s.log.Error("flow spool: write failed; records dropped", "err", err)
			}
			s.writeErr = err
			s.dropped++
			s.dropTot++
			continue
		}
		s.writeErr = nil
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Spool) appendLocked(b []byte) error {
	if s.f == nil || s.segs[len(s.segs)-1].size+int64(len(b)) > s.segMax {
		if err := s.rollLocked(); err != nil {
			return err
		}
	}
	// Make room: drop the oldest whole segments (never the one being
	// written), counting their unacknowledged records.
	for s.size+int64(len(b)) > s.max && len(s.segs) > 1 {
		s.removeOldest()
	}
	if _, err := s.f.Write(b); err != nil {
		return err
	}
	last := &s.segs[len(s.segs)-1]
	last.count++
	last.size += int64(len(b))
	s.size += int64(len(b))
	return nil
}

// rollLocked starts a new segment at the end position.
func (s *Spool) rollLocked() error {
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	base := s.endLocked()
	if n := len(s.segs); n > 0 && s.segs[n-1].count == 0 {
		// An empty last segment (after a restart) is reused.
		s.size -= s.segs[n-1].size
		s.segs = s.segs[:n-1]
	}
	f, err := os.OpenFile(filepath.Join(s.dir, segName(base)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("flow spool: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("flow spool: %w", err)
	}
	if fi.Size() > 0 {
		// A leftover file at this position holds only garbage (its
		// records would have moved the end): start it afresh.
		if err := f.Truncate(0); err != nil {
			f.Close()
			return fmt.Errorf("flow spool: %w", err)
		}
	}
	s.f = f
	s.segs = append(s.segs, segment{base: base})
	return nil
}

// removeOldest deletes the oldest segment, counting its unacknowledged
// records as dropped.
func (s *Spool) removeOldest() {
	old := s.segs[0]
	if old.end() > s.acked {
		lost := old.end() - max(old.base, s.acked)
		s.dropped += lost
		s.dropTot += lost
		s.acked = old.end()
	}
	if len(s.segs) == 1 && s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	if err := os.Remove(filepath.Join(s.dir, segName(old.base))); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("flow spool: remove segment", "err", err)
	}
	s.segs = s.segs[1:]
	s.size -= old.size
}

// Batch returns up to maxRecords records (and about maxBytes of them) from
// position from on (or from the oldest held, if that is later), with the
// position after the last one returned. It returns no records and from
// itself when there are none.
func (s *Spool) Batch(from uint64, maxRecords int, maxBytes int) ([]wire.FlowRecord, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	from = max(from, s.acked)
	var out []wire.FlowRecord
	next := from
	bytes := 0
	for _, seg := range s.segs {
		if seg.end() <= next || seg.count == 0 {
			continue
		}
		if seg.base > next {
			next = seg.base // records were lost between segments
		}
		b, err := os.ReadFile(filepath.Join(s.dir, segName(seg.base)))
		if err != nil {
			return nil, from, fmt.Errorf("flow spool: %w", err)
		}
		pos := seg.base
		for len(b) > 0 && pos < seg.end() {
			rec, n, err := decodeRecord(b)
			if n == 0 {
				break // corrupt length: the rest of the segment is lost
			}
			if pos >= next && err == nil {
				out = append(out, rec)
				bytes += n
			}
			b = b[n:]
			pos++
			if pos > next {
				next = pos
			}
			if len(out) >= maxRecords || bytes >= maxBytes {
				return out, next, nil
			}
		}
		next = max(next, seg.end())
	}
	return out, next, nil
}

// Ack records that every position before pos is acknowledged, deleting
// the segments wholly before it. The position survives restarts.
func (s *Spool) Ack(pos uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pos <= s.acked {
		return nil
	}
	s.acked = min(pos, s.endLocked())
	for len(s.segs) > 1 && s.segs[0].end() <= s.acked {
		s.removeOldest()
	}
	if len(s.segs) == 1 && s.segs[0].end() <= s.acked && s.segs[0].count > 0 {
		s.removeOldest() // the next append starts a fresh segment
	}
	tmp := filepath.Join(s.dir, ackFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(s.acked, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("flow spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, ackFile)); err != nil {
		return fmt.Errorf("flow spool: %w", err)
	}
	return nil
}

// Acked returns the acknowledged position: every record before it has
// reached the coordinator (or was dropped).
func (s *Spool) Acked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// Dropped returns how many records were dropped and not yet reported
// (see Reported).
func (s *Spool) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Reported subtracts n reported drops (a batch carrying them was
// acknowledged).
func (s *Spool) Reported(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped -= min(n, s.dropped)
}

// Stats is the spool's state, for warren status.
type Stats struct {
	Bytes   int64  `json:"bytes"`
	Max     int64  `json:"max"`
	Pending uint64 `json:"pending"` // records not yet acknowledged
	Dropped uint64 `json:"dropped"` // dropped since the node started
}

// Stats returns the spool's state.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pending uint64
	for _, seg := range s.segs {
		if seg.end() > s.acked {
			pending += seg.end() - max(seg.base, s.acked)
		}
	}
	return Stats{Bytes: s.size, Max: s.max, Pending: pending, Dropped: s.dropTot}
}

// Close closes the open segment; records appended later are ignored.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f != nil {
		err := s.f.Close()
		s.f = nil
		return err
	}
	return nil
}
