//go:build !linux && !darwin && !windows

package service

import (
	"errors"
	"runtime"
)

// DefaultGroup is the group install-service lets use the local API.
const DefaultGroup = "warren"

var errUnsupported = errors.New("install-service supports Linux (systemd), macOS (launchd) and Windows, not " + runtime.GOOS + ": run warrend from your init system")

// InstallPlan fails: this OS has no service support yet.
func InstallPlan(Config) (Plan, error) { return nil, errUnsupported }

// UninstallPlan fails: this OS has no service support yet.
func UninstallPlan(Config) (Plan, error) { return nil, errUnsupported }
