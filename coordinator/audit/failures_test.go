package audit

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/warrenmesh/warren/internal/tstest/testclock"
)

func TestFailuresSampleAndCount(t *testing.T) {
	var buf bytes.Buffer
	clock := testclock.New(time.Unix(1_700_000_000, 0))
	f := NewFailures(slog.New(slog.NewJSONHandler(&buf, nil)), 10*time.Second)
	f.now = clock.Now
	huge := "/api/v1/" + strings.Repeat("a", 900<<10)

	for range 100 {
		f.Record("api.auth", "192.0.2.1:1234", "GET "+huge)
	}
	f.Record("control.handshake", "192.0.2.2:1", "bad")
	clock.Advance(11 * time.Second)
	f.Record("api.auth", "192.0.2.1:1234", "GET /x")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3 (first api.auth, first handshake, api.auth after the period):\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		if len(l) > 2*MaxDetail+300 {
			t.Fatalf("log line of %d bytes: %.300s…", len(l), l)
		}
	}
	if !strings.Contains(lines[2], `"count":100`) || !strings.Contains(lines[2], `"total":101`) {
		t.Fatalf("third line does not report the 100 failures since the first: %s", lines[2])
	}
	want := map[string]uint64{"api.auth": 101, "control.handshake": 1}
	got := f.Counts()
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("counts %v, want %v", got, want)
		}
	}
	if k := f.Kinds(); len(k) != 2 || k[0] != "api.auth" {
		t.Fatalf("kinds %v", k)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdefghij", 6, "abc…"},
		{"ääääää", 7, "ää…"}, // never splits a rune
		{"abc", 1, "…"},
	}
	for _, tt := range tests {
		got := Truncate(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
