//go:build windows

package service

import (
	"context"
	"log/slog"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
)

// UnderManager reports whether the service control manager started this
// process, which must then speak to it through RunManaged.
func UnderManager() (bool, error) { return svc.IsWindowsService() }

// RunManaged runs body as the Windows service name: it tells the manager
// the service runs, cancels body's context when the manager asks it to
// stop (or the machine shuts down), and returns body's error once it
// has returned. body's log goes to the event log under the source name.
func RunManaged(name string, body func(ctx context.Context, logs Sink) error) error {
	sink := func(slog.Level, string) error { return nil }
	if elog, err := eventlog.Open(name); err == nil {
		defer elog.Close()
		sink = func(l slog.Level, text string) error {
			switch {
			case l >= slog.LevelError:
				return elog.Error(1, text)
			case l >= slog.LevelWarn:
				return elog.Warning(1, text)
			}
			return elog.Info(1, text)
		}
	}
	h := &handler{body: body, sink: sink}
	if err := svc.Run(name, h); err != nil {
		return err
	}
	if h.err != nil {
		_ = sink(slog.LevelError, "stopped: "+h.err.Error())
	}
	return h.err
}

// handler speaks the service manager's protocol around body.
type handler struct {
	body func(ctx context.Context, logs Sink) error
	sink Sink
	err  error // body's, set before Execute returns
}

func (h *handler) Execute(_ []string, reqs <-chan svc.ChangeRequest, changes chan<- svc.Status) (bool, uint32) {
	changes <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.body(ctx, h.sink) }() // waited for below
	changes <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			h.err = err
			if err != nil {
				return true, 1 // a service-specific exit code: failed
			}
			return false, 0
		case r := <-reqs:
			switch r.Cmd {
			case svc.Interrogate:
				changes <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				changes <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}
