package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sink delivers batches of events to one destination. Deliver returns
// nil only once the destination has taken the whole batch (a file
// synced, a webhook's 2xx, a syslog stream written); an error means the
// batch is delivered again, whole, later. A sink is used by one
// goroutine at a time.
type Sink interface {
	Deliver(ctx context.Context, events []Event) error
	Close() error
}

// Defaults of Config.
const (
	DefaultPoll       = time.Second
	DefaultBatch      = 500
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultDeliverTimeout bounds one Deliver call.
	DefaultDeliverTimeout = 30 * time.Second
)

// Config configures an Exporter; zero durations and sizes are defaults.
type Config struct {
	// Sinks to deliver to, each under its SinkConfig.Name (its cursor's
	// key: keep it when changing a sink's other options).
	Sinks   []SinkConfig
	Sources []Source
	Cursors Cursors
	Logger  *slog.Logger
	// Poll is how often a sink that is up to date looks for new rows.
	Poll time.Duration
	// Batch is the most events one delivery holds (and a sink holds in
	// memory); a sink's own batch option (webhook batch=) may lower it.
	Batch int
	// MinBackoff and MaxBackoff bound the wait between failed
	// deliveries, which doubles from the first to the second, jittered.
	MinBackoff, MaxBackoff time.Duration
	// DeliverTimeout bounds one delivery.
	DeliverTimeout time.Duration
	// open builds a sink (tests: a fault-injecting one); nil: Open.
	open func(SinkConfig) (Sink, error)
}

// Exporter runs the sinks.
type Exporter struct {
	cfg   Config
	log   *slog.Logger
	sinks []namedSink
}

type namedSink struct {
	cfg  SinkConfig
	sink Sink
	// cursors[i] is how far the sink delivered Sources[i]; failures
	// counts failed deliveries. Read by Stats.
	cursors  []atomic.Int64
	failures *atomic.Uint64
}

// New opens every sink (reading its secrets); Run delivers. On error
// nothing is left open.
func New(cfg Config) (*Exporter, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Cursors == nil {
		return nil, errors.New("export: no cursor store")
	}
	cfg.Poll = orDefault(cfg.Poll, DefaultPoll)
	cfg.MinBackoff = orDefault(cfg.MinBackoff, DefaultMinBackoff)
	cfg.MaxBackoff = max(orDefault(cfg.MaxBackoff, DefaultMaxBackoff), cfg.MinBackoff)
	cfg.DeliverTimeout = orDefault(cfg.DeliverTimeout, DefaultDeliverTimeout)
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.open == nil {
		cfg.open = Open
	}
	x := &Exporter{cfg: cfg, log: cfg.Logger}
	names := map[string]bool{}
	for _, sc := range cfg.Sinks {
		if names[sc.Name] {
			x.close()
			return nil, fmt.Errorf("export: two log sinks named %q: give one a name of its own", sc.Name)
		}
		names[sc.Name] = true
		s, err := cfg.open(sc)
		if err != nil {
			x.close()
			return nil, fmt.Errorf("export: log sink %s: %w", sc.Name, err)
		}
		x.sinks = append(x.sinks, namedSink{cfg: sc, sink: s, cursors: make([]atomic.Int64, len(cfg.Sources)), failures: new(atomic.Uint64)})
	}
	return x, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Run delivers to every sink, one goroutine each, until ctx ends; then
// it closes the sinks and returns once every goroutine has ended. Run
// is called once.
func (x *Exporter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range x.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.runSink(ctx, s)
		}()
	}
	wg.Wait()
	x.close()
}

// SinkStats is one sink's delivery state, for metrics.
type SinkStats struct {
	Name string
	// Backlog counts the events not yet delivered, over every source
	// (-1 when a source could not count them).
	Backlog int64
	// Failures counts failed deliveries since the start.
	Failures uint64
}

// Stats reports each sink's backlog and failures; it reads the store
// once per sink and source.
func (x *Exporter) Stats(ctx context.Context) []SinkStats {
	out := make([]SinkStats, 0, len(x.sinks))
	for _, s := range x.sinks {
		st := SinkStats{Name: s.cfg.Name, Failures: s.failures.Load()}
		for i, src := range x.cfg.Sources {
			n, err := src.Backlog(ctx, s.cursors[i].Load())
			if err != nil {
				st.Backlog = -1
				break
			}
			st.Backlog += n
		}
		out = append(out, st)
	}
	return out
}

func (x *Exporter) close() {
	for _, s := range x.sinks {
		if err := s.sink.Close(); err != nil {
			x.log.Warn("log sink: close", "sink", s.cfg.Name, "err", err)
		}
	}
}

