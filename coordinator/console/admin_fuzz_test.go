package console

import (
	"testing"
	"time"
)

// FuzzAuditCursor: the audit log's page cursor (from a URL) is either
// refused or read as a cursor that writes back the same.
func FuzzAuditCursor(f *testing.F) {
	for _, s := range []string{"", "1796663738000000000.65", "1.1", "0.1", "-5.3", "1.", ".1", "9223372036854775807.9223372036854775807", "x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseAuditCursor(v)
		if err != nil {
			return
		}
		again, err := parseAuditCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("%q: read as %+v, which writes %q, read back as %+v, %v", v, c, c.String(), again, err)
		}
	})
}

// FuzzAdminFormValues: the admin forms' free-text readers (the audit
// filter's since, route lists, tag lists) never panic, and a since they
// accept is never in the future.
func FuzzAdminFormValues(f *testing.F) {
	for _, s := range []string{"24h", "7d", "2026-01-31T00:00:00Z", "-1h", "d", "10.0.0.0/24, ::/0", "tag:a tag:b,,tag:c"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if tm, err := sinceTime(v, now); err == nil && tm.After(now) && !isRFC3339(v) {
			t.Fatalf("since %q is %v, after now", v, tm)
		}
		for _, item := range splitList(v) {
			if item == "" {
				t.Fatalf("splitList(%q) has an empty item", v)
			}
		}
	})
}

func isRFC3339(v string) bool {
	_, err := time.Parse(time.RFC3339, v)
	return err == nil
}
