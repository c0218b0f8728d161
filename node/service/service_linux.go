//go:build linux

package service

// DefaultGroup is the group install-service lets use the local API.
const DefaultGroup = "warren"

// InstallPlan is the plan that installs and starts c: a systemd unit.
func InstallPlan(c Config) (Plan, error) { return SystemdInstall(c) }

// UninstallPlan is the plan that stops and removes c's systemd unit.
func UninstallPlan(c Config) (Plan, error) { return SystemdUninstall(c) }
