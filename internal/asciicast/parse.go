package asciicast

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Parse's bounds: a recording larger than these is refused, not read.
const (
	MaxLineBytes = 1 << 20  // one line, header or event
	MaxBytes     = 64 << 20 // the whole recording
	MaxEvents    = 1 << 20  // event lines
)

// Parse reads a whole cast (version 2): its header and events, in order.
// Blank lines are skipped (a recorder's keep-alives); header fields this
// package does not know are ignored. Errors name the line at fault. The
// input is bounded by MaxLineBytes, MaxBytes and MaxEvents.
func Parse(r io.Reader) (Header, []Event, error) {
	var (
		h      Header
		events []Event
		total  int
		lineNo int
		seen   bool // the header was read
	)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if err == io.EOF {
			break
		}
		lineNo++
		if err != nil {
			return h, nil, fmt.Errorf("asciicast: line %d: %w", lineNo, err)
		}
		total += len(line) + 1
		if total > MaxBytes {
			return h, nil, fmt.Errorf("asciicast: line %d: recording longer than %d bytes", lineNo, MaxBytes)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if !seen {
			if h, err = parseHeader(line); err != nil {
				return h, nil, fmt.Errorf("asciicast: line %d: header: %w", lineNo, err)
			}
			seen = true
			continue
		}
		if len(events) == MaxEvents {
			return h, nil, fmt.Errorf("asciicast: line %d: more than %d events", lineNo, MaxEvents)
		}
		ev, err := parseEvent(line)
		if err != nil {
			return h, nil, fmt.Errorf("asciicast: line %d: event: %w", lineNo, err)
		}
		events = append(events, ev)
	}
	if !seen {
		return h, nil, errEmpty
	}
	return h, events, nil
}

var errEmpty = errors.New("asciicast: empty input: no header line")

// readLine returns the next line without its newline, at most
// MaxLineBytes long; io.EOF only when nothing is left.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > MaxLineBytes+1 {
			return nil, fmt.Errorf("line longer than %d bytes", MaxLineBytes)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

func parseHeader(line []byte) (Header, error) {
	var h Header
	if line[0] != '{' {
		return h, errors.New("not a JSON object")
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return h, err
	}
	if h.Version != Version {
		return h, fmt.Errorf("version %d, want %d", h.Version, Version)
	}
	if h.Width <= 0 || h.Height <= 0 {
		return h, fmt.Errorf("terminal size %dx%d: width and height must be positive", h.Width, h.Height)
	}
	return h, nil
}

func parseEvent(line []byte) (Event, error) {
	var ev Event
	var parts []json.RawMessage
	if line[0] != '[' {
		return ev, errors.New("not a JSON array")
	}
	if err := json.Unmarshal(line, &parts); err != nil {
		return ev, err
	}
	if len(parts) != 3 {
		return ev, fmt.Errorf("%d elements, want 3: [time, code, data]", len(parts))
	}
	if c := parts[0][0]; c != '-' && (c < '0' || c > '9') {
		return ev, errors.New("time: not a number")
	}
	if err := json.Unmarshal(parts[0], &ev.Time); err != nil {
		return ev, fmt.Errorf("time: %w", err)
	}
	if ev.Time < 0 || math.IsInf(ev.Time, 0) || math.IsNaN(ev.Time) {
		return ev, fmt.Errorf("time %v: not a non-negative number of seconds", ev.Time)
	}
	if parts[1][0] != '"' || parts[2][0] != '"' {
		return ev, errors.New("code and data must be strings")
	}
	if err := json.Unmarshal(parts[1], &ev.Type); err != nil {
		return ev, fmt.Errorf("code: %w", err)
	}
	if ev.Type == "" {
		return ev, errors.New("empty event code")
	}
	if err := json.Unmarshal(parts[2], &ev.Data); err != nil {
		return ev, fmt.Errorf("data: %w", err)
	}
	return ev, nil
}
