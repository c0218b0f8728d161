package policy

import (
	"testing"
	"time"
)

func mustWindow(t *testing.T, when string) *window {
	t.Helper()
	p := mustParse(t, `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "when": `+when+`}]}`)
	return p.rules[0].when
}

func TestWindowActive(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 11, day, hh, mm, 0, 0, tokyo) } // Nov 23 2026 is a Monday
	tests := []struct {
		when string
		t    time.Time
		want bool
	}{
		{`{"hours": "08:00-19:00", "tz": "Asia/Tokyo"}`, at(23, 8, 0), true},
		{`{"hours": "08:00-19:00", "tz": "Asia/Tokyo"}`, at(23, 7, 59), false},
		{`{"hours": "08:00-19:00", "tz": "Asia/Tokyo"}`, at(23, 18, 59), true},
		{`{"hours": "08:00-19:00", "tz": "Asia/Tokyo"}`, at(23, 19, 0), false},
		{`{"hours": "08:00-19:00"}`, at(23, 18, 0), true}, // 09:00 UTC
		{`{"days": ["Mon", "tuesday"], "tz": "Asia/Tokyo"}`, at(24, 23, 59), true},
		{`{"days": ["Mon", "tuesday"], "tz": "Asia/Tokyo"}`, at(25, 0, 0), false},
		// Wraps past midnight: Friday night into Saturday morning.
		{`{"days": ["Fri"], "hours": "22:00-06:00", "tz": "Asia/Tokyo"}`, at(27, 22, 0), true},
		{`{"days": ["Fri"], "hours": "22:00-06:00", "tz": "Asia/Tokyo"}`, at(28, 5, 59), true},
		{`{"days": ["Fri"], "hours": "22:00-06:00", "tz": "Asia/Tokyo"}`, at(28, 6, 0), false},
		{`{"days": ["Fri"], "hours": "22:00-06:00", "tz": "Asia/Tokyo"}`, at(27, 5, 0), false}, // Thursday night's tail
		{`{"days": ["Fri"], "hours": "22:00-06:00", "tz": "Asia/Tokyo"}`, at(28, 22, 30), false},
		{`{"hours": "00:00-24:00"}`, at(28, 22, 30), true},
		{`{"hours": "20:00-24:00", "tz": "Asia/Tokyo"}`, at(28, 23, 59), true},
	}
	for _, tc := range tests {
		w := mustWindow(t, tc.when)
		if got := w.active(tc.t); got != tc.want {
			t.Errorf("%s at %v: %v, want %v", tc.when, tc.t, got, tc.want)
		}
	}
}

func TestWindowNext(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	tests := []struct {
		when     string
		from     time.Time
		want     time.Time // zero: never
		describe string
	}{
		{`{"hours": "09:00-17:00", "tz": "America/New_York"}`, time.Date(2026, 3, 7, 12, 0, 0, 0, ny),
			time.Date(2026, 3, 7, 17, 0, 0, 0, ny), "closes the same day"},
		{`{"hours": "09:00-17:00", "tz": "America/New_York"}`, time.Date(2026, 3, 7, 18, 0, 0, 0, ny),
			time.Date(2026, 3, 8, 9, 0, 0, 0, ny), "opens the next day, after DST began at 02:00"},
		{`{"hours": "01:30-02:30", "tz": "America/New_York"}`, time.Date(2026, 3, 8, 1, 45, 0, 0, ny),
			time.Date(2026, 3, 8, 3, 0, 0, 0, ny), "closes when 02:00 jumps to 03:00"},
		{`{"days": ["Sat"], "tz": "America/New_York"}`, time.Date(2026, 3, 2, 12, 0, 0, 0, ny),
			time.Date(2026, 3, 7, 0, 0, 0, 0, ny), "days only: opens at local midnight"},
		{`{"hours": "00:00-24:00"}`, time.Date(2026, 3, 2, 12, 0, 0, 0, ny), time.Time{}, "never changes"},
		{`{"days": ["Mon","Tue","Wed","Thu","Fri","Sat","Sun"]}`, time.Date(2026, 3, 2, 12, 0, 0, 0, ny), time.Time{}, "every day"},
	}
	for _, tc := range tests {
		w := mustWindow(t, tc.when)
		got := w.next(tc.from)
		if !got.Equal(tc.want) {
			t.Errorf("%s: next(%v) = %v, want %v", tc.describe, tc.from, got, tc.want)
		}
		// Nothing changes before next.
		if !got.IsZero() {
			for probe := tc.from; probe.Before(got); probe = probe.Add(time.Minute) {
				if w.active(probe) != w.active(tc.from) {
					t.Errorf("%s: changed at %v before %v", tc.describe, probe, got)
					break
				}
			}
			if w.active(got) == w.active(tc.from) {
				t.Errorf("%s: no change at %v", tc.describe, got)
			}
		}
	}
}
