package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"
)

// Report is what a run measured. Times are from the tool's clock; sizes
// are bytes read from the network (Noise and websocket framing included).
type Report struct {
	URL         string `json:"url"`
	Nodes       int    `json:"nodes"`
	Concurrency int    `json:"concurrency"`
	// OK: every node registered and got its map, and saw the change.
	OK         bool   `json:"ok"`
	Mapped     int    `json:"mapped"`
	Failed     int    `json:"failed"`
	FirstError string `json:"firstError,omitempty"`
	// RegisterSeconds is the time for all nodes to register and receive
	// their first netmap; MappedAt is when each did, from the start.
	RegisterSeconds float64 `json:"registerSeconds"`
	MappedAt        Summary `json:"mappedAtMs"`
	// SettleSeconds is the wait after that until the nodes had applied
	// every netmap (none arrived for Config.Settle), before the change.
	SettleSeconds float64 `json:"settleSeconds"`
	// FirstMapBytes is what each node read up to its first netmap
	// (handshake and registration included); FirstMapPeers its peers then.
	FirstMapBytes Summary `json:"firstMapBytes"`
	FirstMapPeers Summary `json:"firstMapPeers"`
	// BytesPerNode is all each node read in the run; PeersPerNode the
	// peers in its last netmap.
	BytesPerNode Summary `json:"bytesPerNode"`
	PeersPerNode Summary `json:"peersPerNode"`
	Change       struct {
		// Seen is how many nodes saw the extra node join; Latency is from
		// its dial to each node's netmap holding it (its registration
		// included); ProbeMappedMs is when the joining node got its own map.
		Seen          int     `json:"seen"`
		Latency       Summary `json:"latencyMs"`
		ProbeMappedMs float64 `json:"probeMappedMs"`
	} `json:"change"`
	Coordinator struct {
		Measured     bool    `json:"measured"`
		RSSAfterRamp int64   `json:"rssAfterRampBytes"`
		RSSEnd       int64   `json:"rssEndBytes"`
		PeakRSS      int64   `json:"peakRSSBytes,omitempty"` // from /proc only
		CPURamp      float64 `json:"cpuSecondsRamp"`
		CPUChange    float64 `json:"cpuSecondsChange"`
		CPUTotal     float64 `json:"cpuSecondsTotal"` // since the process started
		Error        string  `json:"error,omitempty"`
	} `json:"coordinator"`

	last procSample
}

// Summary is a distribution: count, p50, p99, max and mean.
type Summary struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// summarize summarizes durations in milliseconds.
func summarize(d []time.Duration) Summary {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = ms(x)
	}
	return summary(v)
}

func summarizeInts(d []int64) Summary {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x)
	}
	return summary(v)
}

// summary uses nearest-rank percentiles.
func summary(v []float64) Summary {
	if len(v) == 0 {
		return Summary{}
	}
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += x
	}
	rank := func(p int) float64 { return v[max(0, (p*len(v)+99)/100-1)] }
	return Summary{N: len(v), P50: rank(50), P99: rank(99), Max: v[len(v)-1], Mean: sum / float64(len(v))}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sampleStats samples stats (nil: nothing), noting a failure in rep.
func sampleStats(ctx context.Context, stats coordStats, rep *Report) procSample {
	if stats == nil {
		return procSample{}
	}
	s, err := stats.sample(ctx)
	if err != nil {
		rep.Coordinator.Error = err.Error()
		return procSample{}
	}
	rep.Coordinator.Measured = true
	return s
}

func cpuDelta(a, b procSample) float64 { return max(0, b.CPU-a.CPU) }

