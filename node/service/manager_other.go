//go:build !windows

package service

import (
	"context"
	"errors"
)

// UnderManager reports whether the process was started by a service
// manager that must be spoken to (the Windows service control manager).
// systemd and launchd run the daemon as a plain process, so elsewhere it
// is always false.
func UnderManager() (bool, error) { return false, nil }

// RunManaged runs body under the Windows service manager; elsewhere it
// fails.
func RunManaged(name string, body func(ctx context.Context, logs Sink) error) error {
	return errors.New("no service manager to run under on this OS")
}
