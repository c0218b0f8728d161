package service

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Sink receives one log record as text (slog's key=value form, without
// the time, which the receiving log stamps itself) with its level: the
// Windows event log, under the service manager.
type Sink func(level slog.Level, text string) error

// NewSinkHandler returns a slog.Handler that hands each record at level
// or above to sink, formatted by slog's text handler.
func NewSinkHandler(sink Sink, level slog.Leveler) slog.Handler {
	s := &sinkShared{sink: sink}
	s.text = slog.NewTextHandler(&s.buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // the event log has its own time
			}
			return a
		},
	})
	return &sinkHandler{shared: s, text: s.text}
}

// sinkShared is the buffer every derived handler formats into, one record
// at a time.
type sinkShared struct {
	sink Sink
	mu   sync.Mutex
	buf  bytes.Buffer
	text slog.Handler
}

type sinkHandler struct {
	shared *sinkShared
	text   slog.Handler // writes into shared.buf
}

func (h *sinkHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *sinkHandler) Handle(ctx context.Context, r slog.Record) error {
	s := h.shared
	s.mu.Lock()
	s.buf.Reset()
	err := h.text.Handle(ctx, r)
	line := strings.TrimSuffix(s.buf.String(), "\n")
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.sink(r.Level, line)
}

func (h *sinkHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sinkHandler{shared: h.shared, text: h.text.WithAttrs(attrs)}
}

func (h *sinkHandler) WithGroup(name string) slog.Handler {
	return &sinkHandler{shared: h.shared, text: h.text.WithGroup(name)}
}
