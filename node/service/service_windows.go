//go:build windows

package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// DefaultGroup is empty on Windows: the local API's named pipe admits
// SYSTEM, Administrators and the installing user unless --socket-group
// names a group.
const DefaultGroup = ""

// InstallPlan is the plan that installs and starts c as a Windows
// service started at boot, with its log in the event log under c.Name.
func InstallPlan(c Config) (Plan, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	cmdline := windows.EscapeArg(c.Executable)
	for _, a := range c.Args {
		cmdline += " " + windows.EscapeArg(a)
	}
	return Plan{
		{Desc: "register the event log source " + c.Name, MayFail: true, Call: func(context.Context) error {
			err := eventlog.InstallAsEventCreate(c.Name, eventlog.Error|eventlog.Warning|eventlog.Info)
			if err != nil && strings.Contains(err.Error(), "exists") {
				return nil // installed before
			}
			return err
		}},
		{Desc: "create the service " + c.Name + ": " + cmdline, Call: func(context.Context) error { return create(c) }},
		{Desc: "start the service " + c.Name, Call: func(context.Context) error {
			return withService(c.Name, func(s *mgr.Service) error { return s.Start() })
		}},
	}, nil
}

// UninstallPlan is the plan that stops and deletes c's service and its
// event log source.
func UninstallPlan(c Config) (Plan, error) {
	if err := c.checkName(); err != nil {
		return nil, err
	}
	return Plan{
		{Desc: "stop the service " + c.Name, MayFail: true, Call: func(ctx context.Context) error {
			return withService(c.Name, func(s *mgr.Service) error { return stop(ctx, s) })
		}},
		{Desc: "delete the service " + c.Name, Call: func(context.Context) error {
			return withService(c.Name, func(s *mgr.Service) error { return s.Delete() })
		}},
		{Desc: "remove the event log source " + c.Name, MayFail: true, Call: func(context.Context) error {
			return eventlog.Remove(c.Name)
		}},
	}, nil
}

func create(c Config) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager (run from an administrator prompt): %w", err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(c.Name); err == nil {
		s.Close()
		return fmt.Errorf("service %s exists already: run uninstall-service first", c.Name)
	}
	s, err := m.CreateService(c.Name, c.Executable, mgr.Config{
		DisplayName: "Warren node (" + c.Name + ")",
		Description: c.Description,
		StartType:   mgr.StartAutomatic,
	}, c.Args...)
	if err != nil {
		return err
	}
	defer s.Close()
	// Restart after a crash: at once, then after 2 s, then after 10 s;
	// the count starts over after a day without failures.
	return s.SetRecoveryActions([]mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 0},
		{Type: mgr.ServiceRestart, Delay: 2 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 10 * time.Second},
	}, 24*60*60)
}

func withService(name string, fn func(*mgr.Service) error) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager (run from an administrator prompt): %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	defer s.Close()
	return fn(s)
}

// stop asks the service to stop and waits (at most 30 s) until it has.
func stop(ctx context.Context, s *mgr.Service) error {
	st, err := s.Control(svc.Stop)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for st.State != svc.Stopped {
		select {
		case <-ctx.Done():
			return errors.New("the service did not stop within 30 s")
		case <-time.After(300 * time.Millisecond): // the manager has no event to wait on
		}
		if st, err = s.Query(); err != nil {
			return err
		}
	}
	return nil
}
