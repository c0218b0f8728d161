//go:build darwin

package service

// DefaultGroup is the group install-service lets use the local API.
const DefaultGroup = "warren"

// InstallPlan is the plan that installs and starts c: a launchd daemon.
func InstallPlan(c Config) (Plan, error) { return LaunchdInstall(c) }

// UninstallPlan is the plan that stops and removes c's launchd daemon.
func UninstallPlan(c Config) (Plan, error) { return LaunchdUninstall(c) }
