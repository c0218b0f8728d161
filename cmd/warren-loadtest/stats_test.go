package main

import (
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1234 (warren-coord) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0", 3, true},
		{"1 (a) b) c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0", 0.1, true},
		{"1 (x) S 1 2", 0, false},
		{"no name", 0, false},
		{"1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 3 0 0", 0, false},
	} {
		got, err := parseProcStat(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseProcStat(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	rss, peak, err := parseProcStatus("Name:\twarren\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t9\n")
	if err != nil || rss != 1<<20 || peak != 2<<20 {
		t.Errorf("got %d %d %v", rss, peak, err)
	}
	for _, bad := range []string{"", "VmRSS:\t12\n", "VmRSS:\tx kB\n", "VmRSS:\t-1 kB\n"} {
		if _, _, err := parseProcStatus(bad); err == nil {
			t.Errorf("parseProcStatus(%q): no error", bad)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	s, err := parseMetrics(strings.NewReader("# HELP process_cpu_seconds_total x\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\nprocess_resident_memory_bytes 1.048576e+06\nwarren_nodes 3\n"))
	if err != nil || s.CPU != 12.5 || s.RSS != 1<<20 {
		t.Errorf("got %+v, %v", s, err)
	}
	for _, bad := range []string{"", "process_cpu_seconds_total 1\n", "process_cpu_seconds_total NaN\nprocess_resident_memory_bytes 1\n"} {
		if _, err := parseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("parseMetrics(%q): no error", bad)
		}
	}
}

// FuzzParsers: the /proc and metrics parsers never panic, and what they
// accept is never negative.
func FuzzParsers(f *testing.F) {
	f.Add("1234 (warren) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0")
	f.Add("VmRSS:\t 1024 kB\nVmHWM:\t 2048 kB\n")
	f.Add("process_cpu_seconds_total 1\nprocess_resident_memory_bytes 2\n")
	f.Fuzz(func(t *testing.T, in string) {
		if cpu, err := parseProcStat(in); err == nil && cpu < 0 {
			t.Errorf("negative CPU %v", cpu)
		}
		if rss, peak, err := parseProcStatus(in); err == nil && (rss < 0 || peak < 0) {
			t.Errorf("negative RSS %d %d", rss, peak)
		}
		if s, err := parseMetrics(strings.NewReader(in)); err == nil && (s.RSS < 0 || s.CPU < 0) {
			t.Errorf("negative sample %+v", s)
		}
	})
}
