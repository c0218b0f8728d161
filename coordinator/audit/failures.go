package audit

import (
	"log/slog"
	"sort"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxDetail is the most bytes of a caller-chosen string (a URL path, an
// error that quotes input) a Failures line carries.
const MaxDetail = 256

// DefaultFailureLogEvery is how often Failures logs a line per kind.
const DefaultFailureLogEvery = 10 * time.Second

// Failures counts what callers who have not authenticated get wrong (a
// bad API key, a failed Noise handshake, a connection over a cap, a client
// that sends nothing): anyone can cause these, as fast as they can send,
// so they are never written to the store. Each kind is a counter, and the
// log gets at most one line per kind per period, carrying the count since
// the previous line and one truncated example.
//
// It must never store anything, never log more than one line per kind per
// period, and never log a caller-chosen string longer than MaxDetail.
type Failures struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*failureKind
}

type failureKind struct {
	total     uint64
	sinceLine uint64 // failures not yet reported in a log line
	lastLine  time.Time
}

// NewFailures returns a Failures logging to logger (nil: nowhere) at most
// once per kind per every (0: DefaultFailureLogEvery).
func NewFailures(logger *slog.Logger, every time.Duration) *Failures {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if every <= 0 {
		every = DefaultFailureLogEvery
	}
	return &Failures{log: logger, every: every, now: time.Now, kinds: make(map[string]*failureKind)}
}

// Record counts one failure of kind (a fixed name such as "api.auth")
// from remote; detail says what went wrong. Both strings are truncated to
// MaxDetail bytes if they reach the log.
func (f *Failures) Record(kind, remote, detail string) {
	f.mu.Lock()
	k := f.kinds[kind]
	if k == nil {
		k = &failureKind{}
		f.kinds[kind] = k
	}
	k.total++
	k.sinceLine++
	now := f.now()
	if !k.lastLine.IsZero() && now.Sub(k.lastLine) < f.every {
		f.mu.Unlock()
		return
	}
	n, total := k.sinceLine, k.total
	k.sinceLine, k.lastLine = 0, now
	f.mu.Unlock()
	f.log.Warn("unauthenticated failures", "kind", kind, "count", n, "total", total,
		"example_remote", Truncate(remote, MaxDetail), "example", Truncate(detail, MaxDetail))
}

// Counts returns the number of failures of each kind since start.
func (f *Failures) Counts() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.kinds))
	for name, k := range f.kinds {
		out[name] = k.total
	}
	return out
}

// Kinds returns the kinds counted so far, sorted.
func (f *Failures) Kinds() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.kinds))
	for name := range f.kinds {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Truncate shortens s to at most n bytes without splitting a UTF-8
// sequence, marking a cut with "…" (within the n bytes when n >= 3).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
