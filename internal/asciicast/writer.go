// Package asciicast writes and reads terminal recordings in asciinema's
// cast format, version 2: a JSON header line, then one JSON array per
// event, [time, code, data], with time in seconds since the recording
// began ("o" output, "i" input, "r" a resize to "WIDTHxHEIGHT", "m" a
// marker). Warren's SSH server writes a session's terminal this way and
// `asciinema play` replays it.
//
// The package only encodes and decodes; it never opens files or network
// connections, and Parse never trusts its input: every line and the whole
// recording are bounded, and malformed input is an error naming the line,
// never a panic.
package asciicast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Version is the cast format version this package writes and reads.
const Version = 2

// Event codes.
const (
	Output = "o" // data the terminal printed
	Input  = "i" // data typed at the terminal
	Resize = "r" // the terminal's new size, "WIDTHxHEIGHT"
	Marker = "m" // a marker (label in data)
)

// Header is the first line of a cast.
type Header struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"` // Unix seconds when the recording began
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"` // e.g. TERM and SHELL
}

// Event is one event line of a cast.
type Event struct {
	Time float64 // seconds since the recording began
	Type string  // Output, Input, Resize, Marker
	Data string
}

// A Writer writes a cast to an underlying writer, one Write call per
// line, so a reader of the stream always sees whole lines. Its methods
// may be called from several goroutines. After the first write error
// every method returns that error.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	start   time.Time
	last    float64 // the last event's time: times never go backwards
	pending []byte  // an incomplete UTF-8 sequence held from the last Output
	buf     bytes.Buffer
	err     error
}

// NewWriter writes h's header line to w (Version 0 means Version; Width
// and Height must be positive) and returns a Writer timing events with
// now (time.Now when nil) from this moment.
func NewWriter(w io.Writer, h Header, now func() time.Time) (*Writer, error) {
	if now == nil {
		now = time.Now
	}
	if h.Version == 0 {
		h.Version = Version
	}
	if h.Version != Version {
		return nil, fmt.Errorf("asciicast: version %d: only %d is written", h.Version, Version)
	}
	if h.Width <= 0 || h.Height <= 0 {
		return nil, fmt.Errorf("asciicast: terminal size %dx%d: width and height must be positive", h.Width, h.Height)
	}
	cw := &Writer{w: w, now: now, start: now()}
	if h.Timestamp == 0 {
		h.Timestamp = cw.start.Unix()
	}
	line, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("asciicast: header: %w", err)
	}
	line = append(line, '\n')
	if _, err := w.Write(line); err != nil {
		return nil, fmt.Errorf("asciicast: write header: %w", err)
	}
	return cw, nil
}

// Output records p as printed by the terminal. An incomplete UTF-8
// sequence at the end of p is held back and put before the next Output's
// data (or written by Flush), so a character split across two reads is
// recorded whole; other invalid bytes are recorded as U+FFFD.
func (w *Writer) Output(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	data := p
	if len(w.pending) > 0 {
		data = append(w.pending, p...)
		w.pending = nil
	}
	if n := incompleteSuffix(data); n > 0 {
		w.pending = append([]byte(nil), data[len(data)-n:]...)
		data = data[:len(data)-n]
	}
	if len(data) == 0 {
		return nil
	}
	return w.event(Output, data)
}

// Flush writes an incomplete UTF-8 sequence held back by Output (as
// U+FFFD), for the end of a recording.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if len(w.pending) == 0 {
		return nil
	}
	data := w.pending
	w.pending = nil
	return w.event(Output, data)
}

// Input records p as typed at the terminal (Warren does not record input
// by default: it holds passwords typed at prompts).
func (w *Writer) Input(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if len(p) == 0 {
		return nil
	}
	return w.event(Input, p)
}

// Resize records that the terminal is now width columns by height rows.
func (w *Writer) Resize(width, height int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	return w.event(Resize, []byte(strconv.Itoa(width)+"x"+strconv.Itoa(height)))
}

// event writes one event line; w.mu is held.
func (w *Writer) event(code string, data []byte) error {
	t := w.now().Sub(w.start).Seconds()
	if t < w.last {
		t = w.last
	}
	w.last = t
	w.buf.Reset()
	w.buf.WriteByte('[')
	w.buf.WriteString(strconv.FormatFloat(t, 'f', 6, 64))
	w.buf.WriteString(", ")
	w.buf.WriteString(strconv.Quote(code))
	w.buf.WriteString(", ")
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	// A string always encodes; invalid UTF-8 becomes U+FFFD.
	if err := enc.Encode(string(data)); err != nil {
		w.err = fmt.Errorf("asciicast: encode event: %w", err)
		return w.err
	}
	w.buf.Truncate(w.buf.Len() - 1) // Encode's newline
	w.buf.WriteString("]\n")
	if _, err := w.w.Write(w.buf.Bytes()); err != nil {
		w.err = fmt.Errorf("asciicast: write event: %w", err)
		return w.err
	}
	return nil
}

// incompleteSuffix returns the length of the incomplete but so far valid
// UTF-8 sequence p ends with (0 if none): a lead byte in the last three
// bytes followed only by the continuation bytes it still expects.
func incompleteSuffix(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(p[i]) {
			if utf8.FullRune(p[i:]) {
				return 0
			}
			return len(p) - i
		}
	}
	return 0
}
