package asciicast

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeClock returns a now func that moves by step on every call.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Unix(1_700_000_000, 0)
	return func() time.Time {
		now := t
		t = t.Add(step)
		return now
	}
}

func TestWriterFormat(t *testing.T) {
	var b bytes.Buffer
	w, err := NewWriter(&b, Header{Width: 80, Height: 24, Title: "ssh alice@db", Env: map[string]string{"TERM": "xterm"}}, fakeClock(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	must(t, w.Output([]byte("hello <world>\r\n")))
	must(t, w.Resize(100, 30))
	must(t, w.Input([]byte("ls\r")))
	must(t, w.Output(nil)) // nothing written
	want := `{"version":2,"width":80,"height":24,"timestamp":1700000000,"title":"ssh alice@db","env":{"TERM":"xterm"}}
[1.500000, "o", "hello <world>\r\n"]
[3.000000, "r", "100x30"]
[4.500000, "i", "ls\r"]
`
	if got := b.String(); got != want {
		t.Errorf("cast:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriterRefusesBadHeader(t *testing.T) {
	for _, h := range []Header{{Width: 0, Height: 24}, {Width: 80, Height: -1}, {Version: 1, Width: 80, Height: 24}} {
		if _, err := NewWriter(&bytes.Buffer{}, h, nil); err == nil {
			t.Errorf("NewWriter(%+v) succeeded", h)
		}
	}
}

func TestWriterKeepsSplitCharactersWhole(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []string // the "o" events' data
	}{
		{"whole", []string{"é"}, []string{"é"}},
		{"two-byte split", []string{"a\xc3", "\xa9b"}, []string{"a", "éb"}},
		{"four-byte split thrice", []string{"\xf0", "\x9f", "\x98", "\x80!"}, []string{"😀!"}},
		{"invalid byte stays invalid", []string{"a\xffb"}, []string{"a\ufffdb"}},
		{"prefix then junk", []string{"x\xe2\x82", "y"}, []string{"x", "\ufffd\ufffdy"}},
		{"trailing prefix flushed", []string{"z\xe2"}, []string{"z", "\ufffd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			w, err := NewWriter(&b, Header{Width: 1, Height: 1}, fakeClock(time.Millisecond))
			must(t, err)
			for _, c := range tt.chunks {
				must(t, w.Output([]byte(c)))
			}
			must(t, w.Flush())
			_, evs, err := Parse(&b)
			must(t, err)
			var got []string
			for _, ev := range evs {
				got = append(got, ev.Data)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("events %q, want %q", got, tt.want)
			}
		})
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterErrorIsSticky(t *testing.T) {
	w, err := NewWriter(&failWriter{n: 1}, Header{Width: 80, Height: 24}, nil)
	must(t, err)
	if err := w.Output([]byte("x")); err == nil {
		t.Fatal("Output on a failing writer succeeded")
	}
	if err := w.Resize(1, 1); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("later Resize: %v, want the first error", err)
	}
}

func TestParse(t *testing.T) {
	const hdr = `{"version":2,"width":80,"height":24,"idle_time_limit":2}` + "\n"
	tests := []struct {
		name    string
		in      string
		events  int
		wantErr string // substring; "" means success
	}{
		{"header only", hdr, 0, ""},
		{"events and blank lines", hdr + "\n[0.1, \"o\", \"a\"]\n\n[0.2, \"m\", \"\"]", 2, ""},
		{"crlf", strings.ReplaceAll(hdr+`[1, "o", "a"]`+"\n", "\n", "\r\n"), 1, ""},
		{"empty", "", 0, "no header"},
		{"version 1", `{"version":1,"width":80,"height":24}`, 0, "line 1: header: version 1"},
		{"no size", `{"version":2}`, 0, "line 1: header: terminal size"},
		{"header not object", `[1,"o","x"]`, 0, "line 1: header: not a JSON object"},
		{"two elements", hdr + `[1, "o"]`, 0, "line 2: event: 2 elements"},
		{"negative time", hdr + `[-1, "o", "x"]`, 0, "line 2: event: time -1"},
		{"null time", hdr + `[null, "o", "x"]`, 0, "line 2: event: time"},
		{"numeric data", hdr + `[1, "o", 5]`, 0, "line 2: event: code and data must be strings"},
		{"empty code", hdr + `[1, "", "x"]`, 0, "empty event code"},
		{"garbage on line 3", hdr + "[1, \"o\", \"x\"]\n{", 0, "line 3: event"},
		{"long line", hdr + `[1, "o", "` + strings.Repeat("x", MaxLineBytes) + `"]`, 0, "line 2: line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, evs, err := Parse(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			must(t, err)
			if h.Width != 80 || h.Height != 24 || len(evs) != tt.events {
				t.Errorf("Parse: %+v and %d events, want 80x24 and %d", h, len(evs), tt.events)
			}
		})
	}
}

func TestParseBoundsWholeRecording(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"version":2,"width":80,"height":24}` + "\n")
	// Blank lines count but are not decoded: this stays quick under -race.
	line := strings.Repeat(" ", MaxLineBytes/2) + "\n"
	for b.Len() <= MaxBytes {
		b.WriteString(line)
	}
	if _, _, err := Parse(&b); err == nil || !strings.Contains(err.Error(), "recording longer than") {
		t.Fatalf("Parse of %d bytes: %v, want the size bound", b.Len(), err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzParse: any input parses or fails with an error, never a panic, and
// what parses holds a valid header.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":2,"width":80,"height":24}` + "\n" + `[0.5, "o", "hi"]` + "\n"))
	f.Add([]byte(`{"version":2,"width":1,"height":1,"env":{"TERM":"x"}}` + "\n\n" + `[1e3, "r", "1x1"]`))
	f.Add([]byte(`{"version":2,"width":80,"height":24}` + "\n" + `[null, "o", "x"]`))
	f.Add([]byte("[]\n{}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, evs, err := Parse(bytes.NewReader(in))
		if err != nil {
			return
		}
		if h.Version != Version || h.Width <= 0 || h.Height <= 0 {
			t.Fatalf("parsed a bad header %+v", h)
		}
		for _, ev := range evs {
			if ev.Time < 0 || ev.Type == "" {
				t.Fatalf("parsed a bad event %+v", ev)
			}
		}
	})
}

