package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// procSample is the coordinator's resource use at one moment.
type procSample struct {
	RSS     int64   // resident set, bytes
	PeakRSS int64   // high-water mark, bytes; 0 when unknown
	CPU     float64 // user+system CPU seconds since the process started
}

// coordStats samples the coordinator.
type coordStats interface {
	sample(ctx context.Context) (procSample, error)
}

// procStats reads a local process's /proc/<pid>/stat and status (Linux).
type procStats struct{ pid int }

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc's times.
const clockTicks = 100

func (p procStats) sample(context.Context) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return procSample{}, fmt.Errorf("coordinator CPU: %w (is --coordinator-pid a process on this Linux machine?)", err)
	}
	cpu, err := parseProcStat(string(stat))
	if err != nil {
		return procSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return procSample{}, fmt.Errorf("coordinator RSS: %w", err)
	}
	rss, peak, err := parseProcStatus(string(status))
	if err != nil {
		return procSample{}, err
	}
	return procSample{RSS: rss, PeakRSS: peak, CPU: cpu}, nil
}

// parseProcStat returns utime+stime in seconds from /proc/<pid>/stat. The
// command name, in parentheses, may hold spaces and parentheses itself, so
// fields count from the last ')'.
func parseProcStat(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("parse /proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc stat: %w", err)
	}
	return float64(ut+st) / clockTicks, nil
}

// parseProcStatus returns VmRSS and VmHWM in bytes from /proc/<pid>/status.
func parseProcStatus(s string) (rss, peak int64, err error) {
	found := false
	for line := range strings.Lines(s) {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("parse /proc status: %s: %q", name, strings.TrimSpace(val))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, 0, fmt.Errorf("parse /proc status: %s: %q", name, f[0])
		}
		if name == "VmRSS" {
			rss, found = kb<<10, true
		} else {
			peak = kb << 10
		}
	}
	if !found {
		return 0, 0, errors.New("parse /proc status: no VmRSS (a kernel thread, or not Linux?)")
	}
	return rss, peak, nil
}

// metricsStats reads process_resident_memory_bytes and
// process_cpu_seconds_total from a Prometheus text endpoint (the
// coordinator's --metrics-listen).
type metricsStats struct {
	url    string
	client *http.Client
}

func (m metricsStats) sample(ctx context.Context) (procSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return procSample{}, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return procSample{}, fmt.Errorf("coordinator metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return procSample{}, fmt.Errorf("coordinator metrics: %s", resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 64<<20))
}

// parseMetrics finds the two process metrics in Prometheus's text format.
func parseMetrics(r io.Reader) (procSample, error) {
	var s procSample
	var haveRSS, haveCPU bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != "process_resident_memory_bytes" && f[0] != "process_cpu_seconds_total") {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil || !(v >= 0 && v <= 1<<60) { // NaN too
			return procSample{}, fmt.Errorf("parse metrics: %s: %q", f[0], f[1])
		}
		if f[0] == "process_cpu_seconds_total" {
			s.CPU, haveCPU = v, true
		} else {
			s.RSS, haveRSS = int64(v), true
		}
	}
	if err := sc.Err(); err != nil {
		return procSample{}, fmt.Errorf("parse metrics: %w", err)
	}
	if !haveRSS || !haveCPU {
		return procSample{}, errors.New("parse metrics: no process_resident_memory_bytes or process_cpu_seconds_total (not a Linux coordinator's /metrics?)")
	}
	return s, nil
}
