package storecopy

import (
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in      string
		want    Location
		wantErr string
	}{
		{"sqlite:///var/lib/warren/warren.db", Location{Driver: SQLite, Path: "/var/lib/warren/warren.db"}, ""},
		{"sqlite:///tmp/with%20space.db", Location{Driver: SQLite, Path: "/tmp/with space.db"}, ""},
		{"sqlite:warren.db", Location{Driver: SQLite, Path: "warren.db"}, ""},
		{"sqlite:/abs/warren.db", Location{Driver: SQLite, Path: "/abs/warren.db"}, ""},
		{"SQLite:state/warren.db", Location{Driver: SQLite, Path: "state/warren.db"}, ""},
		{"/var/lib/warren/warren.db", Location{Driver: SQLite, Path: "/var/lib/warren/warren.db"}, ""},
		{"warren.db", Location{Driver: SQLite, Path: "warren.db"}, ""},
		{`C:\warren\warren.db`, Location{Driver: SQLite, Path: `C:\warren\warren.db`}, ""},
		{"postgres://warren:pw@db.example.com:5432/warren?sslmode=require", Location{Driver: Postgres, URL: "postgres://warren:pw@db.example.com:5432/warren?sslmode=require"}, ""},
		{"postgresql://warren@/warren?host=/run/postgresql", Location{Driver: Postgres, URL: "postgresql://warren@/warren?host=/run/postgresql"}, ""},
		{"", Location{}, "empty store URL"},
		{"sqlite://host/warren.db", Location{}, "not a host"},
		{"sqlite:///var/lib/warren/", Location{}, "no file name"},
		{"sqlite:", Location{}, "no file name"},
		{"sqlite:///x.db?mode=ro", Location{}, "no query"},
		{"sqlite:x.db?mode=ro", Location{}, "no query"},
		{"mysql://root@localhost/warren", Location{}, "unknown scheme"},
		{"postgres:warren", Location{}, "starts postgres://"},
		{"/var/lib/warren/", Location{}, "no file name"},
	}
	for _, tt := range tests {
		got, err := ParseLocation(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseLocation(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://warren:s3cret@db/warren":              "postgres://warren:xxxxx@db/warren",
		"postgres://warren@db/warren?password=s3cret&x=1": "postgres://warren@db/warren?password=xxxxx&x=1",
		"postgres://warren@db/warren":                     "postgres://warren@db/warren",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
		loc, err := ParseLocation(in)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(loc.String(), "s3cret") {
			t.Errorf("%q prints as %q", in, loc.String())
		}
	}
}

// FuzzParseLocation: any input parses or fails without panicking; a
// parsed location has a driver and a path or URL, and never prints a
// password given in the URL.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"sqlite:///a.db", "sqlite:a.db", "a.db", "postgres://u:p@h/d", "postgresql://u@/d?host=/tmp&password=p", "x://y", "sqlite://h/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s)
		if err != nil {
			if strings.Contains(s, "@") && strings.Contains(err.Error(), s) && strings.HasPrefix(strings.ToLower(s), "postgres") {
				t.Fatalf("error %q repeats a PostgreSQL URL that may hold a password", err)
			}
			return
		}
		switch loc.Driver {
		case SQLite:
			if loc.Path == "" || loc.URL != "" {
				t.Fatalf("%q: %+v", s, loc)
			}
		case Postgres:
			if loc.URL != s || loc.Path != "" {
				t.Fatalf("%q: %+v", s, loc)
			}
			_ = loc.String()
		default:
			t.Fatalf("%q: driver %q", s, loc.Driver)
		}
	})
}
