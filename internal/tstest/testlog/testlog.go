// Package testlog is a log destination for tests: a buffer that many
// goroutines (a logger's handlers) may write at once, read back whole or by
// its newest line.
//
// It is for tests only and must never be used by a server: it keeps
// everything written, unbounded.
package testlog

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer collects what is written to it. The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Len returns how many bytes were written.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// String returns everything written.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// LastLine returns the newest line written, without its newline ("" if
// nothing was).
func (b *Buffer) LastLine() string {
	s := strings.TrimRight(b.String(), "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
