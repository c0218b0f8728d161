package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones without depending on the host's zoneinfo

	"github.com/tailscale/hujson"
)

// window is a rule's "when": active on the given weekdays between start
// and end (minutes after local midnight, end exclusive), in loc. When end
// <= start the window wraps past midnight: it starts on a listed day and
// ends the next morning.
type window struct {
	days       [7]bool // by time.Weekday
	start, end int     // 0..1439, 1..1440
	loc        *time.Location
	text       string
}

var windowFields = []string{"days", "hours", "tz"}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func (ps *parser) window(v hujson.Value) *window {
	obj, ok := ps.object(v, "when")
	if !ok {
		return nil
	}
	f := ps.fields(obj, "when", windowFields, nil)
	w := &window{start: 0, end: 24 * 60, loc: time.UTC, text: compact(v)}
	for i := range w.days {
		w.days[i] = true
	}
	ok = true
	if dv, has := f["days"]; has {
		days, vals := ps.strs(dv, "days")
		if a, isArr := dv.Value.(*hujson.Array); isArr && len(a.Elements) == 0 {
			ps.errorf(dv.StartOffset, `omit "days" for every day`, "days is empty: the rule would never be active")
			ok = false
		}
		if len(days) > 0 {
			w.days = [7]bool{}
		}
		for i, d := range days {
			wd, good := parseDay(d)
			if !good {
				ps.errorf(vals[i].StartOffset, `days are Mon, Tue, Wed, Thu, Fri, Sat, Sun`, "unknown day %q", d)
				ok = false
				continue
			}
			w.days[wd] = true
		}
	}
	if hv, has := f["hours"]; has {
		if s, good := ps.str(hv, "hours"); good {
			start, end, off, err := parseHours(s)
			if err != nil {
				ps.errorf(at(hv, off), `write "HH:MM-HH:MM" in 24-hour time, e.g. "08:00-19:00" or "22:00-06:00"`, "invalid hours %q: %v", s, err)
				ok = false
			}
			w.start, w.end = start, end
		} else {
			ok = false
		}
	}
	if tv, has := f["tz"]; has {
		if s, good := ps.str(tv, "tz"); good {
			loc, err := loadLocation(s)
			if err != nil {
				ps.errorf(tv.StartOffset, `use an IANA time zone such as "Europe/Berlin", "Asia/Tokyo" or "UTC"`, "unknown time zone %q", s)
				ok = false
			}
			w.loc = loc
		} else {
			ok = false
		}
	}
	if _, hasDays := f["days"]; !hasDays {
		if _, hasHours := f["hours"]; !hasHours && ok {
			ps.warnf(v.StartOffset, `add "days" or "hours", or remove "when"`, "when has neither days nor hours: the rule is always active")
		}
	}
	if !ok {
		return nil
	}
	return w
}

func loadLocation(s string) (*time.Location, error) {
	if s == "" || s == "Local" || strings.ContainsAny(s, "\\\x00") || strings.Contains(s, "..") || strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("invalid")
	}
	return time.LoadLocation(s)
}

func parseDay(s string) (time.Weekday, bool) {
	l := strings.ToLower(s)
	for i, d := range dayNames {
		if l == d || (len(l) > 3 && strings.HasPrefix(dayFull[i], l) && strings.HasPrefix(l, d)) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

var dayFull = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

// parseHours parses "HH:MM-HH:MM". The end may be 24:00. It returns the
// offset of the bad part on error.
func parseHours(s string) (start, end, off int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("missing '-'")
	}
	if start, err = parseClock(strings.TrimSpace(a)); err != nil {
		return 0, 0, 0, err
	}
	if start == 24*60 {
		return 0, 0, 0, fmt.Errorf("the window cannot start at 24:00")
	}
	if end, err = parseClock(strings.TrimSpace(b)); err != nil {
		return 0, 0, len(a) + 1, err
	}
	if start == end {
		return 0, 0, 0, fmt.Errorf("start and end are equal; use \"00:00-24:00\" for all day")
	}
	return start, end, 0, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(m) != 2 || len(h) < 1 || len(h) > 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || h[0] == '-' || h[0] == '+' || m[0] == '-' || m[0] == '+' {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	if hh == 24 && mm == 0 {
		return 24 * 60, nil
	}
	if hh > 23 || mm > 59 {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return hh*60 + mm, nil
}

// active reports whether the window is open at t.
func (w *window) active(t time.Time) bool {
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	wd := lt.Weekday()
	if w.start < w.end {
		return w.days[wd] && m >= w.start && m < w.end
	}
	if m >= w.start {
		return w.days[wd]
	}
	return m < w.end && w.days[(wd+6)%7]
}

// next returns the first instant after t at which active changes, or the
// zero time when it never does. Within each period of constant UTC offset
// the candidate instants (local midnight, start and end of every day) are
// exact, so daylight-saving changes are handled.
func (w *window) next(t time.Time) time.Time {
	cur := w.active(t)
	horizon := t.Add(9 * 24 * time.Hour)
	from := t
	for from.Before(horizon) {
		lt := from.In(w.loc)
		_, offset := lt.Zone()
		_, zoneEnd := lt.ZoneBounds()
		until := horizon
		if !zoneEnd.IsZero() && zoneEnd.Before(horizon) && zoneEnd.After(from) {
			until = zoneEnd
		}
		off := int64(offset)
		firstDay := floorDiv(from.Unix()+off, 86400) - 1
		lastDay := floorDiv(until.Unix()+off, 86400) + 1
		var cands []int64
		for d := firstDay; d <= lastDay; d++ {
			for _, m := range []int{0, w.start, w.end} {
				cands = append(cands, d*86400+int64(m)*60-off)
			}
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i] < cands[j] })
		for _, c := range cands {
			ct := time.Unix(c, 0)
			if !ct.After(t) || ct.Before(from) || !ct.Before(until) {
				continue
			}
			if w.active(ct) != cur {
				return ct
			}
		}
		if until.Before(horizon) && w.active(until) != cur {
			return until
		}
		from = until
	}
	return time.Time{}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// describe says when the window is open, for messages.
func (w *window) describe() string {
	var days []string
	all := true
	for i, on := range w.days {
		if on {
			days = append(days, strings.ToUpper(dayNames[i][:1])+dayNames[i][1:])
		} else {
			all = false
		}
	}
	d := "every day"
	if !all {
		d = strings.Join(days, ",")
	}
	return fmt.Sprintf("%s %02d:%02d-%02d:%02d %s", d, w.start/60, w.start%60, w.end/60, w.end%60, w.loc)
}

func (w *window) equal(o *window) bool {
	return w.days == o.days && w.start == o.start && w.end == o.end && w.loc.String() == o.loc.String()
}