// runSink delivers every source to s in turn, each from its cursor.
func (x *Exporter) runSink(ctx context.Context, s namedSink) {
	batch := x.cfg.Batch
	if s.cfg.Batch > 0 {
		batch = min(batch, s.cfg.Batch)
	}
	cursors := make([]int64, len(x.cfg.Sources))
	for i, src := range x.cfg.Sources {
		for attempt := 0; ; attempt++ {
			c, err := x.cfg.Cursors.SinkCursor(ctx, s.cfg.Name, src.Name())
			if err == nil {
				cursors[i] = c
				s.cursors[i].Store(c)
				break
			}
			x.log.Error("log sink: cannot read its cursor", "sink", s.cfg.Name, "source", src.Name(), "err", err)
			if !sleep(ctx, x.backoff(attempt)) {
				return
			}
		}
	}
	for {
		full := false
		for i, src := range x.cfg.Sources {
			n, ok := x.deliverOnce(ctx, s, src, &cursors[i], batch)
			if !ok {
				return
			}
			s.cursors[i].Store(cursors[i])
			full = full || n == batch
		}
		if !full && !sleep(ctx, x.cfg.Poll) {
			return
		}
	}
}

// deliverOnce delivers the next batch of src after *cursor, retrying
// until it is delivered, and advances the cursor. It returns how many
// events it delivered, and false when ctx ended.
func (x *Exporter) deliverOnce(ctx context.Context, s namedSink, src Source, cursor *int64, batch int) (int, bool) {
	var events []Event
	for attempt := 0; ; attempt++ {
		var err error
		events, err = src.After(ctx, *cursor, batch)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return 0, false
		}
		x.log.Error("log sink: cannot read events", "sink", s.cfg.Name, "source", src.Name(), "err", err)
		if !sleep(ctx, x.backoff(attempt)) {
			return 0, false
		}
	}
	if len(events) == 0 {
		return 0, true
	}
	read, next := len(events), events[len(events)-1].Cursor
	if events = s.cfg.keep(events); len(events) == 0 {
		*cursor = next // nothing for this sink: move on, no delivery
		x.recordCursor(ctx, s, src, next)
		return read, true
	}
	for attempt := 0; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, x.cfg.DeliverTimeout)
		err := s.sink.Deliver(dctx, events)
		cancel()
		if err == nil {
			if attempt > 0 {
				x.log.Info("log sink delivering again", "sink", s.cfg.Name, "failed_attempts", attempt)
			}
			break
		}
		if ctx.Err() != nil {
			return 0, false
		}
		s.failures.Add(1)
		wait := x.backoff(attempt)
		x.log.Warn("log sink: delivery failed; will retry", "sink", s.cfg.Name, "source", src.Name(),
			"events", len(events), "attempt", attempt+1, "retry_in", wait.Round(time.Millisecond).String(), "err", err)
		if !sleep(ctx, wait) {
			return 0, false
		}
	}
	*cursor = next
	x.recordCursor(ctx, s, src, next)
	return read, true
}

// recordCursor stores how far s delivered src. A cursor not recorded only
// means the batch is delivered again after a restart (at least once); the
// loop goes on from memory.
func (x *Exporter) recordCursor(ctx context.Context, s namedSink, src Source, cursor int64) {
	if err := x.cfg.Cursors.SetSinkCursor(context.WithoutCancel(ctx), s.cfg.Name, src.Name(), cursor); err != nil {
		x.log.Error("log sink: cannot record its cursor", "sink", s.cfg.Name, "source", src.Name(), "err", err)
	}
}

// keep returns the events the sink takes (its Actions and OKOnly
// filters), in order.
func (c SinkConfig) keep(events []Event) []Event {
	if len(c.Actions) == 0 && !c.OKOnly {
		return events
	}
	var out []Event
	for _, e := range events {
		if c.OKOnly && e.Warren.Outcome != "ok" {
			continue
		}
		if len(c.Actions) == 0 {
			out = append(out, e)
			continue
		}
		for _, p := range c.Actions {
			if strings.HasPrefix(e.Event.Action, p) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// backoff is the wait after the attempt-th failure (from 0): MinBackoff
// doubled attempt times, capped at MaxBackoff, with up to a quarter
// taken off at random so that sinks do not retry in step.
func (x *Exporter) backoff(attempt int) time.Duration {
	d := x.cfg.MinBackoff
	for range min(attempt, 40) {
		d *= 2
		if d >= x.cfg.MaxBackoff {
			d = x.cfg.MaxBackoff
			break
		}
	}
	return d - rand.N(d/4+1)
}

// sleep waits d or until ctx ends, and reports whether ctx is still on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