// FuzzRoundTrip: whatever bytes the terminal prints, in whatever pieces,
// the written cast parses, times never go backwards, and the output
// events join to the bytes decoded as one piece (invalid bytes as U+FFFD).
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello\r\n"), uint8(3))
	f.Add([]byte("h\xc3\xa9llo \xf0\x9f\x98\x80 \xff\xe2\x82"), uint8(1))
	f.Add([]byte("\xe2\x82\xac\xe2"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		var b bytes.Buffer
		w, err := NewWriter(&b, Header{Width: 80, Height: 24}, fakeClock(time.Duration(step)*time.Millisecond))
		must(t, err)
		n := int(step%7) + 1
		for rest := in; len(rest) > 0; {
			k := min(n, len(rest))
			must(t, w.Output(rest[:k]))
			rest = rest[k:]
		}
		must(t, w.Flush())
		_, evs, err := Parse(&b)
		if err != nil {
			t.Fatalf("Parse of a written cast: %v\n%s", err, b.String())
		}
		var got strings.Builder
		last := 0.0
		for _, ev := range evs {
			if ev.Type != Output || ev.Time < last {
				t.Fatalf("event %+v after time %v", ev, last)
			}
			last = ev.Time
			got.WriteString(ev.Data)
		}
		if want := decodeEachInvalidByte(in); got.String() != want {
			t.Fatalf("output %q, want %q", got.String(), want)
		}
	})
}

// decodeEachInvalidByte is the reference: in with every byte that does
// not start a valid encoding replaced by U+FFFD.
func decodeEachInvalidByte(in []byte) string {
	var s strings.Builder
	for len(in) > 0 {
		r, size := utf8.DecodeRune(in)
		s.WriteRune(r) // RuneError for an invalid byte
		in = in[size:]
	}
	return s.String()
}
