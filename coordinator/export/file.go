package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// fileSink appends events as JSON lines to a file, rotating it by size:
// path becomes path.1, path.1 becomes path.2, … and the oldest beyond
// Keep is deleted. A batch is synced before Deliver returns.
type fileSink struct {
	path    string
	maxSize int64
	keep    int
	f       *os.File
	size    int64
}

func openFile(c SinkConfig) (*fileSink, error) {
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o750); err != nil {
		return nil, fmt.Errorf("create the directory of %s: %w", c.Path, err)
	}
	s := &fileSink{path: c.Path, maxSize: c.MaxSize, keep: c.Keep}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *fileSink) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Deliver implements Sink. A batch may straddle a rotation; each line is
// whole in one file.
func (s *fileSink) Deliver(_ context.Context, events []Event) error {
	if s.f == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	for _, e := range events {
		line, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.Event.ID, err)
		}
		line = append(line, '\n')
		if s.size+int64(buf.Len()+len(line)) > s.maxSize && s.size+int64(buf.Len()) > 0 {
			if err := s.write(buf.Bytes()); err != nil {
				return err
			}
			buf.Reset()
			if err := s.rotate(); err != nil {
				return err
			}
		}
		buf.Write(line)
	}
	return s.write(buf.Bytes())
}

// write appends b and syncs the file.
func (s *fileSink) write(b []byte) error {
	if len(b) > 0 {
		n, err := s.f.Write(b)
		s.size += int64(n)
		if err != nil {
			return fmt.Errorf("write %s: %w", s.path, err)
		}
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.path, err)
	}
	return nil
}

// rotate closes the file, shifts the rotated ones and opens a new one.
func (s *fileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		s.f = nil
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	s.f = nil
	if s.keep == 0 {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return s.open()
	}
	if err := os.Remove(s.rotated(s.keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i := s.keep - 1; i >= 1; i-- {
		if err := os.Rename(s.rotated(i), s.rotated(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(s.path, s.rotated(1)); err != nil {
		return fmt.Errorf("rotate %s: %w", s.path, err)
	}
	return s.open()
}

func (s *fileSink) rotated(i int) string { return s.path + "." + strconv.Itoa(i) }

// Close implements Sink.
func (s *fileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