// startProgress calls cfg.Progress every tick until the returned stop is
// called; done is closed when its goroutine has ended.
func startProgress(cfg Config, mapped, failed *atomic.Int64, done chan struct{}) (stop func()) {
	quit := make(chan struct{})
	go func() {
		defer close(done)
		if cfg.Progress == nil {
			<-quit
			return
		}
		t := time.NewTicker(cfg.Tick)
		defer t.Stop()
		for {
			select {
			case <-quit:
				cfg.Progress(int(mapped.Load()), int(failed.Load()), cfg.Nodes)
				return
			case <-t.C:
				cfg.Progress(int(mapped.Load()), int(failed.Load()), cfg.Nodes)
			}
		}
	}()
	return func() { close(quit) }
}

// progressPrinter returns a Progress function writing to w: a bar
// redrawn in place on a terminal, plain lines otherwise.
func progressPrinter(w io.Writer, terminal bool) func(mapped, failed, total int) {
	start := time.Now()
	return func(mapped, failed, total int) {
		el := time.Since(start).Seconds()
		rate := float64(mapped) / max(el, 0.001)
		if !terminal {
			fmt.Fprintf(w, "mapped %d/%d failed %d (%.0f/s, %.1fs)\n", mapped, total, failed, rate, el)
			return
		}
		const width = 40
		filled := width * mapped / max(total, 1)
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = '.'
			if i < filled {
				bar[i] = '#'
			}
		}
		end := ""
		if mapped+failed >= total {
			end = "\n"
		}
		fmt.Fprintf(w, "\r[%s] %d/%d failed %d %.0f/s %.1fs%s", bar, mapped, total, failed, rate, el, end)
	}
}

// printHuman writes the report for people.
func printHuman(w io.Writer, r *Report) {
	status := "OK"
	if !r.OK {
		status = "INCOMPLETE"
	}
	fmt.Fprintf(w, "warren-loadtest %s: %d nodes against %s (concurrency %d)\n", status, r.Nodes, r.URL, r.Concurrency)
	fmt.Fprintf(w, "  registered and mapped: %d/%d in %.2fs (failed %d)\n", r.Mapped, r.Nodes, r.RegisterSeconds, r.Failed)
	fmt.Fprintf(w, "    per node, from the start: p50 %.0fms  p99 %.0fms  max %.0fms\n", r.MappedAt.P50, r.MappedAt.P99, r.MappedAt.Max)
	fmt.Fprintf(w, "  settled (no netmap for the settle time) %.2fs later\n", r.SettleSeconds)
	fmt.Fprintf(w, "  first map: bytes p50 %.0f  max %.0f; peers p50 %.0f  max %.0f\n", r.FirstMapBytes.P50, r.FirstMapBytes.Max, r.FirstMapPeers.P50, r.FirstMapPeers.Max)
	fmt.Fprintf(w, "  read per node in the run: mean %.0f bytes  max %.0f; peers at the end: mean %.0f\n", r.BytesPerNode.Mean, r.BytesPerNode.Max, r.PeersPerNode.Mean)
	fmt.Fprintf(w, "  change (one node joins): seen by %d/%d; p50 %.1fms  p99 %.1fms  max %.1fms (joining node mapped in %.1fms)\n",
		r.Change.Seen, r.Nodes, r.Change.Latency.P50, r.Change.Latency.P99, r.Change.Latency.Max, r.Change.ProbeMappedMs)
	c := r.Coordinator
	switch {
	case c.Measured:
		fmt.Fprintf(w, "  coordinator: RSS %s after ramp-up, %s at the end", mib(c.RSSAfterRamp), mib(c.RSSEnd))
		if c.PeakRSS > 0 {
			fmt.Fprintf(w, " (peak %s)", mib(c.PeakRSS))
		}
		fmt.Fprintf(w, "; CPU %.2fs ramp-up, %.2fs change, %.2fs total\n", c.CPURamp, c.CPUChange, c.CPUTotal)
	case c.Error != "":
		fmt.Fprintf(w, "  coordinator: not measured: %s\n", c.Error)
	default:
		fmt.Fprintf(w, "  coordinator: not measured (give --coordinator-pid or --metrics)\n")
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
